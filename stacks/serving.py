"""Serving backends: the active stack's way of running a model server, behind one small interface.

- `BentoMLBackend`: a stack with a BentoML model deployer — this project's BentoML service, built into a bento.
- `MLflowBackend`: a stack with an MLflow model deployer — MLflow's scoring server for the registered version.
- `ZenMLBackend`: any other stack — ZenML's pipeline deployer serving `pipelines/inference.py`.

`backend_for(capabilities)` chooses, in one place. `rollout()` starts a new server beside the running ones,
smoke-tests it, and only then stops the old ones: a failed deploy leaves the old server serving.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.config import PROJECT_ROOT, DeploymentConfig
from lifecycle.errors import LifecycleError
from lifecycle.load import process_tree
from lifecycle.serving import choose_port, json_records, prediction_difference
from lifecycle.validation import FeatureSchema
from stacks.capabilities import StackCapabilities


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
    def predict_url(self) -> str:
        return self.url.rstrip("/") + self.predict_path

    @property
    def health_url(self) -> str:
        return self.url.rstrip("/") + self.health_path

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "predict_url": self.predict_url, "health_url": self.health_url}


# --- HTTP --------------------------------------------------------------------------------------------------


def http_json(url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    """POST `body` as JSON (GET when None); returns (status, parsed JSON or text). Never raises on 4xx/5xx."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def error_text(body: Any) -> str:
    """The message of an error response: ours and MLflow's are objects; BentoML wraps ours in a list."""
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body.get("detail") or "")
    return str(body or "")


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        status, _ = http_json(url, timeout=timeout)
    except (urllib.error.URLError, OSError):
        return False
    return status == 200


def wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(url):
            return
        time.sleep(0.5)
    raise DeploymentFailed(f"{url} did not answer healthy within {timeout:.0f} s")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Command-line markers of the server processes this project starts (ZenML's service daemon, ZenML's deployment
# app): a recorded pid that no longer shows one of them is a recycled pid, not our server.
SERVER_MARKERS = (b"zenml.services.local.local_daemon_entrypoint", b"zenml.deployers.server")


def server_alive(pid: int | None) -> bool:
    """True when `pid` runs and is still one of our servers (records outlive reboots; pids are reused)."""
    if not pid_alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(marker in command for marker in SERVER_MARKERS)


def freeze_tree(pid: int | None) -> list[int]:
    """SIGSTOP `pid` and its descendants until no new one appears: a stopped process spawns nothing more, so the
    list is complete (a server still starting up would otherwise start a worker that outlives it)."""
    frozen: list[int] = []
    while True:
        new = [p for p in process_tree(pid) if p not in frozen]
        if not new:
            return frozen
        for p in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGSTOP)
        frozen += new
        time.sleep(0.05)


def stop_process(pid: int | None) -> None:
    """Stop a server and every process it started, at once (SIGKILL of the frozen tree). Model servers hold no
    state to flush, and traffic was drained before this is called. A pid that is not our server is left alone."""
    if not server_alive(pid):
        return
    frozen = freeze_tree(pid)
    for p in frozen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_alive(p) for p in frozen):
        time.sleep(0.05)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _unique_name(release: Release) -> str:
    return f"{release.model_name}-v{release.model_version}-{uuid.uuid4().hex[:6]}"


# --- backends ----------------------------------------------------------------------------------------------


class ServingBackend(ABC):
    name = ""
    serves_our_contract = True  # {"records": [...]} -> {"predictions": [...], "model_version": ...}
    chooses_own_port = False

    @abstractmethod
    def start(self, release: Release, host: str, port: int, timeout: int, config: DeploymentConfig) -> Endpoint:
        """Start a server for `release` on host:port (beside any running one) and return its endpoint."""

    @abstractmethod
    def endpoints(self, model_name: str | None = None) -> list[Endpoint]:
        """The backend's servers (of one model, or all), running or not."""

    @abstractmethod
    def stop(self, endpoint: Endpoint) -> None:
        """Stop the server and every process it started, and forget it."""

    def request_body(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"records": records}

    def parse_predictions(self, body: Any) -> list[Any]:
        return list(body["predictions"])

    def predict(self, endpoint: Endpoint, records: list[dict[str, Any]], timeout: float = 60.0) -> tuple[list, Any]:
        """(predictions, full response) over HTTP; an error response raises with the server's message."""
        try:
            status, body = http_json(endpoint.predict_url, self.request_body(records), timeout=timeout)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LifecycleError(
                f"{endpoint.predict_url} did not answer ({reason}). Fix: `python run.py status`, then "
                "`python run.py deploy` if it is down."
            ) from exc
        if status != 200:
            raise LifecycleError(f"{endpoint.predict_url} answered {status}: {error_text(body)}")
        return self.parse_predictions(body), body


def _service_pid(service: Any) -> int | None:
    pid = getattr(service.status, "pid", None)
    if pid:
        return pid
    runtime = getattr(service.status, "runtime_path", None)
    pid_file = Path(runtime) / "service.pid" if runtime else None
    if pid_file and pid_file.is_file():
        try:
            return int(pid_file.read_text().strip())
        except ValueError:
            return None
    return None


class ModelDeployerBackend(ServingBackend):
    """Shared by the BentoML and MLflow backends: servers are ZenML services of the stack's model deployer."""

    predict_path = ""
    health_path = ""

    def __init__(self, deployer: Any):
        self.deployer = deployer

    def _endpoint(self, service: Any, created: str = "") -> Endpoint:
        port = service.endpoint.status.port if service.endpoint and service.endpoint.status else None
        host = service.endpoint.status.hostname if service.endpoint and service.endpoint.status else None
        url = f"http://{host or '127.0.0.1'}:{port}" if port else ""
        pid = _service_pid(service)
        return Endpoint(
            backend=self.name,
            name=service.config.service_name,
            model_name=service.config.model_name,
            model_version=str(service.config.model_version),
            url=url,
            predict_path=self.predict_path,
            health_path=self.health_path,
            running=bool(url) and server_alive(pid),
            created=created,
            pid=pid,
            details={"service_id": str(service.uuid), "deployer": self.deployer.name},
        )

    @abstractmethod
    def service_class(self) -> Any:
        """The ZenML service class this backend's servers run as."""

    def service_type(self) -> Any:
        return self.service_class().SERVICE_TYPE

    def endpoints(self, model_name: str | None = None) -> list[Endpoint]:
        """The deployer's servers, read from their records: ZenML's `find_model_server` also polls and rewrites
        each service's status (slow, and racy beside a deploy), and with `model_name` matches only the model's
        latest version. Liveness comes from the process, health from `is_healthy`."""
        from zenml.client import Client
        from zenml.services.service import BaseService

        kind = self.service_type()
        records = Client().list_services(type=kind.type, flavor=kind.flavor, size=1000, hydrate=True).items
        found = []
        for record in records:
            if not record.service_source or (model_name and record.config.get("model_name") != model_name):
                continue
            if not record.status or not record.endpoint:
                continue  # still being created: not a server yet
            service = BaseService.from_model(record)
            runtime = getattr(service.status, "runtime_path", None) or getattr(service.config, "root_runtime_path", "")
            if not str(runtime or "").startswith(str(self.deployer.local_path)):
                continue  # another deployer component's server
            found.append(self._endpoint(service, record.created.isoformat(timespec="microseconds")))
        return found

    def stop(self, endpoint: Endpoint) -> None:
        from uuid import UUID

        # The whole tree, server first: BentoML's workers run in sessions of their own and would outlive a
        # daemon that ZenML kills on its own.
        stop_process(endpoint.pid)
        self.deployer.delete_model_server(UUID(endpoint.details["service_id"]), force=True)

    def _deploy(self, config: Any, timeout: int) -> Any:
        """Always a new service beside the running ones. ZenML's `deploy_model` first looks for a service with
        "the same configuration" and hands that back — it matched the running server of another version — so
        its creation steps are taken here. A server that fails to start is stopped (ZenML would delete the
        record and leave the daemon running) and the error carries the end of its log."""
        from zenml.client import Client
        from zenml.model_deployers.base_model_deployer import get_model_version_id_if_exists
        from zenml.models import ServiceRequest
        from zenml.utils.source_utils import resolve

        client = Client()
        # Recorded with its source at once: a concurrent `find_model_server` (a `status` call, a polling client)
        # deletes service records that have none yet.
        record = client.zen_store.create_service(
            ServiceRequest(
                name=config.service_name,
                service_type=self.service_type(),
                service_source=resolve(self.service_class()).import_path,
                config=config.model_dump(),
                project=client.active_project.id,
                model_version_id=get_model_version_id_if_exists(config.model_name, config.model_version),
            )
        )
        runtime = Path(self.deployer.local_path) / str(record.id)
        try:
            service = self.deployer.perform_deploy_model(id=record.id, config=config, timeout=timeout)
        except Exception as exc:
            log = _log_tail(runtime / "service.log")
            with contextlib.suppress(ValueError, OSError):
                stop_process(int((runtime / "service.pid").read_text().strip()))
            client.delete_service(record.id)
            raise DeploymentFailed(f"{self.name} server did not start: {exc}{log}") from exc
        deadline = time.monotonic() + 15
        while _service_pid(service) is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the daemon writes its pid file just after it starts: needed to stop it cleanly
        if _service_pid(service) is None:
            client.delete_service(record.id)
            raise DeploymentFailed(
                f"{self.name} server wrote no pid file within 15 s{_log_tail(runtime / 'service.log')}"
            )
        client.update_service(
            id=service.uuid,
            name=service.config.service_name,
            service_source=service.model_dump().get("type"),
            admin_state=service.admin_state,
            status=service.status.model_dump(),
            endpoint=service.endpoint.model_dump() if service.endpoint else None,
            prediction_url=service.get_prediction_url(),
            health_check_url=service.get_healthcheck_url(),
        )
        return service


def _log_tail(log: Path, lines: int = 5) -> str:
    if not log.is_file():
        return ""
    tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return f" | last lines of {log}: " + " | ".join(tail)


class BentoMLBackend(ModelDeployerBackend):
    name = "bentoml"
    predict_path = "/predict"
    health_path = "/readyz"

    def service_class(self) -> Any:
        from stacks.bentoml_flavor import BentoMLServiceV14

        return BentoMLServiceV14

    def bento_for(self, release: Release, config: DeploymentConfig) -> Any:
        """Save the model to the BentoML store and build its bento, offline (once per MCP version)."""
        import bentoml
        from bentoml.exceptions import NotFound

        safe = re.sub(r"[^a-z0-9_]+", "_", release.model_name.lower()).strip("_") or "model"
        version = f"v{release.model_version}-{release.model_version_id.replace('-', '')[:12]}"
        model_tag = f"{safe}:{version}"
        try:
            bentoml.models.get(model_tag)
        except NotFound:
            bentoml.sklearn.save_model(
                model_tag,
                release.model,
                custom_objects={"feature_schema": release.schema.model_dump()},
                metadata={"zenml_model": release.model_name, "zenml_version": release.model_version},
                labels={"zenml_version_id": release.model_version_id},
            )
        bento_tag = f"{safe}_service:{version}"
        with contextlib.suppress(NotFound):
            return bentoml.bentos.get(bento_tag)
        with tempfile.TemporaryDirectory(prefix="bento-build-") as build:
            shutil.copytree(
                PROJECT_ROOT / "lifecycle", Path(build) / "lifecycle", ignore=shutil.ignore_patterns("__pycache__")
            )
            reference = {
                "tag": model_tag,
                "model_name": release.model_name,
                "model_version": release.model_version,
                "max_rows": config.max_rows_per_request,
                "max_body_bytes": config.max_body_bytes,
            }
            (Path(build) / "bento_model.json").write_text(json.dumps(reference))
            (Path(build) / "bentofile.yaml").write_text(
                json.dumps(
                    {
                        "name": bento_tag.split(":")[0],
                        "service": "lifecycle.bento_service:TabularModel",
                        "include": ["lifecycle/*.py", "bento_model.json"],
                        "python": {"lock_packages": False, "packages": []},
                        "labels": {"zenml_model": release.model_name, "zenml_version": release.model_version},
                    }
                )
            )
            # A fresh interpreter imports this bento's own copy of the service and its model reference.
            result = subprocess.run(
                [sys.executable, "-m", "bentoml", "build", ".", "--version", version],
                cwd=build,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": build},
            )
            if result.returncode != 0:
                raise DeploymentFailed(f"bentoml build failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return bentoml.bentos.get(bento_tag)

    def start(self, release: Release, host: str, port: int, timeout: int, config: DeploymentConfig) -> Endpoint:
        from zenml.integrations.bentoml.services.bentoml_local_deployment import BentoMLLocalDeploymentConfig

        bento = self.bento_for(release, config)
        service_config = BentoMLLocalDeploymentConfig(
            model_name=release.model_name,
            model_version=release.model_version,
            model_uri=str(bento.path),
            bento_tag=str(bento.tag),
            bento_uri=str(bento.path),
            working_dir=str(bento.path_of("src")),
            apis=["predict"],
            workers=1,
            port=port,
            host=host,
            service_name=_unique_name(release),
            description=f"{release.model_name} version {release.model_version}",
        )
        service = self._deploy(service_config, timeout)
        return self._endpoint(service)


class MLflowBackend(ModelDeployerBackend):
    name = "mlflow"
    predict_path = "/invocations"
    health_path = "/ping"
    serves_our_contract = False  # MLflow's own request shape
    chooses_own_port = True  # ZenML's MLflow service allocates a free port on `localhost`

    def request_body(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"dataframe_records": records}

    def service_class(self) -> Any:
        from zenml.integrations.mlflow.services.mlflow_deployment import MLFlowDeploymentService

        return MLFlowDeploymentService

    def start(self, release: Release, host: str, port: int, timeout: int, config: DeploymentConfig) -> Endpoint:
        from zenml.integrations.mlflow.services.mlflow_deployment import MLFlowDeploymentConfig

        registered = release.mlflow_registered_version or register_twin(release)
        # MLflow's server runs `uvicorn` by name: it must be found next to this interpreter.
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        service_config = MLFlowDeploymentConfig(
            model_uri=f"models:/{release.model_name}/{registered}",
            model_name=release.model_name,
            model_version=release.model_version,
            registry_model_name=release.model_name,
            registry_model_version=registered,
            workers=1,
            timeout=timeout,
            service_name=_unique_name(release),
            description=f"{release.model_name} version {release.model_version}",
        )
        service = self._deploy(service_config, timeout)
        return self._endpoint(service)


def register_twin(release: Release) -> str:
    """Register the version's model in the stack's MLflow registry (a version trained on a stack without MLflow
    has no twin there), point the alias `champion` at it, and link it on the MCP version."""
    import mlflow
    from zenml import log_metadata
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.stack import StackComponent

    from lifecycle.tracking import CHAMPION_ALIAS, as_plain_columns, log_model, register_version

    stack = Client().active_stack_model
    trackers = stack.components.get(StackComponentType.EXPERIMENT_TRACKER) or []
    if not trackers or trackers[0].flavor_name != "mlflow":
        raise DeploymentFailed(
            f"{release.model_name} version {release.model_version} is not in an MLflow registry and stack "
            f"`{stack.name}` has no MLflow tracker to register it with. Fix: add the stack's MLflow tracker "
            "(see stacks/mlflow.yaml) or serve from another stack."
        )
    tracker = StackComponent.from_model(trackers[0])
    tracker.configure_mlflow()
    mlflow.set_experiment(tracker.config.experiment_name or "mlops_lifecycle")
    example = as_plain_columns(release.example[release.schema.model_inputs]) if release.example is not None else None
    tags = {
        "zenml_model_name": release.model_name,
        "zenml_model_version": release.model_version,
        "zenml_model_version_id": release.model_version_id,
        "registered_by": "deployment (trained on a stack without MLflow)",
    }
    with mlflow.start_run(run_name=f"{release.model_name}-v{release.model_version}-registration") as run:
        mlflow.set_tags(tags)
        model_uri, model_id = log_model(release.model, example)
        client = mlflow.MlflowClient()
        version = register_version(
            client,
            release.model_name,
            model_uri,
            model_id,
            run.info.run_id,
            tags,
            f"{release.model_name} version {release.model_version} ({release.model_version_id})",
        )
    client.set_registered_model_alias(release.model_name, CHAMPION_ALIAS, version)
    links = {
        "mlflow_run_id": run.info.run_id,
        "mlflow_model_uri": model_uri,
        "mlflow_registered_model": release.model_name,
        "mlflow_registered_version": version,
    }
    log_metadata(metadata={"mlflow": links}, model_name=release.model_name, model_version=release.model_version)
    release.mlflow_registered_version = version
    return version


class ZenMLBackend(ServingBackend):
    """ZenML's pipeline deployer: `pipelines/inference.py` as a long-running HTTP service."""

    name = "zenml"
    predict_path = "/predict"
    health_path = "/health"

    def __init__(self, deployer_name: str):
        self.deployer_name = deployer_name

    @staticmethod
    def _parse_name(name: str) -> tuple[str, str] | None:
        match = re.fullmatch(r"(.+)-v(\d+)-[0-9a-f]{6}", name)
        return (match.group(1), match.group(2)) if match else None

    def _endpoint(self, deployment: Any) -> Endpoint:
        metadata = deployment.deployment_metadata or {}
        parsed = self._parse_name(deployment.name) or ("?", "?")
        pid = metadata.get("pid")
        return Endpoint(
            backend=self.name,
            name=deployment.name,
            model_name=parsed[0],
            model_version=parsed[1],
            url=deployment.url or "",
            predict_path=self.predict_path,
            health_path=self.health_path,
            running=bool(deployment.url) and server_alive(pid),
            created=deployment.created.isoformat(timespec="microseconds") if deployment.created else "",
            pid=pid,
            details={"deployment_id": str(deployment.id), "status": str(deployment.status)},
        )

    def endpoints(self, model_name: str | None = None) -> list[Endpoint]:
        from zenml.client import Client

        from lifecycle.names import INFERENCE_PIPELINE

        client = Client()
        found = []
        for deployment in client.list_deployments(size=1000, hydrate=True).items:
            if deployment.pipeline is None or deployment.pipeline.name != INFERENCE_PIPELINE:
                continue
            endpoint = self._endpoint(deployment)
            if model_name is None or endpoint.model_name == model_name:
                found.append(endpoint)
        return found

    def stop(self, endpoint: Endpoint) -> None:
        from zenml.client import Client

        stop_process(endpoint.pid)
        Client().delete_deployment(endpoint.details["deployment_id"], force=True, timeout=30)

    def start(self, release: Release, host: str, port: int, timeout: int, config: DeploymentConfig) -> Endpoint:
        from zenml.client import Client

        from pipelines.inference import deployable_inference_pipeline

        name = _unique_name(release)
        pipeline = deployable_inference_pipeline(release, host, port, config)
        try:
            deployment = pipeline.deploy(deployment_name=name, timeout=timeout)
        except Exception as exc:
            # Best effort: a deployment that failed early may have left no record or no process to stop.
            with contextlib.suppress(Exception):
                stale = Client().get_deployment(name)
                stop_process((stale.deployment_metadata or {}).get("pid"))
                Client().delete_deployment(stale.id, force=True, timeout=10)
            raise DeploymentFailed(f"ZenML deployment {name} did not start: {exc}") from exc
        return self._endpoint(Client().get_deployment(deployment.id, hydrate=True))


def backend_for(capabilities: StackCapabilities) -> ServingBackend:
    """The stack's model deployer when it has one (BentoML or MLflow), else ZenML's own pipeline deployer."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.stack import StackComponent

    model_deployer = capabilities.get("model_deployer")
    if model_deployer is not None:
        # Built from the stack record itself: `Client().active_stack` can still hold the previous stack
        # in a process that switched stacks.
        stack = Client().get_stack(capabilities.stack, allow_name_prefix_match=False)
        component = StackComponent.from_model(stack.components[StackComponentType.MODEL_DEPLOYER][0])
        if model_deployer.flavor.startswith("bentoml"):
            if model_deployer.flavor != "bentoml_local":
                raise LifecycleError(
                    f"stack `{capabilities.stack}` uses the `{model_deployer.flavor}` model deployer, which cannot "
                    "start BentoML 1.4 services locally. Fix: `python run.py stacks up` registers the `bentoml` "
                    "and `full` stacks with this project's `bentoml_local` flavor."
                )
            return BentoMLBackend(component)
        if model_deployer.flavor == "mlflow":
            return MLflowBackend(component)
        raise LifecycleError(
            f"stack `{capabilities.stack}`: model deployer flavor `{model_deployer.flavor}` is not supported."
        )
    deployer = capabilities.get("deployer")
    if deployer is None:
        raise LifecycleError(
            f"stack `{capabilities.stack}` has neither a model deployer nor a pipeline deployer, so nothing can serve. "
            "Fix: `zenml stack update <stack> -D default` (ZenML's local deployer) or `zenml stack set default`."
        )
    return ZenMLBackend(deployer.name)


def _one_line(error: Exception) -> str:
    return " | ".join(line.strip() for line in str(error).splitlines() if line.strip())


# --- rollout -----------------------------------------------------------------------------------------------


@dataclass
class SmokeTest:
    rows: int
    max_abs_difference: float
    healthy: bool
    seconds_to_ready: float


def smoke_test(
    backend: ServingBackend, endpoint: Endpoint, release: Release, holdout: pd.DataFrame, config: DeploymentConfig
) -> SmokeTest:
    """Health endpoint up, then HTTP predictions on held-out rows equal the same artifact's in-process ones."""
    from lifecycle.modeling import predict_scores

    if not is_healthy(endpoint.health_url, timeout=10):
        raise DeploymentFailed(f"{endpoint.health_url} is not healthy")
    rows = holdout.head(config.smoke_rows)
    records = json_records(rows, release.schema)
    served, body = backend.predict(endpoint, records)
    expected, _ = predict_scores(release.model, rows[release.schema.model_inputs])
    if len(served) != len(expected):
        raise DeploymentFailed(f"smoke test: {len(served)} predictions for {len(expected)} rows")
    if backend.serves_our_contract and str(body.get("model_version")) != release.model_version:
        raise DeploymentFailed(
            f"smoke test: the server says model version {body.get('model_version')}, expected {release.model_version}"
        )
    difference = prediction_difference(release.schema.task, served, list(expected))
    if difference > config.parity_tolerance:
        raise DeploymentFailed(
            f"smoke test: HTTP predictions differ from in-process ones by up to {difference:g} "
            f"(tolerance {config.parity_tolerance:g})"
        )
    return SmokeTest(rows=len(rows), max_abs_difference=difference, healthy=True, seconds_to_ready=0.0)


@dataclass
class Rollout:
    endpoint: Endpoint
    smoke: SmokeTest
    replaced: list[Endpoint]
    seconds_to_ready: float

    def metadata(self) -> dict[str, Any]:
        return {
            "backend": self.endpoint.backend,
            "url": self.endpoint.url,
            "predict_url": self.endpoint.predict_url,
            "health_url": self.endpoint.health_url,
            "name": self.endpoint.name,
            "model_version": self.endpoint.model_version,
            "deployed_at": _now(),
            "seconds_to_ready": round(self.seconds_to_ready, 2),
            "smoke_test_rows": self.smoke.rows,
            "parity_max_abs_difference": self.smoke.max_abs_difference,
            "replaced": [e.name for e in self.replaced],
        }


def rollout(
    backend: ServingBackend,
    release: Release,
    holdout: pd.DataFrame,
    config: DeploymentConfig,
    port: int | None = None,
    timeout: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Rollout:
    """Start the release beside what serves now, smoke-test it, then retire the old servers (after a drain)."""
    running = [e for e in backend.endpoints(release.model_name) if e.running]
    taken = {int(e.url.rsplit(":", 1)[1]) for e in running if e.url}
    preferred = port or config.port
    chosen = 0 if backend.chooses_own_port else choose_port(config.host, preferred, config.port_search, taken)
    if chosen and chosen != preferred:
        progress(f"port {preferred} is busy; using {chosen}")
    serving = ", ".join(e.url for e in running) or "nothing (no server was running)"
    started = time.monotonic()
    try:
        endpoint = backend.start(release, config.host, chosen, timeout or config.startup_timeout, config)
    except Exception as exc:
        raise DeploymentFailed(f"{_one_line(exc)}. The new server did not start; still serving: {serving}") from exc
    if endpoint.name in {e.name for e in running} or (endpoint.pid and endpoint.pid in {e.pid for e in running}):
        raise DeploymentFailed(f"the deployer handed back the running server {endpoint.name} instead of a new one")
    try:
        wait_healthy(endpoint.health_url, timeout or config.startup_timeout)
        ready = time.monotonic() - started
        smoke = smoke_test(backend, endpoint, release, holdout, config)
        if running and config.drain_seconds:
            time.sleep(config.drain_seconds)  # clients that looked up the old address finish against it
            if not is_healthy(endpoint.health_url, timeout=10):
                raise DeploymentFailed(f"{endpoint.health_url} stopped answering during the drain")
    except BaseException as exc:  # an interrupted deploy must not leave an untested server to be picked up
        backend.stop(endpoint)
        if not isinstance(exc, Exception):
            raise
        raise DeploymentFailed(f"{_one_line(exc)}. The new server was stopped; still serving: {serving}") from exc
    progress(f"{backend.name} server for version {release.model_version} healthy at {endpoint.url} in {ready:.1f} s")
    for old in running:
        backend.stop(old)
        progress(f"stopped the previous server {old.name} ({old.url})")
    smoke.seconds_to_ready = ready
    return Rollout(endpoint=endpoint, smoke=smoke, replaced=running, seconds_to_ready=ready)


def live_endpoint(backend: ServingBackend, model_name: str) -> Endpoint | None:
    """The newest running server of the model (during a rollout the new one, once it is healthy)."""
    running = [e for e in backend.endpoints(model_name) if e.running and is_healthy(e.health_url)]
    return max(running, key=lambda e: e.created, default=None)


# --- operations behind run.py deploy / predict / status / undeploy -------------------------------------------


def active_backend() -> ServingBackend:
    from stacks.capabilities import active_capabilities

    return backend_for(active_capabilities())


def undeploy(backend: ServingBackend, model_name: str | None) -> list[Endpoint]:
    """Stop every server of the model (of all models when None) that the active stack's backend runs."""
    stopped = backend.endpoints(model_name)
    for endpoint in stopped:
        backend.stop(endpoint)
    return stopped


def read_request_rows(path: str) -> list[dict[str, Any]]:
    """Rows to predict from a CSV/Parquet table, or a JSON file holding records or {"records": [...]}."""
    from lifecycle.data import check_data_path, read_table

    if path.lower().endswith(".json"):
        checked = check_data_path(path, suffixes=(".json",))
        try:
            payload = json.loads(Path(checked).read_text())
        except ValueError as exc:
            raise LifecycleError(f"{path} is not valid JSON ({exc}). Fix: write a list of row objects.") from exc
        records = payload.get("records") if isinstance(payload, dict) else payload
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise LifecycleError(f'{path} must hold a list of row objects, or {{"records": [...]}}.')
        return records
    table = read_table(path)
    table = table.astype(object).where(table.notna(), None)
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()} for row in table.to_dict("records")
    ]


def predict_with(
    backend: ServingBackend, endpoint: Endpoint, records: list[dict[str, Any]], batch_rows: int
) -> tuple[list[Any], str]:
    """Predictions for all records, sent in batches; returns (predictions, model version that answered)."""
    predictions: list[Any] = []
    version = endpoint.model_version
    for start in range(0, len(records), batch_rows):
        batch, body = backend.predict(endpoint, records[start : start + batch_rows])
        predictions.extend(batch)
        if isinstance(body, dict) and body.get("model_version"):
            version = str(body["model_version"])
    return predictions, version


def curl_example(backend: ServingBackend, endpoint: Endpoint, record: dict[str, Any]) -> str:
    body = json.dumps(backend.request_body([record]))
    return f"curl -s -X POST {endpoint.predict_url} -H 'Content-Type: application/json' -d '{body}'"
