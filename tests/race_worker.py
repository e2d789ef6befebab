"""One release command after another in a long-lived process, for tests/test_release_race.py: each round's
promote, rollback and deploy start in three of these at the same moment, without paying ZenML's import each time.

Commands arrive on stdin, one JSON line each, with the wall-clock time to start at (the rounds stagger the three
commands, so that each order of stage changes and lock waits comes up); each answer is one JSON line on the file
descriptor named by the first argument (stdout and stderr carry ZenML's log, which goes to a file). An error a
user would see (a LifecycleError) is an answer; anything else ends the worker with its traceback in the log.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def run(command: dict[str, Any]) -> dict[str, Any]:
    from lifecycle.config import DeploymentConfig, load_config
    from workflows import release
    from workflows.runner import run_deployment

    model, deployment = command["model"], DeploymentConfig.model_validate(command["deployment"])
    action = command["action"]
    if action == "promote":
        promotion = load_config(command["config"]).promotion
        outcome = release.promote(model, command["version"], promotion, deployment, force=True, reason="race")
        return {"production": outcome.version, "redeployed": outcome.redeployed}
    if action == "rollback":
        outcome = release.rollback(model, command["version"], deployment, reason="race")
        return {"production": outcome.version, "redeployed": outcome.redeployed, "notes": outcome.notes}
    if action == "deploy":
        return {"redeployed": run_deployment(model, deployment)}
    raise ValueError(f"unknown action {action!r}")


def main() -> None:
    from lifecycle.errors import LifecycleError
    from workflows.runner import ready_stack

    answers = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    ready_stack()  # imports and checks the stack once, before the first round
    answers.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        command = json.loads(line)
        time.sleep(max(0.0, command.get("start_at", 0) - time.time()))
        started = time.monotonic()
        try:
            answer = run(command)
        except LifecycleError as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answer["seconds"] = round(time.monotonic() - started, 2)
        answers.write(json.dumps(answer, default=str) + "\n")


if __name__ == "__main__":
    main()
