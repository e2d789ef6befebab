"""`python run.py predict`: rows sent to the model served on the active stack, and the answers as lines or a CSV.
Reads the project's serving record only: no ZenML start-up when the record knows the servers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lifecycle.config import load_deployment_config
from lifecycle.errors import LifecycleError
from lifecycle.hints import run_hint
from serving.client import read_request_rows
from serving.served import served_on_active_stack


@dataclass
class Predicted:
    lines: list[str] = field(default_factory=list)  # the predictions (or where they were written), for stdout
    note: str = ""  # which version answered, where, with which request ids: for stderr


def predict_file(input_path: str, output_path: str | None, deployment_path: str, model: Callable[[], str]) -> Predicted:
    """Send the rows of `input_path` to the live server of the model `model()` names (asked once the file is
    known to be usable; serving settings from `deployment_path`); with `output_path`, write the rows with their
    predictions there."""
    records = read_request_rows(input_path)  # a bad input file is named before any server is looked for
    name = model()
    deployment = load_deployment_config(deployment_path)
    served = served_on_active_stack()
    endpoint = served.live(name)
    if endpoint is None:
        raise LifecycleError(
            f"`python run.py predict`: no healthy {served.backend_name} server is serving `{name}` on stack "
            f"`{served.stack}`. Fix: `{run_hint()} deploy --model-name {name}` (`{run_hint()} status` shows "
            "what serves here)."
        )
    answer = served.backend.predict_all(endpoint, records, deployment.max_rows_per_request)
    result = Predicted()
    if output_path:
        import pandas as pd

        table = pd.DataFrame(records).assign(prediction=answer.predictions)
        if answer.probabilities is not None:
            table["probability"] = answer.probabilities
        table.to_csv(output_path, index=False)
        result.lines.append(f"{len(answer.predictions)} predictions written to {output_path}")
    elif answer.probabilities is not None:
        pairs = zip(answer.predictions, answer.probabilities, strict=True)
        result.lines += [f"{value}\t{probability:.4f}" for value, probability in pairs]
    else:
        result.lines += [str(value) for value in answer.predictions]
    result.note = (
        f"`{name}` version {answer.model_version} served by {served.backend_name} at {endpoint.predict_url}: "
        f"{len(answer.predictions)} rows; request id {', '.join(answer.request_ids) or 'not returned'} "
        f"(`{run_hint()} trace ID`)"
        + (
            "; second column: probability of the positive class"
            if answer.probabilities is not None and not output_path
            else ""
        )
    )
    return result
