"""ZenML's pipeline deployer: the inference pipeline of `zenml_service.py` as a long-running HTTP service (the
backend of stacks without a model deployer, the default stack among them)."""

from __future__ import annotations

import contextlib
from typing import Any

from lifecycle.config import DeploymentConfig
from serving.backends.base import DeploymentFailed, Endpoint, Release, ServingBackend, parse_server_name
from serving.processes import server_alive, stop_process


class ZenMLBackend(ServingBackend):
    """ZenML's pipeline deployer: `serving/backends/zenml_service.py` as a long-running HTTP service."""

    name = "zenml"
    predict_path = "/predict"
    health_path = "/health"

    def __init__(self, deployer_name: str):
        self.deployer_name = deployer_name

    def _endpoint(self, deployment: Any) -> Endpoint:
        metadata = deployment.deployment_metadata or {}
        parsed = parse_server_name(deployment.name) or ("?", "?", "")
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

        from serving.backends.zenml_service import deployable_inference_pipeline

        name = release.server_name()
        pipeline = deployable_inference_pipeline(release, host, port, config, server=name)
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
