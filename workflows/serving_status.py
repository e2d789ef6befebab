"""What serves on the active stack (`status`) and stopping it (`undeploy`): from the project's serving record,
without starting ZenML when the record knows the servers."""

from __future__ import annotations

from lifecycle.config import StandbyConfig
from serving.client import is_healthy
from serving.served import served_on_active_stack
from serving.standby import standbys
from workflows.reporting import status_table


def status_text(model_name: str | None, config: StandbyConfig | None = None) -> str:
    """The model's servers (every model's when None), where they are and whether they answer; standbys that
    are due (expired, beyond `config.count`) are stopped first, and said so."""
    served = served_on_active_stack()
    retired = served.retire_standbys(model_name, config) if config is not None else []
    endpoints = served.of(model_name)
    health = {e.name: e.running and is_healthy(e.health_url) for e in endpoints}
    waiting = {s.endpoint.name: s for name in {e.model_name for e in endpoints} for s in standbys(name)}
    text = status_table(served.stack, served.backend_name, model_name, endpoints, health, waiting)
    stopped = [f"  stopped the expired standby {e.name} (version {e.model_version}, {e.url})" for e in retired]
    return "\n".join([text, *stopped])


def stop_servers(model_name: str | None) -> list[str]:
    """Stop the model's servers (every model's when None); one line per server, then the count."""
    stopped = served_on_active_stack().stop(model_name)
    lines = [f"  stopped {e.backend} server {e.name} ({e.url or 'not running'})" for e in stopped]
    what = f"`{model_name}`" if model_name else "any model"
    lines.append(f"{len(stopped)} server(s) stopped." if stopped else f"Nothing serves {what} on this stack.")
    return lines
