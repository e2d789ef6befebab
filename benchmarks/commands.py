"""How long the small serving commands take, as a user types them: `status`, `predict` (2 rows) and `undeploy`.

In a throw-away workspace (its own ZenML store and state folder): trains a small model on a slice of the bike data
with `python run.py train`, then for each backend's stack in turn — ZenML's pipeline deployer (`default`), BentoML
(`bentoml`), MLflow (`mlflow`) — deploys it and times, as separate processes, `status` and `predict` several times
each, then `undeploy` (one deploy per timed undeploy). Prints the median and the slowest run of each.

    python benchmarks/commands.py                       # 5 runs each, every backend (about 6 minutes)
    python benchmarks/commands.py --runs 3 --stacks default
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
MODEL = "commands_bench"


def run(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "run.py", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"`python run.py {' '.join(args)}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds, done


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command (per stack)")
    parser.add_argument("--stacks", default="default,bentoml,mlflow")
    args = parser.parse_args()

    import pandas as pd

    from lifecycle.environment import isolated_environment

    folder = Path(tempfile.mkdtemp(prefix="mlops-commands-bench-"))
    env = {**os.environ, **isolated_environment(folder), "NO_COLOR": "1"}
    table = pd.read_csv(PROJECT_ROOT / "data" / "bike_sharing_hourly.csv.gz")
    data = folder / "bike_slice.csv"
    table[pd.to_datetime(table["dteday"]) < "2011-05-01"].to_csv(data, index=False)
    try:
        log("registering the stacks and training ...")
        run(env, "stacks", "up")
        run(env, "train", "--model-name", MODEL, "--data", str(data), "--target", "cnt", "--stack", "mlflow")
        request = folder / "state" / "requests" / f"{MODEL}.json"
        rows: list[tuple[str, str, list[float]]] = []
        for stack in args.stacks.split(","):
            subprocess.run(
                [str(Path(sys.executable).parent / "zenml"), "stack", "set", stack],
                env=env,
                capture_output=True,
                check=True,
            )
            log(f"{stack}: deploying ...")
            run(env, "deploy")
            two_rows = folder / "two_rows.csv"
            pd.DataFrame(pd.read_json(request)["records"].tolist()).head(2).to_csv(two_rows, index=False)
            status = [run(env, "status")[0] for _ in range(args.runs)]
            predict = [run(env, "predict", "--input", str(two_rows))[0] for _ in range(args.runs)]
            undeploy = [run(env, "undeploy")[0]]
            for _ in range(args.runs - 1):
                run(env, "deploy")
                undeploy.append(run(env, "undeploy")[0])
            rows += [(stack, "status", status), (stack, "predict (2 rows)", predict), (stack, "undeploy", undeploy)]
    finally:
        subprocess.run([sys.executable, "run.py", "undeploy", "--all"], cwd=PROJECT_ROOT, env=env, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
    machine = f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"\nSmall commands, wall time of `python run.py ...` ({machine})\n")
    print("| stack | command | runs | median s | slowest s |\n|---|---|---|---|---|")
    for stack, command, seconds in rows:
        print(f"| {stack} | {command} | {len(seconds)} | {statistics.median(seconds):.2f} | {max(seconds):.2f} |")


if __name__ == "__main__":
    main()
