"""What serves on the active stack, for `status`, `predict` and `undeploy`: read from the project's record of its
servers when there is one (well under a second), else from the stack's deployer (seconds: ZenML starts), which
then refreshes the record. Liveness always comes from the process and the health endpoint."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lifecycle.config import StandbyConfig
from serving import standby
from serving.backends.base import Endpoint, ServingBackend
from serving.front_door import close_behind, current
from serving.processes import server_alive, stop_process
from serving.registry import active_record, record_all, record_change
from serving.rollout import newest_healthy
from serving.stack_backend import BACKEND_CLASSES


@dataclass
class Served:
    stack: str
    stack_id: str
    backend: type[ServingBackend] | ServingBackend
    endpoints: list[Endpoint]  # of every model on the stack
    from_record: bool

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def of(self, model_name: str | None) -> list[Endpoint]:
        return [e for e in self.endpoints if model_name is None or e.model_name == model_name]

    def live(self, model_name: str) -> Endpoint | None:
        return newest_healthy(self.of(model_name))

    def stop(self, model_name: str | None) -> list[Endpoint]:
        """Stop the model's servers (every model's when None). From the record, the processes are stopped and the
        record updated; the deployer's own records of them are cleared by the next deploy on this stack."""
        stopped = self.of(model_name)
        for endpoint in stopped:
            if isinstance(self.backend, ServingBackend):
                self.backend.stop(endpoint)
            else:  # read from the record (`from_record`): a backend class, no deployer to ask
                stop_process(endpoint.pid)
        record_change(self.stack_id, self.stack, self.backend_name, removed=stopped)
        for name in {e.model_name for e in stopped}:
            standby.forget(name, [e.name for e in stopped])
        close_behind(stopped)  # the model's front door, when it stood in front of these
        return stopped

    def retire_standbys(self, model_name: str | None, config: StandbyConfig) -> list[Endpoint]:
        """Stop the standbys that are due (expired, beyond `count`, of the version the front door serves) of the
        model (every model's when None); the ones still waiting stay."""
        gone: list[Endpoint] = []
        for name in sorted({e.model_name for e in self.of(model_name)}):
            door = current(name)
            due = standby.due(name, config, door.model_version if door else None)
            for endpoint in due:
                if isinstance(self.backend, ServingBackend):
                    self.backend.stop(endpoint)
                else:
                    stop_process(endpoint.pid)
            record_change(self.stack_id, self.stack, self.backend_name, removed=due)
            gone += due
        stopped = {e.name for e in gone}
        self.endpoints = [e for e in self.endpoints if e.name not in stopped]
        return gone


def served_on_active_stack() -> Served:
    found = active_record()
    if found is not None:
        stack_id, record = found
        endpoints = [replace(e, running=bool(e.url) and server_alive(e.pid)) for e in record["endpoints"]]
        backend_class = BACKEND_CLASSES.get(record["backend"])
        if backend_class is not None:
            return Served(record["stack"], stack_id, backend_class, endpoints, from_record=True)
    from serving.stack_backend import active_backend

    backend = active_backend()
    endpoints = backend.endpoints(None)
    record_all(backend.stack_id, backend.stack_name, backend.name, endpoints)
    return Served(backend.stack_name, backend.stack_id, backend, endpoints, from_record=False)
