"""Shared by the BentoML and MLflow backends: their servers are ZenML services of the stack's model deployer."""

from __future__ import annotations

import contextlib
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

from serving.backends.base import DeploymentFailed, Endpoint, ServingBackend
from serving.processes import server_alive, stop_process


def service_pid(service: Any) -> int | None:
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
        pid = service_pid(service)
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
        record and leave the daemon running) and the error carries the end of its log. A daemon that dies while
        starting up gets one more try: ZenML's daemons read its configuration files as another process rewrites
        them, and then find them empty (`'NoneType' object has no attribute 'update'`)."""
        try:
            return self._deploy_once(config, timeout)
        except DaemonDidNotStart:
            return self._deploy_once(config, timeout)

    def _deploy_once(self, config: Any, timeout: int) -> Any:
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
            log = log_tail(runtime / "service.log")
            pid_file = runtime / "service.pid"
            started = pid_file.is_file()
            with contextlib.suppress(ValueError, OSError):
                stop_process(int(pid_file.read_text().strip()))
            client.delete_service(record.id)
            failure = DeploymentFailed if started else DaemonDidNotStart
            raise failure(f"{self.name} server did not start: {exc}{log}") from exc
        deadline = time.monotonic() + 15
        while service_pid(service) is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the daemon writes its pid file just after it starts: needed to stop it cleanly
        if service_pid(service) is None:
            client.delete_service(record.id)
            raise DaemonDidNotStart(
                f"{self.name} server wrote no pid file within 15 s{log_tail(runtime / 'service.log')}"
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


class DaemonDidNotStart(DeploymentFailed):
    """The service's daemon process ended before it wrote its pid file."""


def log_tail(log: Path, lines: int = 5) -> str:
    if not log.is_file():
        return ""
    tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return f" | last lines of {log}: " + " | ".join(tail)
