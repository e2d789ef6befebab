"""The H2O AutoML leader served beside the sklearn model on the same server: one-row p50 and throughput at c=16.

In a throw-away ZenML store: trains the bike model on the `full` stack twice, once with the configured estimator
only (version 1) and once with the `h2o_automl` challenger (version 2; forced to be the AutoML leader). On each
backend it deploys version 1, then version 2, as production, sends the same one-row requests at concurrency 1 and
16 over loopback, and prints both beside each other with the ratio (target: the leader's p50 within 3x).

    python benchmarks/automl_serving.py                          # zenml backend, 200 requests at c=1, 800 at c=16
    python benchmarks/automl_serving.py --backends zenml,bentoml,mlflow --requests 100

Needs the `automl` extra and a JDK (`make automl-env`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
from measurement.bench import BACKEND_STACKS, isolate, log, machine  # noqa: E402

MODEL_NAME = "bench_automl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests at concurrency 1 (x4 at 16)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="zenml")
    parser.add_argument("--max-models", type=int, default=3, help="the AutoML search's size (the model served)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mlops-automl-bench-"))
    isolate(folder)

    from zenml.client import Client

    from lifecycle.automl import require_automl
    from lifecycle.config import DeploymentConfig, EstimatorConfig, load_config
    from lifecycle.model_versions import loaded_artifact, loaded_model
    from lifecycle.names import FEATURE_SCHEMA, MODEL, TEST_SET
    from measurement.load import load_levels
    from measurement.serving import deployed
    from serving.contract import json_records
    from stacks.manage import select, stack_specs, stacks_up
    from workflows.runner import run_training

    require_automl()
    client = Client()
    stacks_up(select([], stack_specs(), for_registration=True))
    client.activate_stack("full")
    config = load_config()
    config = config.model_copy(update={"model": config.model.model_copy(update={"name": MODEL_NAME})})
    log("version 1: the configured estimator ...")
    run_training(config)
    log("version 2: with the h2o_automl challenger (the configured estimator a stump, so the leader is chosen) ...")
    training = config.training.model_copy(
        update={
            "challengers": ["h2o_automl"],
            "estimator": EstimatorConfig(name="decision_tree", params={"max_depth": 1}),
            "h2o_automl": config.training.h2o_automl.model_copy(update={"max_models": args.max_models}),
        }
    )
    run_training(config.model_copy(update={"training": training}))
    versions = {
        "sklearn": client.get_model_version(MODEL_NAME, "1"),
        "h2o": client.get_model_version(MODEL_NAME, "2"),
    }
    schema = loaded_artifact(versions["sklearn"], FEATURE_SCHEMA)
    records = json_records(loaded_artifact(versions["sklearn"], TEST_SET).head(200), schema)
    log(f"served models: {', '.join(f'{k} {type(loaded_model(v, MODEL)).__name__}' for k, v in versions.items())}")
    levels = [(1, args.requests), (args.concurrency, args.requests * 4)]
    rows = []
    for backend_name in args.backends.split(","):
        client.activate_stack(BACKEND_STACKS[backend_name])
        figures = {}
        for kind, version in versions.items():
            client.update_model_version(MODEL_NAME, str(version.number), stage="production", force=True)
            log(f"{backend_name}: serving {kind} (version {version.number}) ...")
            with deployed(MODEL_NAME, DeploymentConfig(port=8300, smoke_rows=20)) as served:
                bodies = [served.backend.request_body([record]) for record in records]
                figures[kind] = load_levels(served.endpoint.predict_url, bodies, served.endpoint.pid, levels)
        high = f"c{args.concurrency}"
        p50 = {kind: figures[kind]["c1"]["p50_ms"] for kind in figures}
        rps = {kind: figures[kind][high]["throughput_rps"] for kind in figures}
        rss = {kind: figures[kind]["rss_mb_after"] for kind in figures}
        rows.append(
            f"| {backend_name} | {p50['sklearn']:.1f} | {p50['h2o']:.1f} | {p50['h2o'] / p50['sklearn']:.2f}x | "
            f"{rps['sklearn']:.0f} | {rps['h2o']:.0f} | {rps['h2o'] / rps['sklearn']:.2f}x | "
            f"{rss['sklearn']:.0f} | {rss['h2o']:.0f} |"
        )
    client.activate_stack("default")
    print(f"\nOne-row requests, the sklearn model vs the H2O AutoML leader (MOJO) on the same server ({machine()})\n")
    print(
        f"| backend | sklearn p50 ms | H2O p50 ms | p50 ratio | sklearn req/s c={args.concurrency} | "
        f"H2O req/s c={args.concurrency} | throughput ratio | sklearn RSS MiB | H2O RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
