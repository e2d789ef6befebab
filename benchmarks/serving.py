"""Serving latency and throughput of each backend, beside the same model in-process and behind a bare server.

In a throw-away ZenML store: trains the bike model on the `full` stack (so MLflow has it registered), then for
each backend — ZenML's pipeline deployer (`local`), MLflow (`mlflow`), BentoML (`bentoml`) — deploys it,
sends one-row requests at concurrency 1 and 16 over loopback, reads the server's memory, and undeploys.
The baselines are the model called in-process on the request's rows (records to a typed table, predict), this
project's whole request contract in-process (validation, predict, response; no HTTP), and
`measurement/bare_server.py` (Starlette on uvicorn). Ratios are to the bare server,
measured in the same run.

    python benchmarks/serving.py                          # 100 requests at c=1, 400 at c=16 (about 15 min)
    python benchmarks/serving.py --requests 400 --backends mlflow,bentoml --log both

Each backend is measured with the prediction log on (as deployed by default) and, with `--log both` (the
default), off too, one after the other in the same run: the table's last lines give the log's cost. Where nginx
is installed, each backend is also measured through its front door (serving/front_door.py), right after the
direct load on the same server: the difference is what the front door adds.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
from measurement.bench import BACKEND_STACKS, isolate, log, machine, train_bench_model  # noqa: E402

MODEL_NAME = "bench_serving"


def table(rows: dict[str, dict], bare_key: str = "bare HTTP server") -> str:
    bare = rows[bare_key]
    lines = [
        "| server | c | p50 ms | p95 ms | p99 ms | req/s | errors | p50 vs bare | req/s vs bare | deploy s | RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        for level in [key for key in row if key.startswith("c") and key[1:].isdigit()]:
            if level not in row:
                continue
            figures, base = row[level], bare.get(level, {})
            p50_ratio = figures["p50_ms"] / base["p50_ms"] if base else float("nan")
            rps_ratio = figures["throughput_rps"] / base["throughput_rps"] if base else float("nan")
            lines.append(
                f"| {name} | {figures['concurrency']} | {figures['p50_ms']:.1f} | {figures['p95_ms']:.1f} | "
                f"{figures['p99_ms']:.1f} | {figures['throughput_rps']:.0f} | {figures['errors']} | "
                f"{p50_ratio:.2f}x | {rps_ratio:.2f}x | "
                + (f"{row['deploy_seconds']:.1f}" if "deploy_seconds" in row and level == "c1" else "")
                + " | "
                + (f"{row['rss_mb_after']:.0f}" if "rss_mb_after" in row and level == "c1" else "")
                + " |"
            )
    return "\n".join(lines)


def median_figures(runs: list[dict]) -> dict:
    """Per load level, the median of each figure over the runs (errors: their sum)."""
    import statistics

    merged: dict = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            merged[key] = {
                name: sum(r[key][name] for r in runs)
                if name == "errors"
                else statistics.median(r[key][name] for r in runs)
                if isinstance(value[name], int | float)
                else value[name]
                for name in value
            }
        elif isinstance(value, int | float):
            merged[key] = statistics.median(r[key] for r in runs)
    return merged


def one_thread_predict(estimator, features):
    from lifecycle.modeling import one_thread

    with one_thread():
        return estimator.predict(features)


def log_cost(backend: str, on: dict, off: dict) -> str:
    lines = []
    for level in [key for key in on if key.startswith("c") and key[1:].isdigit()]:
        p50 = on[level]["p50_ms"] / off[level]["p50_ms"] - 1
        rps = on[level]["throughput_rps"] / off[level]["throughput_rps"] - 1
        lines.append(f"| {backend} | {on[level]['concurrency']} | {p50:+.1%} | {rps:+.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100, help="requests at concurrency 1 (x4 at 16)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default=",".join(BACKEND_STACKS))
    parser.add_argument("--log", choices=["on", "off", "both"], default="both", help="the prediction log")
    parser.add_argument("--rounds", type=int, default=3, help="with --log both: deploys of each, alternating")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mlops-serving-bench-"))
    isolate(folder)

    from zenml.client import Client

    from lifecycle.config import DeploymentConfig, PredictionLogConfig
    from measurement.load import in_process_latency, load_levels
    from measurement.serving import bare_server_baseline, deployed, in_process_baseline
    from serving.contract import answer, json_records, logged_answer, records_frame
    from serving.prediction_log import LogSettings, PredictionLog

    client = Client()
    model, schema, test_set = train_bench_model(MODEL_NAME)
    records = json_records(test_set.head(200), schema)
    ours = [{"records": [record]} for record in records]

    rows: dict[str, dict] = {}
    log("in-process baselines ...")
    frames = [records_frame(body, schema) for body in ours]
    estimator, preprocess = model.named_steps["estimator"], model.named_steps["preprocess"]
    features = [preprocess.transform(frame) for frame in frames]
    rows["in-process: estimator only"] = {"c1": in_process_latency(estimator.predict, features, args.requests)}
    rows["in-process: estimator only, one thread"] = {
        "c1": in_process_latency(lambda x: one_thread_predict(estimator, x), features, args.requests)
    }
    rows["in-process: whole model"] = {"c1": in_process_latency(model.predict, frames, args.requests)}
    rows["in-process: records -> table -> predict"] = {"c1": in_process_baseline(model, schema, ours, args.requests)}
    rows["in-process: whole contract"] = {
        "c1": in_process_latency(lambda body: answer(model, schema, body, MODEL_NAME, "1"), ours, args.requests)
    }
    writer = PredictionLog(LogSettings(root=str(folder / "bench-log")), MODEL_NAME, "1", "bench")
    one_write = [records[0]]
    write_seconds = time.perf_counter()
    for _ in range(10_000):
        writer.record("r", one_write, schema.model_inputs, [1.0], None, 1.0)
    write_seconds = (time.perf_counter() - write_seconds) / 10_000
    rows["in-process: whole contract + prediction log"] = {
        "c1": in_process_latency(
            lambda body: logged_answer(model, schema, body, MODEL_NAME, "1", 10_000, writer, "r", time.perf_counter()),
            ours,
            args.requests,
        )
    }
    levels = [(1, args.requests), (args.concurrency, args.requests * 4)]
    log("bare HTTP server ...")
    rows["bare HTTP server"], _ = bare_server_baseline(model, folder, ours, levels)
    # Log on and off alternate, `--rounds` times each, and the medians are compared: the machine's load drifts
    # more between two deploys than the log costs (about 20 microseconds a request, measured in-process above).
    logging = {"on": [True], "off": [False], "both": [True, False] * args.rounds}[args.log]
    costs, through_door = [], []
    for backend_name in args.backends.split(","):
        stack = BACKEND_STACKS[backend_name]
        client.activate_stack(stack)
        measured: dict[bool, list[dict]] = {True: [], False: []}
        for log_on in logging:
            settings = DeploymentConfig(port=8300, smoke_rows=20, log=PredictionLogConfig(enabled=log_on))
            what = "log on" if log_on else "log off"
            log(f"{backend_name}: deploying on stack `{stack}` ({what}) ...")
            with deployed(MODEL_NAME, settings) as served:
                bodies = [served.backend.request_body([record]) for record in records]
                log(f"{backend_name}: load ({what}) ...")
                figures = load_levels(served.endpoint.predict_url, bodies, served.endpoint.pid, levels)
                path = served.endpoint.predict_path.lstrip("/")
                measured[log_on].append({**figures, "deploy_seconds": served.deploy_seconds})
                door = served.record.get("front_door_url")
                if door and log_on == logging[0] and f"{backend_name} via the front door" not in rows:
                    log(f"{backend_name}: load through the front door ({door}) ...")
                    rows[f"{backend_name} via the front door"] = load_levels(
                        door + served.endpoint.predict_path, bodies, served.endpoint.pid, levels
                    )
                    through_door.append((backend_name, figures, rows[f"{backend_name} via the front door"]))
        for log_on, runs in measured.items():
            if runs:
                what = ("log on" if log_on else "log off") + (f", median of {len(runs)}" if len(runs) > 1 else "")
                rows[f"{backend_name} ({path}), {what}"] = median_figures(runs)
        if measured[True] and measured[False]:
            costs.append(log_cost(backend_name, median_figures(measured[True]), median_figures(measured[False])))
    client.activate_stack("default")
    print(f"\nServing, one row per request ({machine()}); ratios to the bare HTTP server in this run\n")
    print(table(rows))
    whole, alone = rows["in-process: whole model"]["c1"], rows["in-process: estimator only, one thread"]["c1"]
    print(
        f"\nOne-row predict, whole model vs the estimator alone on one thread (as the model calls it): "
        f"{whole['p50_ms'] / alone['p50_ms']:.2f}x at p50"
    )
    high = f"c{args.concurrency}"
    for backend_name, direct, door in through_door:
        print(
            f"{backend_name}: the front door adds {door['c1']['p50_ms'] - direct['c1']['p50_ms']:+.2f} ms at p50 "
            f"(c=1), throughput x{door[high]['throughput_rps'] / direct[high]['throughput_rps']:.2f} at {high}"
        )
    print(f"\nThe prediction log's write, in-process: {write_seconds * 1e6:.0f} microseconds per one-row request")
    if costs:
        print("\nThe prediction log's cost (log on vs off, medians, same run; positive = slower with the log):\n")
        print("| backend | c | p50 on / off | throughput on / off |\n|---|---|---|---|")
        print("\n".join(costs))
    print(
        "\n'in-process' rows call the model directly (no HTTP): their latency is the floor. "
        "'deploy s' is the deployment pipeline's wall time (start beside, health, smoke test). "
        "RSS: the server and all its processes, after the load."
    )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
