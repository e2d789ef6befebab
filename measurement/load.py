"""Bounded HTTP load on loopback, and the memory of a server's processes: for benchmarks and reliability runs."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import urlopen

import numpy as np

from serving.processes import choose_port, process_tree


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "ok": len(self.latencies_ms),
            "errors": self.error_count,
            "error_kinds": dict(self.errors),
            "p50_ms": self.percentile(50),
            "p95_ms": self.percentile(95),
            "p99_ms": self.percentile(99),
            "throughput_rps": self.throughput,
        }


def run_load(url: str, bodies: list[Any], concurrency: int, requests: int, timeout: float = 30.0) -> LoadResult:
    """POST `requests` JSON bodies (cycling through `bodies`) from `concurrency` threads, each on one kept-alive
    connection. A non-200 answer or a connection error counts as an error, by kind."""
    parts = urlsplit(url)
    host = parts.hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"load runs go to loopback only, not {host}")
    encoded = [json.dumps(body).encode() for body in bodies]
    result = LoadResult(concurrency=concurrency, requests=requests, seconds=0.0)
    counter = iter(range(requests))
    lock = threading.Lock()

    def worker() -> None:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
        latencies: list[float] = []
        errors: dict[str, int] = {}
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            started = time.perf_counter()
            try:
                connection.request(
                    "POST", parts.path, encoded[index % len(encoded)], {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors[f"HTTP {response.status}"] = errors.get(f"HTTP {response.status}", 0) + 1
            except (OSError, http.client.HTTPException) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                connection.close()
                connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
        connection.close()
        with lock:
            result.latencies_ms.extend(latencies)
            for kind, count in errors.items():
                result.errors[kind] = result.errors.get(kind, 0) + count

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


def process_tree_rss_mb(pid: int | None) -> float:
    """Resident memory of a server and every process it started (its workers), in MiB."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    tree = process_tree(pid)
    for member in tree:
        try:
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total / 2**20 if tree else float("nan")


def in_process_latency(
    function: Callable[[Any], Any], bodies: list[Any], requests: int, warm_up: int = 0, rounds: int = 1
) -> dict[str, Any]:
    """`function(body)` called `requests` times one after the other, in `rounds` rounds after `warm_up` calls: the
    floor under any server's latency. Figures pooled over the rounds, with each round's own under `rounds`."""
    for index in range(warm_up):
        function(bodies[index % len(bodies)])
    results = []
    for _ in range(rounds):
        result = LoadResult(concurrency=1, requests=requests, seconds=0.0)
        started = time.perf_counter()
        for index in range(requests):
            began = time.perf_counter()
            function(bodies[index % len(bodies)])
            result.latencies_ms.append((time.perf_counter() - began) * 1000)
        result.seconds = time.perf_counter() - started
        results.append(result)
    return rounds_summary(results)


def rounds_summary(results: list[LoadResult]) -> dict[str, Any]:
    """One load level sent in rounds: percentiles over every request, throughput as all answers over all the
    rounds' time, errors added up; and under `rounds`, each round's p50, p95 and requests/s (its spread)."""
    pooled = LoadResult(
        concurrency=results[0].concurrency,
        requests=sum(result.requests for result in results),
        seconds=sum(result.seconds for result in results),
        latencies_ms=[latency for result in results for latency in result.latencies_ms],
    )
    for result in results:
        for kind, count in result.errors.items():
            pooled.errors[kind] = pooled.errors.get(kind, 0) + count
    each = [{"p50_ms": r.percentile(50), "p95_ms": r.percentile(95), "throughput_rps": r.throughput} for r in results]
    return {**pooled.summary(), "rounds": each}


def load_levels(
    url: str,
    bodies: list[Any],
    pid: int | None,
    levels: list[tuple[int, int]],
    warm_up: int = 10,
    rounds: int = 1,
) -> dict[str, Any]:
    """`warm_up` requests, then each (concurrency, requests) level in turn, sent `rounds` times (`rounds_summary`);
    the server's memory before and after."""
    run_load(url, bodies, 1, warm_up)
    before = process_tree_rss_mb(pid)
    figures = {
        f"c{concurrency}": rounds_summary([run_load(url, bodies, concurrency, requests) for _ in range(rounds)])
        for concurrency, requests in levels
    }
    return {**figures, "rss_mb_before": before, "rss_mb_after": process_tree_rss_mb(pid)}


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def bare_model_file(model: Any, folder: Path) -> Path:
    """The model pickled into `folder` for `measurement/bare_server.py` (read back through BARE_MODEL_PATH)."""
    import pickle

    model_path = folder / "bare_model.pkl"
    model_path.write_bytes(pickle.dumps(model))
    return model_path


def bare_floor(model: Any, folder: Path, bodies: list[bytes], requests: int, warm_up: int, rounds: int) -> dict:
    """`bare_server.answer` called directly, as `in_process_latency` times it, in a fresh process started as the
    bare server is: the floor then carries none of the caller's heap (a parent that loaded ZenML and ran the
    stacks collects garbage more slowly than a lean server does, which made the floor slower than the server)."""
    import subprocess
    import sys

    bodies_path = folder / "floor_bodies.json"
    bodies_path.write_text(json.dumps([body.decode() for body in bodies]))
    arguments = ["--floor", str(bodies_path), "--requests", str(requests), "--warm-up", str(warm_up)]
    done = subprocess.run(
        [sys.executable, "-m", "measurement.bare_server", *arguments, "--rounds", str(rounds)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "BARE_MODEL_PATH": str(bare_model_file(model, folder))},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the in-process floor failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


@contextmanager
def bare_http_server(model: Any, folder: Path, host: str = "127.0.0.1", port: int = 8290) -> Iterator[tuple[str, int]]:
    """The model behind `measurement/bare_server.py` (Starlette on uvicorn): yields (predict URL, server pid)."""
    import subprocess
    import sys

    port = choose_port(host, port, 50)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "measurement.bare_server:app", "--host", host, "--port", str(port)]
        + ["--log-level", "warning"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "BARE_MODEL_PATH": str(bare_model_file(model, folder))},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urlopen(f"http://{host}:{port}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the bare server on port {port} did not start") from None
                time.sleep(0.2)
        yield f"http://{host}:{port}/predict", server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def pooled(results: list) -> dict[str, float]:
    """Latency percentiles over every request of every burst; throughput as all answers over all burst time."""
    latencies = [latency for result in results for latency in result.latencies_ms]
    seconds = sum(result.seconds for result in results)
    return {
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "rps": len(latencies) / seconds,
        "errors": sum(result.error_count for result in results),
        "answered": sum(result.requests - result.error_count for result in results),
    }
