"""The prediction log's cost over HTTP: two servers of one backend, log on and log off, measured interleaved.

Deploying the same server twice moves its latency by more than the log costs (about 20 microseconds a request),
so this benchmark keeps both servers up at once and alternates short bursts between them (on, off, off, on, ...):
drift in the machine's load falls on both alike. The same bike model is trained under two names in a throw-away
ZenML store; one is deployed with `log.enabled: true`, the other with `false`, on the chosen backend's stack.
At the end it checks that the log-on server logged every answered row and the log-off server none.

    python benchmarks/log_cost.py                               # BentoML, 20 bursts a level (about 6 min)
    python benchmarks/log_cost.py --backend zenml --bursts 30
    python benchmarks/log_cost.py --control                     # A/A: both without the log
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
from measurement.bench import BACKEND_STACKS, isolate, log, machine, train_bench_model  # noqa: E402
from measurement.load import pooled  # noqa: E402

MODEL_NAMES = {True: "bench_log_on", False: "bench_log_off"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=sorted(BACKEND_STACKS), default="bentoml")
    parser.add_argument("--bursts", type=int, default=20, help="bursts per server and load level")
    parser.add_argument("--burst", type=int, default=50, help="requests per burst at concurrency 1 (x4 at 16)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--control", action="store_true", help="A/A: both servers without the log (the gap two servers show anyway)"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mlops-log-cost-"))
    isolate(folder)

    from zenml.client import Client

    from lifecycle.config import DeploymentConfig, PredictionLogConfig
    from measurement.load import run_load
    from measurement.serving import deployed
    from serving.contract import json_records
    from serving.prediction_log_reader import read_predictions

    client = Client()
    trained = {}
    for log_on, name in MODEL_NAMES.items():
        trained[log_on] = train_bench_model(name)
    _, schema, test_set = trained[True]
    records = json_records(test_set.head(200), schema)
    client.activate_stack(BACKEND_STACKS[args.backend])
    settings = {
        log_on: DeploymentConfig(
            port=8300 + 20 * log_on, smoke_rows=20, log=PredictionLogConfig(enabled=log_on and not args.control)
        )
        for log_on in MODEL_NAMES
    }
    log(f"{args.backend}: deploying `{MODEL_NAMES[True]}` (log on) and `{MODEL_NAMES[False]}` (log off) ...")
    with deployed(MODEL_NAMES[True], settings[True]) as on, deployed(MODEL_NAMES[False], settings[False]) as off:
        servers = {True: on, False: off}
        bodies = {log_on: [s.backend.request_body([record]) for record in records] for log_on, s in servers.items()}
        for log_on, served in servers.items():
            run_load(served.endpoint.predict_url, bodies[log_on], 1, 20)  # warm-up
        levels = [(1, args.burst), (args.concurrency, args.burst * 4)]
        figures: dict[tuple[int, bool], dict[str, float]] = {}
        for concurrency, requests in levels:
            log(f"c={concurrency}: {args.bursts} bursts of {requests} requests per server, interleaved ...")
            results: dict[bool, list] = {True: [], False: []}
            for burst in range(args.bursts):
                # ABBA order: neither server always goes first after the other's burst.
                for log_on in (True, False) if burst % 2 == 0 else (False, True):
                    url = servers[log_on].endpoint.predict_url
                    results[log_on].append(run_load(url, bodies[log_on], concurrency, requests))
            for log_on in MODEL_NAMES:
                figures[(concurrency, log_on)] = pooled(results[log_on])
        logged = {
            log_on: len(read_predictions(settings[log_on].log.root(), MODEL_NAMES[log_on]).frame)
            for log_on in MODEL_NAMES
        }
    client.activate_stack("default")
    answered_on = sum(figures[(c, True)]["answered"] for c, _ in levels) + 20  # + the warm-up
    print(f"\nThe prediction log's cost on {args.backend} ({machine()})")
    print(f"{args.bursts} interleaved bursts per server and level; one-row requests; same run\n")
    print(
        "| c | p50 ms on | p50 ms off | p50 cost | p95 ms on | p95 ms off | req/s on | req/s off "
        "| throughput cost | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for concurrency, _ in levels:
        with_log, without = figures[(concurrency, True)], figures[(concurrency, False)]
        print(
            f"| {concurrency} | {with_log['p50_ms']:.2f} | {without['p50_ms']:.2f} | "
            f"{with_log['p50_ms'] / without['p50_ms'] - 1:+.1%} | {with_log['p95_ms']:.2f} | {without['p95_ms']:.2f} | "
            f"{with_log['rps']:.0f} | {without['rps']:.0f} | {with_log['rps'] / without['rps'] - 1:+.1%} | "
            f"{with_log['errors'] + without['errors']:.0f} |"
        )
    print(
        f"\nLogged rows (smoke tests aside): log-on server {logged[True]} of {answered_on:.0f} answered, "
        f"log-off server {logged[False]}. Cost: positive p50 = slower with the log; negative throughput = fewer req/s."
    )
    shutil.rmtree(folder, ignore_errors=True)
    if args.control:
        print("A/A control: neither server logs; the gap above is what two servers differ by without the log.")
    elif logged[False] or logged[True] != answered_on:
        sys.exit("the log-on server must log every answered row and the log-off server none")


if __name__ == "__main__":
    main()
