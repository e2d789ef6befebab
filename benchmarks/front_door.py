"""The front door's cost, and what a shadow does to production's answers, measured on one served model.

1. Cost: the model's server is asked directly and through its front door (nginx) in alternating bursts (ABBA
   order, so drift in the machine's load falls on both alike); the p50 difference is what the door adds.
2. Shadow: production's latency through the door in four states, taken in turns over several rounds:
   no shadow; a shadow that answers (a second server of the same version); a slow shadow (its processes
   SIGSTOPped: it accepts nothing and answers nothing); a dead shadow (nothing listens where it points).

Each client thread keeps one connection alive, as a real client pool does (a shadow copy that held a kept-alive
connection up would show here). The bike model is trained in a throw-away ZenML store and served on the chosen
backend's stack.

    python benchmarks/front_door.py                            # ZenML deployer, about 4 min
    python benchmarks/front_door.py --backend bentoml --bursts 30
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
from measurement.bench import BACKEND_STACKS, isolate, log, machine, train_bench_model  # noqa: E402
from measurement.load import pooled  # noqa: E402

MODEL_NAME = "bench_front_door"
SHADOW_STATES = ("no shadow", "shadow answering", "shadow stopped (SIGSTOP)", "shadow down (nothing listens)")


def _signal_tree(pid: int | None, sign: int) -> None:
    from serving.processes import process_tree

    for member in process_tree(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, sign)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=sorted(BACKEND_STACKS), default="zenml")
    parser.add_argument("--bursts", type=int, default=20, help="bursts per side (cost) or rounds (shadow states)")
    parser.add_argument("--burst", type=int, default=50, help="requests per burst at concurrency 1 (x4 at 16)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mlops-front-door-"))
    isolate(folder)

    from zenml.client import Client

    from lifecycle.config import DeploymentConfig
    from lifecycle.model_versions import metadata_dict
    from measurement.load import run_load
    from measurement.serving import deployed
    from serving import front_door
    from serving.backends.base import Release
    from serving.contract import json_records
    from serving.processes import choose_port
    from serving.rollout import end_trial, rollout

    if front_door.nginx_binary() is None:
        sys.exit(f"nginx is not installed: {front_door.INSTALL_HINT}")
    client = Client()
    model, schema, test_set = train_bench_model(MODEL_NAME)
    records = json_records(test_set.head(200), schema)
    client.activate_stack(BACKEND_STACKS[args.backend])
    settings = DeploymentConfig(port=8300, smoke_rows=20, front_door={"enabled": "on", "port": 8390})
    levels = [(1, args.burst), (args.concurrency, args.burst * 4)]
    log(f"{args.backend}: deploying `{MODEL_NAME}` behind its front door ...")
    with deployed(MODEL_NAME, settings) as served:
        door = front_door.current(MODEL_NAME)
        assert door is not None, "the deploy left no front door (front_door.enabled is on: it should have)"
        urls = {"direct": served.endpoint.predict_url, "front door": door.url + served.endpoint.predict_path}
        bodies = [served.backend.request_body([record]) for record in records]
        for url in urls.values():
            run_load(url, bodies, 1, 20)  # warm-up
        cost: dict[tuple[int, str], dict[str, float]] = {}
        for concurrency, requests in levels:
            log(f"cost, c={concurrency}: {args.bursts} bursts of {requests} requests per side, interleaved ...")
            results: dict[str, list] = {side: [] for side in urls}
            for burst in range(args.bursts):
                for side in list(urls) if burst % 2 == 0 else list(reversed(urls)):
                    results[side].append(run_load(urls[side], bodies, concurrency, requests))
            for side in urls:
                cost[(concurrency, side)] = pooled(results[side])

        log("starting a shadow (a second server of the same version) ...")
        version = client.get_model_version(MODEL_NAME, "production")
        registered = metadata_dict(version.run_metadata, "mlflow").get("mlflow_registered_version")
        release = Release(
            MODEL_NAME, str(version.number), str(version.id), model, schema, str(registered or "") or None,
            test_set.head(5), role="shadow",
        )  # fmt: skip
        shadow = rollout(served.backend, release, test_set, settings).endpoint
        routes = {
            "shadow answering": front_door.Route(shadow.url, release.model_version),
            "shadow stopped (SIGSTOP)": front_door.Route(shadow.url, release.model_version),
            "shadow down (nothing listens)": front_door.Route(
                f"http://127.0.0.1:{choose_port('127.0.0.1', 8395, 50)}", "none"
            ),
        }
        states: dict[tuple[int, str], list] = {(c, state): [] for c, _ in levels for state in SHADOW_STATES}
        try:
            for round_number in range(args.bursts):
                order = SHADOW_STATES[round_number % 4 :] + SHADOW_STATES[: round_number % 4]
                for state in order:
                    front_door.set_trial(MODEL_NAME, settings, "shadow", routes.get(state))
                    if state == "shadow stopped (SIGSTOP)":
                        _signal_tree(shadow.pid, signal.SIGSTOP)
                    try:
                        for concurrency, requests in levels:
                            states[(concurrency, state)].append(
                                run_load(urls["front door"], bodies, concurrency, requests)
                            )
                    finally:
                        _signal_tree(shadow.pid, signal.SIGCONT)
                log(f"shadow states: round {round_number + 1} of {args.bursts} done")
        finally:
            _signal_tree(shadow.pid, signal.SIGCONT)
            front_door.set_trial(MODEL_NAME, settings, "shadow", None)
            end_trial(served.backend, MODEL_NAME, "shadow", settings)
    client.activate_stack("default")
    shutil.rmtree(folder, ignore_errors=True)

    print(f"\nThe front door on {args.backend} ({machine()}); one-row requests; kept-alive connections; same run\n")
    print("| c | p50 ms direct | p50 ms front door | added p50 | req/s direct | req/s front door | errors |")
    print("|---|---|---|---|---|---|---|")
    for concurrency, _ in levels:
        direct, through = cost[(concurrency, "direct")], cost[(concurrency, "front door")]
        print(
            f"| {concurrency} | {direct['p50_ms']:.2f} | {through['p50_ms']:.2f} | "
            f"{through['p50_ms'] - direct['p50_ms']:+.2f} ms | {direct['rps']:.0f} | {through['rps']:.0f} | "
            f"{direct['errors'] + through['errors']:.0f} |"
        )
    print(f"\nProduction through the front door, by shadow state ({args.bursts} rounds, states in turn)\n")
    print("| shadow | c | p50 ms | p95 ms | req/s | p50 vs no shadow | errors |")
    print("|---|---|---|---|---|---|---|")
    for state in SHADOW_STATES:
        for concurrency, _ in levels:
            figures = pooled(states[(concurrency, state)])
            base = pooled(states[(concurrency, "no shadow")])
            print(
                f"| {state} | {concurrency} | {figures['p50_ms']:.2f} | {figures['p95_ms']:.2f} | "
                f"{figures['rps']:.0f} | {figures['p50_ms'] / base['p50_ms']:.2f}x | {figures['errors']:.0f} |"
            )


if __name__ == "__main__":
    main()
