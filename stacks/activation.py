"""Making a registered stack the active one (`--stack NAME` of the commands)."""

from __future__ import annotations

from zenml.client import Client

from lifecycle.environment import file_lock, state_dir
from lifecycle.errors import StackError


def activate_stack(name: str) -> None:
    """Make `name` the active stack. ZenML rewrites its configuration file in place to do so, and a process reading
    that file at the same moment (another command starting) fails: the lock keeps our own commands apart, and the
    file is left alone when the stack is already active."""
    try:
        with file_lock(state_dir() / "locks" / "zenml-config.lock"):
            client = Client()
            stack = client.get_stack(name, allow_name_prefix_match=False)
            if client.active_stack_model.id != stack.id:
                client.activate_stack(stack.id)
    except KeyError as exc:
        raise StackError(
            f"stack `{name}` is not registered. Fix: `python run.py stacks up {name}` "
            "(stacks are defined in stacks/*.yaml), then run again."
        ) from exc
