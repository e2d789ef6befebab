"""One stack measured for `python run.py compare` (measurement/comparison.py), in a child process of its own
(`python -m measurement.comparison_stack`): register the stack, train, monitor, serve and load the server, and
read what the stack's tools recorded. A stage that fails is recorded with its error. Progress goes to stderr as
PROGRESS lines, the result to the workspace's results folder."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lifecycle.config import ComparisonSize, RunConfig
from measurement.comparison_workspace import Workspace

PROGRESS = "@@progress "
WARM_UP = 10  # requests before the measured load


def _progress(text: str) -> None:
    print(PROGRESS + text, file=sys.stderr, flush=True)


def _probe(url: str, timeout: float = 10.0) -> dict[str, Any]:
    """GET `url`: its status and whether it looks like Prometheus metrics (nothing is assumed)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, text = response.status, response.read(200_000).decode(errors="replace")
    except urllib.error.HTTPError as error:
        status, text = error.code, ""
    except (urllib.error.URLError, OSError) as error:
        return {"status": None, "error": str(getattr(error, "reason", error))}
    return {"status": status, "prometheus": "# TYPE" in text}


def _run_seconds(run) -> tuple[float, dict[str, float]]:
    """A pipeline run's wall time and its steps' durations, from ZenML's run record."""
    steps = {
        name: (step.end_time - step.start_time).total_seconds()
        for name, step in run.steps.items()
        if step.end_time and step.start_time
    }
    wall = (run.end_time - run.start_time).total_seconds() if run.end_time and run.start_time else sum(steps.values())
    return wall, steps


def _pipeline_runs(pipeline_name: str) -> int:
    from zenml.client import Client

    try:
        return Client().list_pipeline_runs(pipeline_name=pipeline_name, size=1).total
    except KeyError:
        return 0


def _mcp_records(model_name: str) -> dict[str, Any]:
    from zenml.client import Client

    versions = Client().list_model_versions(model_name_or_id=model_name, size=100).items
    production = next((v for v in versions if str(getattr(v.stage, "value", v.stage)) == "production"), None)
    shown = production or (versions[-1] if versions else None)
    return {
        "versions": sorted(v.number for v in versions),
        "production": production.number if production else None,
        "metadata_keys": sorted(shown.run_metadata) if shown else [],
        "artifacts": sorted({**shown.data_artifact_ids, **shown.model_artifact_ids}) if shown else [],
    }


def _mlflow_records(tracking_uri: str, experiment_name: str | None, model_name: str, run_id: str | None) -> dict:
    """What MLflow holds: the experiment's runs, the training run's params and metrics, the registry."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    records: dict[str, Any] = {"tracking_uri": tracking_uri, "experiment": experiment_name, "run_id": run_id}
    experiment = client.get_experiment_by_name(experiment_name) if experiment_name else None
    if experiment is not None:
        records["runs"] = len(client.search_runs([experiment.experiment_id], max_results=1000))
    if run_id:
        run = client.get_run(run_id)
        records["params"], records["metrics"] = len(run.data.params), len(run.data.metrics)
    try:
        registered = client.get_registered_model(model_name)
        versions = sorted(client.search_model_versions(f"name='{model_name}'"), key=lambda v: int(v.version))
        records["registered_versions"] = [int(v.version) for v in versions]
        records["registered"] = [
            {"version": int(v.version), "mcp_version": (v.tags or {}).get("zenml_model_version")} for v in versions
        ]
        records["aliases"] = {
            alias: {
                "version": int(number),
                "mcp_version": client.get_model_version(model_name, str(number)).tags.get("zenml_model_version"),
            }
            for alias, number in (registered.aliases or {}).items()
        }
    except mlflow.exceptions.MlflowException:
        records["registered_versions"], records["registered"], records["aliases"] = [], [], {}
    return records


def _bentoml_records(model_name: str) -> dict[str, Any]:
    import bentoml

    models = [str(m.tag) for m in bentoml.models.list() if m.tag.name == model_name.lower()]
    bentos = [str(b.tag) for b in bentoml.list()]
    return {"home": os.environ.get("BENTOML_HOME", ""), "models": models, "bentos": bentos}


def _integration_of_own_flavor(flavor: str, kind: str) -> str | None:
    """A flavor of the project's own (stacks/bentoml_flavor.py) extends an integration's: the first ZenML
    integration among its classes."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.utils import source_utils

    try:
        source = Client().get_flavor_by_name_and_type(flavor, StackComponentType(kind)).source
        classes = source_utils.load(source).__mro__
    except (KeyError, ValueError, ImportError, AttributeError):
        return None
    modules = [cls.__module__.split(".") for cls in classes]
    return next((parts[2] for parts in modules if parts[:2] == ["zenml", "integrations"] and len(parts) > 2), None)


def _integrations(capabilities) -> dict[str, list[str]]:
    """The ZenML integrations the stack's components come from, with the packages each needs installed."""
    from zenml.integrations.registry import integration_registry

    from stacks.capabilities import integration_of

    needs: dict[str, list[str]] = {}
    for kind, component in capabilities.components.items():
        name = integration_of(component.flavor, kind) or _integration_of_own_flavor(component.flavor, kind)
        if name in integration_registry.integrations:
            needs[name] = sorted(integration_registry.integrations[name].get_requirements())
    return dict(sorted(needs.items()))


def measure_stack(stack: str, workspace: Workspace, config: RunConfig, size: ComparisonSize, settings) -> dict:
    """Everything measured on one stack; a stage that fails is recorded with its error and the rest goes on
    where it can (serving needs a production version, nothing needs the monitoring result)."""
    result: dict[str, Any] = {"stack": stack, "available": False, "errors": {}}

    def stage(name: str, function: Callable[[], Any], quiet: bool = False) -> Any:
        if not quiet:
            _progress(name)
        started = time.perf_counter()
        try:
            return function()
        except Exception as exc:  # recorded and reported per stack; the comparison goes on
            result["errors"][name] = " ".join(str(exc).split())[:600] or type(exc).__name__
            return None
        finally:
            result.setdefault("stage_seconds", {})[name] = round(time.perf_counter() - started, 2)

    from zenml.client import Client

    from stacks.capabilities import active_capabilities, check_usable
    from stacks.manage import select, stack_specs, stacks_up

    def register() -> Any:
        stacks_up(select([stack], stack_specs(), for_registration=True))
        client = Client()
        client.activate_stack(client.get_stack(stack, allow_name_prefix_match=False).id)
        capabilities = active_capabilities()
        check_usable(capabilities)
        return capabilities

    capabilities = stage("set up the stack", register)
    if capabilities is None:
        result["reason"] = result["errors"]["set up the stack"]
        return result
    result["available"] = True
    result["components"] = capabilities.offers()
    result["integrations"] = stage("integrations", lambda: _integrations(capabilities), quiet=True)
    result["training"] = stage("training", lambda: _train(config))
    if result["training"] is None:
        return result
    result["monitoring"] = stage("monitoring", lambda: _monitor(config.model.name, workspace))
    result["serving"] = stage("serving", lambda: _serve(config.model.name, workspace, size, settings))
    records: dict[str, Any] = {"mcp": _mcp_records(config.model.name)}
    if capabilities.tracking_uri:
        experiment = capabilities.experiment_tracker.configuration.get("experiment_name")
        records["mlflow"] = stage(
            "reading MLflow",
            lambda: _mlflow_records(
                capabilities.tracking_uri,
                experiment,
                config.model.name,
                result["training"]["mlflow"].get("mlflow_run_id"),
            ),
        )
    if (result.get("serving") or {}).get("backend") == "bentoml":
        records["bentoml"] = _bentoml_records(config.model.name)
    result["records"] = records
    return result


def _train(config: RunConfig) -> dict[str, Any]:
    from workflows.runner import run_training

    outcome = run_training(config)
    wall, steps = _run_seconds(outcome.run)
    return {
        "run": outcome.run.name,
        "wall_seconds": wall,
        "steps": steps,
        "metrics": dict(outcome.evaluation.metrics),
        "primary_metric": outcome.evaluation.primary_metric,
        "model_version": outcome.model_version,
        "promoted": outcome.decision.promoted,
        "decision": outcome.decision.reason,
        "production_version": outcome.production_version,
        "mlflow": outcome.mlflow_links,
    }


def _monitor(model_name: str, workspace: Workspace) -> dict[str, Any]:
    from lifecycle.config import load_monitoring_config
    from workflows.runner import run_monitoring

    outcome = run_monitoring(model_name, str(workspace.batch), load_monitoring_config())
    wall, steps = _run_seconds(outcome.run)
    summary = outcome.summary
    return {
        "run": outcome.run.name,
        "wall_seconds": wall,
        "steps": steps,
        "model_version": summary.model_version,
        "drift_share": summary.drift.share,
        "drifted_columns": summary.drift.drifted_columns,
        "retrain": summary.decision.retrain,
        "report": str(outcome.report_path),
    }


def _parity_rows(model_name: str, workspace: Workspace, rows: int) -> dict[str, Any]:
    """The held-out rows every server predicts, fixed by the first stack that serves (with the production
    model pickled for the parent's in-process and bare-server baselines)."""
    if workspace.parity.exists():
        return json.loads(workspace.parity.read_text())
    from zenml.client import Client

    from lifecycle.model_versions import loaded_artifact, loaded_model
    from lifecycle.modeling import predict_scores
    from lifecycle.names import FEATURE_SCHEMA, MODEL, TEST_SET
    from serving.contract import json_records, records_frame

    version = Client().get_model_version(model_name, "production")
    model, schema = loaded_model(version, MODEL), loaded_artifact(version, FEATURE_SCHEMA)
    records = json_records(loaded_artifact(version, TEST_SET).head(rows), schema)
    expected, _ = predict_scores(model, records_frame({"records": records}, schema))
    parity = {
        "model_version": str(version.number),
        "task": schema.task,
        "records": records,
        "in_process": [value.item() if hasattr(value, "item") else value for value in expected],
    }
    workspace.served_model.write_bytes(pickle.dumps({"model": model, "schema": schema}))
    workspace.parity.write_text(json.dumps(parity))
    return parity


def _serve(model_name: str, workspace: Workspace, size: ComparisonSize, settings) -> dict[str, Any]:
    from lifecycle.names import INFERENCE_PIPELINE
    from measurement.load import load_levels
    from measurement.serving import deployed
    from serving.contract import prediction_difference

    parity = _parity_rows(model_name, workspace, size.parity_rows)
    with deployed(model_name, settings) as served:
        backend, endpoint, record = served.backend, served.endpoint, served.record
        _progress(f"serving: {backend.name} at {endpoint.url}; parity and load")
        predictions, _ = backend.predict(endpoint, parity["records"])
        bodies = [backend.request_body([record]) for record in parity["records"]]
        runs_before = _pipeline_runs(INFERENCE_PIPELINE)
        levels = [(level.concurrency, level.requests) for level in size.load]
        load = load_levels(endpoint.predict_url, bodies, endpoint.pid, levels, warm_up=WARM_UP, rounds=size.rounds)
        requests_sent = WARM_UP + size.rounds * sum(requests for _, requests in levels)
        runs_recorded = _pipeline_runs(INFERENCE_PIPELINE) - runs_before
        base = endpoint.url.rstrip("/")
        _progress("serving: stopping the server")
        return {
            "backend": backend.name,
            "url": endpoint.url,
            "predict_url": endpoint.predict_url,
            "health_url": endpoint.health_url,
            "server": endpoint.name,
            "model_version": record["model_version"],
            "deploy_seconds": served.deploy_seconds,
            "seconds_to_ready": record["seconds_to_ready"],
            "smoke_test_parity": record["parity_max_abs_difference"],
            "parity_rows": len(parity["records"]),
            "predictions": predictions,
            "difference_to_in_process": prediction_difference(parity["task"], predictions, parity["in_process"]),
            "request_shape": sorted(backend.request_body(parity["records"][:1])),
            "load": {key: value for key, value in load.items() if key.startswith("c")},
            "rss_mb_before": load["rss_mb_before"],
            "rss_mb_after": load["rss_mb_after"],
            "probes": {
                "health": _probe(endpoint.health_url),
                "metrics": _probe(base + "/metrics"),
                "docs": _probe(base + "/docs"),
                "root": _probe(base + "/"),
            },
            "pipeline_runs_per_request": runs_recorded / requests_sent,
        }


def child_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure one stack for `python run.py compare` (internal).")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--size", required=True)  # JSON of a ComparisonSize
    parser.add_argument("--config", required=True)  # JSON of a RunConfig
    parser.add_argument("--deployment", required=True)  # JSON of a DeploymentConfig
    args = parser.parse_args(argv)
    from lifecycle.config import DeploymentConfig
    from lifecycle.environment import configure_environment

    configure_environment()
    workspace = Workspace(args.workspace)
    result = measure_stack(
        args.stack,
        workspace,
        RunConfig.model_validate_json(args.config),
        ComparisonSize.model_validate_json(args.size),
        DeploymentConfig.model_validate_json(args.deployment),
    )
    workspace.result(args.stack).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    child_main()
