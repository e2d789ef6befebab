"""What every serving backend offers: start a server for a release beside the running ones, list, stop, predict."""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from lifecycle.config import DeploymentConfig
from lifecycle.errors import LifecycleError
from lifecycle.validation import FeatureSchema
from serving.client import post_records


class DeploymentFailed(LifecycleError):
    """A new server did not come up or did not pass its smoke test; whatever was serving still serves."""


@dataclass
class Release:
    """What to serve: one Model Control Plane version and what serving it needs."""

    model_name: str
    model_version: str  # the MCP version number
    model_version_id: str
    model: Any
    schema: FeatureSchema
    mlflow_registered_version: str | None = None
    example: pd.DataFrame | None = None  # a few held-out rows (an MLflow signature, when one is registered)
    role: str = "production"  # its part behind the model's front door: production, canary or shadow

    def server_name(self) -> str:
        """A new server's name: model, version, role (when not production) and a random suffix (servers of one
        version can overlap). The role travels in the name, so every deployer's own records keep it."""
        role = "" if self.role == "production" else f"-{self.role}"
        return f"{self.model_name}-v{self.model_version}{role}-{uuid.uuid4().hex[:6]}"


_SERVER_NAME = re.compile(r"(.+)-v(\d+)(?:-(canary|shadow))?-[0-9a-f]{6}")


def parse_server_name(name: str) -> tuple[str, str, str] | None:
    """(model, version, role) from a server's name (see `Release.server_name`); None for another name."""
    found = _SERVER_NAME.fullmatch(name)
    return (found.group(1), found.group(2), found.group(3) or "production") if found else None


@dataclass
class Endpoint:
    backend: str
    name: str
    model_name: str
    model_version: str
    url: str  # base URL
    predict_path: str
    health_path: str
    running: bool
    created: str = ""
    pid: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def role(self) -> str:
        """production, canary or shadow (from the server's name: see `Release.server_name`)."""
        parsed = parse_server_name(self.name)
        return parsed[2] if parsed else "production"

    @property
    def predict_url(self) -> str:
        return self.url.rstrip("/") + self.predict_path

    @property
    def health_url(self) -> str:
        return self.url.rstrip("/") + self.health_path

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "role": self.role, "predict_url": self.predict_url, "health_url": self.health_url}


@dataclass
class Answer:
    """A server's answer to rows: predictions, positive-class probabilities (binary classifiers on our contract),
    and the model version that answered."""

    predictions: list[Any]
    probabilities: list[float] | None
    model_version: str
    request_ids: list[str] = field(default_factory=list)  # one per request sent (the prediction log's ids)


class ServingBackend(ABC):
    name = ""
    serves_our_contract = True  # {"records": [...]} -> {"predictions": [...], "model_version": ...}
    chooses_own_port = False
    stack_name = ""  # the stack this backend serves for (set by `serving.stack_backend.backend_for`)
    stack_id = ""

    @abstractmethod
    def start(self, release: Release, host: str, port: int, timeout: int, config: DeploymentConfig) -> Endpoint:
        """Start a server for `release` on host:port (beside any running one) and return its endpoint."""

    @abstractmethod
    def endpoints(self, model_name: str | None = None) -> list[Endpoint]:
        """The backend's servers (of one model, or all), running or not."""

    @abstractmethod
    def stop(self, endpoint: Endpoint) -> None:
        """Stop the server and every process it started, and forget it."""

    # The request and answer shapes are the class's (no server state): `predict` works from a recorded endpoint.
    @classmethod
    def request_body(cls, records: list[dict[str, Any]], request_id: str | None = None) -> dict[str, Any]:
        return {"records": records}

    @classmethod
    def request_headers(cls, request_id: str | None = None) -> dict[str, str]:
        """Our servers take a client's request id as the `X-Request-ID` header."""
        return {"X-Request-ID": request_id} if request_id else {}

    @classmethod
    def parse_predictions(cls, body: Any) -> list[Any]:
        return list(body["predictions"])

    @classmethod
    def predict(
        cls, endpoint: Endpoint, records: list[dict[str, Any]], timeout: float = 60.0, request_id: str | None = None
    ) -> tuple[list, Any]:
        """(predictions, full response) over HTTP; an error response raises with the server's message.
        `request_id`: the id the prediction log keeps for this request (default: the server makes one)."""
        body = post_records(
            endpoint.predict_url,
            cls.request_body(records, request_id),
            timeout=timeout,
            headers=cls.request_headers(request_id),
        )
        return cls.parse_predictions(body), body

    @classmethod
    def predict_all(cls, endpoint: Endpoint, records: list[dict[str, Any]], batch_rows: int) -> Answer:
        """All records answered, sent in batches of `batch_rows`."""
        answer = Answer(predictions=[], probabilities=[], model_version=endpoint.model_version)
        for start in range(0, len(records), batch_rows):
            batch, body = cls.predict(endpoint, records[start : start + batch_rows])
            answer.predictions.extend(batch)
            probabilities = body.get("probabilities") if isinstance(body, dict) else None
            if probabilities is None or answer.probabilities is None:
                answer.probabilities = None
            else:
                answer.probabilities.extend(probabilities)
            if isinstance(body, dict) and body.get("model_version"):
                answer.model_version = str(body["model_version"])
            if isinstance(body, dict) and body.get("request_id"):
                answer.request_ids.append(str(body["request_id"]))
        return answer
