"""Sustained load on each serving backend: latency, throughput, errors and server memory, slice by slice.

In a throw-away ZenML store (as `benchmarks/serving.py`): trains the bike model once on the `full` stack (so MLflow
has it registered), then for each backend deploys it, sends one-row requests from many threads over loopback in
equal slices, and after each slice records latency percentiles, throughput, errors and the resident memory of the
server's whole process tree, so that a leak shows as a trend. After the load, a few rows must still be predicted
exactly as the model predicts them in-process. Then it undeploys.

Every backend takes the same requests (ZenML's pipeline deployer answers in-process, see
serving/backends/zenml_service.py), and stops starting new slices once `--max-seconds` have passed (its verdict
says so).

    python benchmarks/load.py                                        # 20000 requests at c=32 per backend
    python benchmarks/load.py --requests 2000 --backends zenml
    python benchmarks/load.py --backends mlflow,bentoml --slices 10

Verdict per backend: no failed request, predictions still exact, and memory growth from the end of slice 2 to the
end of the last slice within `--max-rss-growth` MiB (slice 1 includes the server's warm-up allocations).
Exit status 1 when a backend fails its verdict.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from measurement.bench import BACKEND_STACKS, isolate, log, machine, train_bench_model  # noqa: E402

MODEL_NAME = "bench_load"


@dataclass
class Slice:
    index: int
    summary: dict[str, Any]
    rss_mb: float


@dataclass
class BackendRun:
    backend: str
    requests: int
    deploy_seconds: float = 0.0
    rss_before_mb: float = float("nan")
    slices: list[Slice] = field(default_factory=list)
    capped: bool = False
    exact_after_load: bool = False

    @property
    def errors(self) -> int:
        return sum(s.summary["errors"] for s in self.slices)

    @property
    def error_kinds(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for part in self.slices:
            for kind, count in part.summary["error_kinds"].items():
                kinds[kind] = kinds.get(kind, 0) + count
        return kinds

    @property
    def sent(self) -> int:
        return sum(s.summary["requests"] for s in self.slices)

    @property
    def rss_growth_mb(self) -> float:
        """Memory growth from the end of slice 2 to the end of the last slice (NaN with fewer than 3 slices)."""
        if len(self.slices) < 3:
            return float("nan")
        return self.slices[-1].rss_mb - self.slices[1].rss_mb

    def verdict(self, max_growth_mb: float) -> tuple[bool, str]:
        problems = []
        if self.errors:
            kinds = ", ".join(f"{kind}: {count}" for kind, count in self.error_kinds.items())
            problems.append(f"{self.errors} of {self.sent} requests failed ({kinds})")
        if not self.exact_after_load:
            problems.append("predictions after the load differ from in-process ones")
        growth = self.rss_growth_mb
        if growth != growth:
            problems.append("fewer than 3 slices: no memory trend")
        elif growth > max_growth_mb:
            problems.append(f"RSS grew {growth:.1f} MiB from slice 2 to {len(self.slices)} (limit {max_growth_mb:g})")
        return not problems, "; ".join(problems) or (
            f"{self.sent} requests, 0 errors, RSS {growth:+.1f} MiB from slice 2 to {len(self.slices)} "
            f"(limit {max_growth_mb:g}), predictions exact after the load"
        )


def slice_sizes(total: int, slices: int) -> list[int]:
    base, extra = divmod(total, slices)
    return [base + (1 if index < extra else 0) for index in range(slices)]


def load_backend(name: str, endpoint: Any, bodies: list, requests: int, args: argparse.Namespace, log) -> BackendRun:
    """Warm up, then send `requests` in slices, reading the server's memory after each."""
    from measurement.load import process_tree_rss_mb, run_load

    run = BackendRun(backend=name, requests=requests)
    run_load(endpoint.predict_url, bodies[:20], min(args.concurrency, 4), 20, timeout=args.timeout)
    run.rss_before_mb = process_tree_rss_mb(endpoint.pid)
    started = time.monotonic()
    for index, size in enumerate(slice_sizes(requests, args.slices), start=1):
        if index > 1 and time.monotonic() - started > args.max_seconds:
            run.capped = True
            log(f"{name}: time cap of {args.max_seconds:.0f} s reached after {index - 1} slices")
            break
        result = run_load(endpoint.predict_url, bodies, args.concurrency, size, timeout=args.timeout)
        run.slices.append(Slice(index, result.summary(), process_tree_rss_mb(endpoint.pid)))
        log(
            f"{name}: slice {index}: {result.throughput:.0f} req/s, p99 {result.percentile(99):.0f} ms, "
            f"{result.error_count} errors, RSS {run.slices[-1].rss_mb:.0f} MiB"
        )
    return run


def exact_after_load(backend: Any, endpoint: Any, model: Any, rows: Any, schema: Any) -> bool:
    from lifecycle.modeling import predict_scores
    from serving.contract import json_records

    served, _ = backend.predict(endpoint, json_records(rows, schema))
    expected, _ = predict_scores(model, rows[schema.model_inputs])
    return [float(v) for v in served] == [float(v) for v in expected]


def table(runs: list[BackendRun], concurrency: int) -> str:
    lines = [
        f"| backend | slice | requests | ok | errors | p50 ms | p95 ms | p99 ms | req/s | RSS MiB (c={concurrency}) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(f"| {run.backend} | before | | | | | | | | {run.rss_before_mb:.0f} |")
        for part in run.slices:
            s = part.summary
            lines.append(
                f"| {run.backend} | {part.index} | {s['requests']} | {s['ok']} | {s['errors']} | {s['p50_ms']:.1f} | "
                f"{s['p95_ms']:.1f} | {s['p99_ms']:.1f} | {s['throughput_rps']:.1f} | {part.rss_mb:.0f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per backend")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--backends", default=",".join(BACKEND_STACKS))
    parser.add_argument("--max-seconds", type=float, default=1800, help="no new slice after this long, per backend")
    parser.add_argument("--max-rss-growth", type=float, default=50.0, help="MiB, slice 2 to last slice")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--output", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    backends = args.backends.split(",")
    unknown = [b for b in backends if b not in BACKEND_STACKS]
    if unknown or args.slices < 3:
        parser.error(f"unknown backend(s) {unknown}" if unknown else "--slices must be at least 3 (memory trend)")
    folder = Path(tempfile.mkdtemp(prefix="mlops-load-bench-"))
    isolate(folder)

    from zenml.client import Client

    from lifecycle.config import DeploymentConfig
    from serving.contract import json_records
    from serving.rollout import live_endpoint, undeploy
    from serving.stack_backend import active_backend
    from workflows.runner import run_deployment

    client = Client()
    runs: list[BackendRun] = []
    try:
        model, schema, test_set = train_bench_model(MODEL_NAME)
        records = json_records(test_set.head(200), schema)
        for name in backends:
            client.activate_stack(BACKEND_STACKS[name])
            backend = active_backend()
            log(f"{name}: deploying on stack `{BACKEND_STACKS[name]}` ...")
            started = time.monotonic()
            try:
                run_deployment(MODEL_NAME, DeploymentConfig(port=8300, smoke_rows=20))
                deploy_seconds = time.monotonic() - started
                endpoint = live_endpoint(backend, MODEL_NAME)
                bodies = [backend.request_body([record]) for record in records]
                run = load_backend(name, endpoint, bodies, args.requests, args, log)
                run.deploy_seconds = deploy_seconds
                run.exact_after_load = exact_after_load(backend, endpoint, model, test_set.tail(50), schema)
                runs.append(run)
            finally:
                undeploy(backend, MODEL_NAME)
    finally:
        client.activate_stack("default")
        shutil.rmtree(folder, ignore_errors=True)

    print(f"\nLoad: one-row requests over loopback, {args.slices} slices per backend ({machine()})\n")
    print(table(runs, args.concurrency))
    print(f"\nRSS: the server and every process it started, after each slice. {args.requests} requests per backend.\n")
    passed = True
    for run in runs:
        ok, reason = run.verdict(args.max_rss_growth)
        passed &= ok
        capped = " (time cap: fewer slices than asked)" if run.capped else ""
        print(f"{run.backend:8} {'PASS' if ok else 'FAIL'}: {reason}{capped}; deploy {run.deploy_seconds:.0f} s")
    if args.output:
        args.output.write_text(json.dumps([asdict(run) for run in runs], indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
