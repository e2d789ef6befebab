"""The comparison report of `python run.py compare`: what was measured on each stack, as Markdown and as a
self-contained HTML page (tables and inline SVG plots, no external resources).

Every cell comes from the run's measurements (measurement/comparison.py); a cell that has nothing to show says
why (the stack has no such component, or the stage failed, with its error).
"""

from __future__ import annotations

import html
import io
import os
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from serving.contract import prediction_difference

PACKAGES = ("zenml", "mlflow", "bentoml", "evidently", "scikit-learn", "pandas")


def machine() -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpus": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(terse=True),
        "versions": versions,
    }


def summarize(results: list[dict[str, Any]], baselines: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The raw measurements plus the cross-stack checks: metrics and predictions compared."""
    trained = [r for r in results if r.get("training")]
    metric_names = sorted({name for r in trained for name in r["training"]["metrics"]})
    metrics_spread = {
        name: _spread(
            [r["training"]["metrics"].get(name) for r in trained] + [baselines["direct"]["metrics"].get(name)]
        )
        for name in metric_names
    }
    served = [r for r in results if r.get("serving")]
    task = "regression"
    if served and all(isinstance(v, str) for v in served[0]["serving"]["predictions"]):
        task = "classification"
    pairwise = [
        prediction_difference(task, a["serving"]["predictions"], b["serving"]["predictions"])
        for i, a in enumerate(served)
        for b in served[i + 1 :]
    ]
    return {
        "meta": meta,
        "stacks": [r["stack"] for r in results],
        "results": results,
        "baselines": baselines,
        "checks": {
            "metrics_max_difference": metrics_spread,
            "metrics_identical": all(v == 0.0 for v in metrics_spread.values()) if metrics_spread else None,
            "served_versions": sorted({r["serving"]["model_version"] for r in served}),
            "predictions_max_difference_between_backends": max(pairwise) if pairwise else None,
            "predictions_compared_backends": len(served),
        },
    }


def _spread(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return float(max(present) - min(present)) if present else float("nan")


# --- tables --------------------------------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[tuple[str, list[str]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _s(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def _g(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.6g}"


def _missing(result: dict[str, Any], stage: str) -> str:
    """Why a stack has no value for a stage: unavailable, or the stage's error."""
    if not result.get("available"):
        return f"unavailable: {result.get('reason', 'not set up')}"
    error = result.get("errors", {}).get(stage)
    return f"failed: {error}" if error else "not run (an earlier stage failed)"


def _cell(result: dict[str, Any], stage: str, render) -> str:
    value = result.get(stage)
    return render(value) if value else _missing(result, stage)


def _aliases(aliases: dict[str, dict[str, Any]]) -> str:
    return (
        ", ".join(
            f"{alias} → v{found['version']}" + (f" (MCP v{found['mcp_version']})" if found.get("mcp_version") else "")
            for alias, found in aliases.items()
        )
        or "none"
    )


def stacks_table(report: dict[str, Any]) -> Table:
    results = report["results"]
    table = Table("Stacks", [r["stack"] for r in results])
    roles = sorted({role for r in results for role in r.get("components", {})})
    for role in roles:
        table.rows.append(
            (role, [r.get("components", {}).get(role, "—") if r.get("available") else _missing(r, "") for r in results])
        )
    table.rows.append(
        (
            "stages that failed",
            ["; ".join(f"{stage}: {error}" for stage, error in r.get("errors", {}).items()) or "none" for r in results],
        )
    )
    table.rows.append(
        (
            "time per stage (s)",
            [", ".join(f"{k} {v:.0f}" for k, v in r.get("stage_seconds", {}).items()) for r in results],
        )
    )
    return table


def records_table(report: dict[str, Any]) -> Table:
    results, model = report["results"], report["meta"]["data"]["model_name"]
    prefix = report["meta"]["inspect_prefix"]
    table = Table("What each backend records, and where", [r["stack"] for r in results])

    def mcp(r: dict) -> str:
        records = (r.get("records") or {}).get("mcp")
        if not records:
            return _missing(r, "training")
        versions = records["versions"]
        return (
            f"model `{model}` versions {', '.join(map(str, versions))}; production: v{records['production']}; "
            f"{len(records['metadata_keys'])} metadata keys ({', '.join(records['metadata_keys'])}); "
            f"{len(records['artifacts'])} artifacts"
        )

    def runs(r: dict) -> str:
        names = [r[s]["run"] for s in ("training", "monitoring") if r.get(s)]
        serving = r.get("serving") or {}
        if serving.get("pipeline_runs_per_request"):
            names.append(f"+ {serving['pipeline_runs_per_request']:.2f} inference runs per request served")
        return "; ".join(names) if names else _missing(r, "training")

    def mlflow_runs(r: dict) -> str:
        records = (r.get("records") or {}).get("mlflow")
        if not r.get("available"):
            return _missing(r, "")
        if not records:
            return "— (no MLflow tracker on this stack)"
        return (
            f"{records.get('runs', 0)} runs in experiment `{records['experiment']}`; this stack's training run "
            f"{records.get('run_id')}: {records.get('params', 0)} params, {records.get('metrics', 0)} metrics"
        )

    def mlflow_registry(r: dict) -> str:
        records = (r.get("records") or {}).get("mlflow")
        if not r.get("available"):
            return _missing(r, "")
        if not records:
            return "— (no MLflow registry on this stack)"
        aliases = _aliases(records["aliases"])
        return (
            f"registered versions {', '.join(map(str, records['registered_versions'])) or 'none'}; aliases: {aliases}"
        )

    def bentoml(r: dict) -> str:
        records = (r.get("records") or {}).get("bentoml")
        if not r.get("available"):
            return _missing(r, "")
        if not records:
            return "— (BentoML does not serve on this stack)"
        return f"{len(records['models'])} models ({', '.join(records['models'])}); {len(records['bentos'])} bentos"

    def endpoint(r: dict) -> str:
        serving = r.get("serving")
        if not serving:
            return _missing(r, "serving")
        return f"{serving['backend']}: {serving['predict_url']} (server {serving['server']}; stopped after measuring)"

    table.rows += [
        ("ZenML Model Control Plane", [mcp(r) for r in results]),
        ("ZenML pipeline runs", [runs(r) for r in results]),
        ("MLflow tracking", [mlflow_runs(r) for r in results]),
        ("MLflow model registry", [mlflow_registry(r) for r in results]),
        ("BentoML model store", [bentoml(r) for r in results]),
        ("served endpoint", [endpoint(r) for r in results]),
    ]
    uris = sorted({r["records"]["mlflow"]["tracking_uri"] for r in results if (r.get("records") or {}).get("mlflow")})
    has_bentoml = any((r.get("records") or {}).get("bentoml") for r in results)
    table.notes += [
        f"To look for yourself, point a shell at the comparison's workspace first: `export {prefix}`. Then:",
        f"Model Control Plane and runs: `zenml model version list --model={model}`, `zenml pipeline runs list`",
        *(f"MLflow: `mlflow ui --backend-store-uri {uri}`" for uri in uris),
        *(["BentoML: `bentoml models list`, `bentoml list`"] if has_bentoml else []),
        "Serve again: `python run.py deploy --stack STACK` (the comparison stops the servers it measured).",
    ]
    return table


def time_table(report: dict[str, Any]) -> Table:
    results, direct = report["results"], report["baselines"]["direct"]
    table = Table(
        "Time (seconds; pipeline runs from ZenML's run records)",
        [r["stack"] for r in results] + ["direct calls (no ZenML)"],
    )
    for stage, label in (("training", "training pipeline"), ("monitoring", "monitoring pipeline")):
        table.rows.append(
            (
                f"**{label}**",
                [_cell(r, stage, lambda v: _s(v["wall_seconds"])) for r in results] + [_s(direct[f"{stage}_seconds"])],
            )
        )
        steps = list(dict.fromkeys([s for r in results if r.get(stage) for s in r[stage]["steps"]]))
        for step in steps:
            table.rows.append(
                (
                    f"  {step}",
                    [_cell(r, stage, lambda v, s=step: _s(v["steps"].get(s), 2)) for r in results]
                    + [_s(direct[f"{stage}_steps"].get(step), 2)],
                )
            )
        table.rows.append(
            (
                f"{label}: orchestration overhead",
                [
                    _cell(
                        r,
                        stage,
                        lambda v, st=stage: (
                            f"+{v['wall_seconds'] - direct[f'{st}_seconds']:.1f} "
                            f"({v['wall_seconds'] / direct[f'{st}_seconds']:.1f}x)"
                        ),
                    )
                    for r in results
                ]
                + ["0 (1.0x)"],
            )
        )
    table.rows.append(
        (
            "deployment pipeline (start, health, smoke test)",
            [_cell(r, "serving", lambda v: _s(v["deploy_seconds"])) for r in results] + ["—"],
        )
    )
    table.notes.append(
        "Overhead = pipeline wall time minus the same step functions called one after the other in one process "
        "(no artifact store, no run records, no step processes); the ratio is pipeline / direct."
    )
    return table


def answers_table(report: dict[str, Any]) -> Table:
    results, checks, direct = report["results"], report["checks"], report["baselines"]["direct"]
    table = Table("Same work, same answers", [r["stack"] for r in results] + ["direct calls (no ZenML)"])
    for name, spread in checks["metrics_max_difference"].items():
        table.rows.append(
            (
                f"{name} (max difference {_g(spread)})",
                [_cell(r, "training", lambda v, n=name: _g(v["metrics"].get(n))) for r in results]
                + [_g(direct["metrics"].get(name))],
            )
        )
    table.rows.append(
        (
            "version trained → promoted?",
            [
                _cell(
                    r, "training", lambda v: f"v{v['model_version']}: {'promoted' if v['promoted'] else 'not promoted'}"
                )
                for r in results
            ]
            + ["—"],
        )
    )
    table.rows.append(
        ("version served", [_cell(r, "serving", lambda v: f"v{v['model_version']}") for r in results] + ["—"])
    )
    table.rows.append(
        (
            "predictions: max |served − in-process|",
            [
                _cell(r, "serving", lambda v: f"{_g(v['difference_to_in_process'])} on {v['parity_rows']} rows")
                for r in results
            ]
            + ["0 (the reference)"],
        )
    )
    between = checks["predictions_max_difference_between_backends"]
    table.notes.append(
        f"Metrics identical on every stack and in direct calls: {checks['metrics_identical']}. "
        f"Largest difference between the predictions of any two serving backends "
        f"({checks['predictions_compared_backends']} compared, serving version(s) "
        f"{', '.join(checks['served_versions']) or 'none'}): {_g(between)}."
    )
    table.notes.append(
        "Each stack trains a new version with the same data and seed; only a better version is promoted, so every "
        "backend serves the same production version."
    )
    return table


def _load_levels(report: dict[str, Any]) -> list[str]:
    return [f"c{level['concurrency']}" for level in report["meta"]["size"]["load"]]


def serving_table(report: dict[str, Any]) -> Table:
    results, baselines = report["results"], report["baselines"]
    extra = [("in_process", "model in-process (no HTTP)"), ("bare_http", "bare HTTP server")]
    extra = [(key, label) for key, label in extra if key in baselines]
    table = Table(
        "Serving (one row per request, loopback)", [r["stack"] for r in results] + [label for _, label in extra]
    )

    def level_cell(load: dict[str, Any] | None, level: str, figure: str) -> str:
        if not load or level not in load:
            return "—"
        values = load[level]
        if figure == "latency":
            return f"{values['p50_ms']:.1f} / {values['p95_ms']:.1f} / {values['p99_ms']:.1f}"
        if figure == "throughput":
            return f"{values['throughput_rps']:.1f}"
        return f"{values['errors']} of {values['requests']}"

    table.rows.append(
        (
            "backend",
            [_cell(r, "serving", lambda v: v["backend"]) for r in results] + ["—" for _ in extra],
        )
    )
    table.rows.append(
        (
            "deploy to ready (s)",
            [_cell(r, "serving", lambda v: _s(v["seconds_to_ready"])) for r in results] + ["—" for _ in extra],
        )
    )
    for level in _load_levels(report):
        concurrency = level[1:]
        for figure, label in (
            ("latency", f"concurrency {concurrency}: p50 / p95 / p99 ms"),
            ("throughput", f"concurrency {concurrency}: requests/s"),
            ("errors", f"concurrency {concurrency}: errors"),
        ):
            table.rows.append(
                (
                    label,
                    [_cell(r, "serving", lambda v, lv=level, f=figure: level_cell(v["load"], lv, f)) for r in results]
                    + [level_cell(baselines[key]["load"], level, figure) for key, _ in extra],
                )
            )
    table.rows.append(
        (
            "server memory after the load (MiB, all its processes)",
            [_cell(r, "serving", lambda v: _s(v["rss_mb_after"], 0)) for r in results]
            + [_s(baselines[key].get("rss_mb_after"), 0) if key == "bare_http" else "—" for key, _ in extra],
        )
    )
    table.notes.append(
        "Latency is measured by the client from request to full answer; the in-process column calls the model "
        "directly on the same one-row inputs (the floor). The bare HTTP server is the same model behind the "
        "smallest Starlette app (measurement/bare_server.py), no validation."
    )
    return table


def features_table(report: dict[str, Any]) -> Table:
    results = report["results"]
    table = Table("Features (observed in this run where a request can show it)", [r["stack"] for r in results])

    def ui(r: dict) -> str:
        parts = ["ZenML dashboard (`make dashboard`)"]
        if (r.get("records") or {}).get("mlflow"):
            parts.append("MLflow UI")
        probes = (r.get("serving") or {}).get("probes") or {}
        pages = {path: probes[key] for path, key in (("/docs", "docs"), ("/", "root")) if key in probes}
        if pages:
            shown = [f"GET {path} → {found.get('status') or found.get('error')}" for path, found in pages.items()]
            parts.append("server pages: " + ", ".join(shown))
        return "; ".join(parts)

    def registry(r: dict) -> str:
        mcp = (r.get("records") or {}).get("mcp") or {}
        text = f"MCP stage production → v{mcp.get('production')}" if mcp else _missing(r, "training")
        mlflow = (r.get("records") or {}).get("mlflow")
        if mlflow:
            text += f"; MLflow registry aliases: {_aliases(mlflow['aliases'])}"
        return text

    def probe(r: dict, name: str) -> str:
        serving = r.get("serving")
        if not serving:
            return _missing(r, "serving")
        found = serving["probes"][name]
        status = found.get("status") or found.get("error")
        path = serving["health_url"].split(serving["url"].rstrip("/"), 1)[-1] if name == "health" else f"/{name}"
        return f"GET {path} → {status}" + (" (Prometheus text)" if found.get("prometheus") else "")

    table.rows += [
        ("UI", [ui(r) if r.get("available") else _missing(r, "") for r in results]),
        ("registry and aliases", [registry(r) if r.get("available") else _missing(r, "") for r in results]),
        (
            "serving API shape",
            [
                _cell(
                    r,
                    "serving",
                    lambda v: (
                        f"POST {v['predict_url'].split(v['url'].rstrip('/'), 1)[-1]} "
                        + "{"
                        + ", ".join(f'"{key}": [...]' for key in v["request_shape"])
                        + "}"
                    ),
                )
                for r in results
            ],
        ),
        (
            "batching (rows in one request)",
            [
                _cell(r, "serving", lambda v: f"{len(v['predictions'])} of {v['parity_rows']} rows answered")
                for r in results
            ],
        ),
        ("metrics endpoint", [probe(r, "metrics") for r in results]),
        ("health check", [probe(r, "health") for r in results]),
        (
            "run records per request",
            [_cell(r, "serving", lambda v: f"{v['pipeline_runs_per_request']:.2f} pipeline runs") for r in results],
        ),
    ]
    return table


def build_tables(report: dict[str, Any]) -> list[Table]:
    return [
        stacks_table(report),
        records_table(report),
        time_table(report),
        answers_table(report),
        serving_table(report),
        features_table(report),
    ]


def header_lines(report: dict[str, Any]) -> list[str]:
    meta = report["meta"]
    data, host = meta["data"], meta["machine"]
    versions = ", ".join(f"{name} {v}" for name, v in host["versions"].items())
    loads = ", ".join(
        f"{level['requests']} requests at concurrency {level['concurrency']}" for level in meta["size"]["load"]
    )
    return [
        f"Generated {meta['generated']} in {meta['seconds'] / 60:.1f} min"
        + (" (--quick: small data, few requests)" if meta["quick"] else ""),
        f"Machine: {host['cpus']} CPUs, {host['python']}, {host['platform']}; {versions}",
        f"Data: {data['source']}: {data['training_rows']} training rows, {data['batch_rows']} monitoring-batch rows "
        f"(the newest), target `{data['target']}`, seed {data['seed']}, model `{data['model_name']}`",
        f"Serving load per server: {loads}; one row per request, over 127.0.0.1",
        f"Workspace (its own ZenML store, MLflow database, BentoML home): {meta['workspace']}",
    ]


def reading(report: dict[str, Any]) -> list[str]:
    """A short reading of the measurements, generated from them: which backend for traffic, which for tracking,
    what differs, and the caveats that limit the figures."""
    results, meta = report["results"], report["meta"]
    served = [r for r in results if r.get("serving")]
    lines: list[str] = []
    levels = _load_levels(report)
    if served and levels:
        top = levels[-1]
        by_rps = sorted(served, key=lambda r: -(r["serving"]["load"].get(top, {}).get("throughput_rps") or 0))
        by_p50 = sorted(served, key=lambda r: r["serving"]["load"].get(levels[0], {}).get("p50_ms") or float("inf"))
        best = by_rps[0]
        figure = best["serving"]["load"][top]
        bare = (report["baselines"].get("bare_http") or {}).get("load", {}).get(top, {})
        versus = f", {figure['throughput_rps'] / bare['throughput_rps']:.2f}x the bare HTTP server" if bare else ""
        lines.append(
            f"For traffic: `{best['stack']}` ({best['serving']['backend']}) served the most requests per second at "
            f"concurrency {top[1:]} ({figure['throughput_rps']:.0f}/s{versus}); the lowest one-request latency was "
            f"`{by_p50[0]['stack']}`'s ({by_p50[0]['serving']['load'][levels[0]]['p50_ms']:.1f} ms p50)."
        )
        slow = [r for r in served if r["serving"].get("pipeline_runs_per_request")]
        if slow:
            lines.append(
                "Recorded pipeline runs per request served: "
                + ", ".join(f"`{r['stack']}` {r['serving']['pipeline_runs_per_request']:.2f}" for r in slow)
                + " (ZenML's deployer with `record_every` set in configs/deployment.yaml): each costs a run in the "
                "ZenML store."
            )
    tracked = [r["stack"] for r in results if (r.get("records") or {}).get("mlflow")]
    plain = [r["stack"] for r in results if r.get("available") and r["stack"] not in tracked]
    if tracked:
        lines.append(
            "For experiment tracking and a registry UI: "
            + ", ".join(f"`{s}`" for s in tracked)
            + " (MLflow runs, registered versions, the `champion` alias following production)"
            + (
                f"; {', '.join(f'`{s}`' for s in plain)} keep everything in ZenML's Model Control Plane."
                if plain
                else "."
            )
        )
    checks = report["checks"]
    if checks.get("metrics_identical") is not None:
        lines.append(
            "Same model everywhere: the metrics are identical on every stack and called directly."
            if checks["metrics_identical"]
            else "The metrics differ between stacks (see the answers table): the same seed and data should not."
        )
    trained = [r for r in results if r.get("training")]
    direct = report["baselines"].get("direct", {}).get("training_seconds")
    if trained and direct:
        overhead = [r["training"]["wall_seconds"] / direct for r in trained if r["training"].get("wall_seconds")]
        if overhead:
            lines.append(
                f"Orchestration costs: a training run took {min(overhead):.1f}x to {max(overhead):.1f}x the time of "
                "the same steps called directly (records, artifacts, caching)."
            )
    unavailable = [r for r in results if not r.get("available")]
    lines += [f"`{r['stack']}` was not measured: {r.get('reason', 'unavailable')}" for r in unavailable]
    caveats = []
    if meta.get("quick"):
        smallest = min(level["requests"] for level in meta["size"]["load"])
        caveats.append(
            f"--quick: percentiles come from as few as {smallest} requests per level: indicative only; run without "
            "--quick for figures to quote"
        )
    uris = [
        (r["stack"], r["records"]["mlflow"].get("tracking_uri"))
        for r in results
        if (r.get("records") or {}).get("mlflow")
    ]
    shared = {uri for _, uri in uris if sum(1 for _, other in uris if other == uri) > 1}
    for uri in sorted(shared):
        stacks = ", ".join(f"`{s}`" for s, other in uris if other == uri)
        caveats.append(f"{stacks} share one MLflow database ({uri}): their MLflow run and version counts add up")
    lines += [f"Caveat: {caveat}." for caveat in caveats]
    return lines


# --- rendering -----------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# Stacks compared: the same work on each", ""]
    lines += [f"- {line}" for line in header_lines(report)]
    lines += ["", "## Reading", ""] + [f"- {line}" for line in reading(report)]
    for table in build_tables(report):
        lines += ["", f"## {table.title}", ""]
        lines.append("| | " + " | ".join(_md_cell(c) for c in table.columns) + " |")
        lines.append("|---|" + "---|" * len(table.columns))
        for label, cells in table.rows:
            lines.append(f"| {_md_cell(label)} | " + " | ".join(_md_cell(c) for c in cells) + " |")
        if table.notes:
            lines.append("")
            lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(caption, inline SVG) for the step times and the serving latency/throughput."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures: list[tuple[str, str]] = []
    results, baselines = report["results"], report["baselines"]
    trained = [r for r in results if r.get("training")]
    if trained:
        direct = baselines["direct"]
        columns = [(r["stack"], r["training"]["steps"]) for r in trained] + [("direct", direct["training_steps"])]
        steps = list(dict.fromkeys(step for _, found in columns for step in found))
        figure, axis = plt.subplots(figsize=(9, 3.6))
        width = 0.8 / len(columns)
        for index, (name, found) in enumerate(columns):
            positions = np.arange(len(steps)) + index * width
            axis.bar(positions, [found.get(step, 0.0) for step in steps], width, label=name)
        axis.set_xticks(np.arange(len(steps)) + 0.4 - width / 2, steps, rotation=20, ha="right")
        axis.set_ylabel("seconds")
        axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="stack")
        axis.set_title("Training steps: duration per stack (ZenML run records) and called directly")
        figures.append(("Training step durations", _svg(figure)))
    served = [(r["stack"], r["serving"]["load"]) for r in results if r.get("serving")]
    served += [(label, baselines[key]["load"]) for key, label in (("bare_http", "bare HTTP"),) if key in baselines]
    if served:
        levels = _load_levels(report)
        figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        width = 0.8 / len(served)
        for index, (name, load) in enumerate(served):
            positions = np.arange(len(levels)) + index * width
            axes[0].bar(positions, [load.get(level, {}).get("p50_ms", 0) for level in levels], width, label=name)
            axes[0].errorbar(
                positions,
                [load.get(level, {}).get("p50_ms", 0) for level in levels],
                yerr=[
                    [0] * len(levels),
                    [load.get(lv, {}).get("p99_ms", 0) - load.get(lv, {}).get("p50_ms", 0) for lv in levels],
                ],
                fmt="none",
                ecolor="black",
                capsize=3,
            )
            axes[1].bar(
                positions, [load.get(level, {}).get("throughput_rps", 0) for level in levels], width, label=name
            )
        for axis, title, unit in (
            (axes[0], "latency p50 (bar) to p99 (whisker)", "ms (log scale)"),
            (axes[1], "throughput", "requests/s (log scale)"),
        ):
            axis.set_xticks(np.arange(len(levels)) + 0.4 - width / 2, [f"concurrency {lv[1:]}" for lv in levels])
            axis.set_title(title, fontsize=10)
            axis.set_ylabel(unit)
            axis.set_yscale("log")
        handles, labels = axes[0].get_legend_handles_labels()  # one legend for both panels, beside them
        figure.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), title="server")
        figures.append(("Serving latency and throughput", _svg(figure)))
    return figures


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f0f0f0} td.label{font-weight:600;white-space:nowrap}
code{background:#f4f4f4;padding:1px 3px} figure{margin:1em 0} .note{color:#555;font-size:13px}
"""


def _html_text(text: str) -> str:
    """Escape, then render the Markdown bits the tables use (`code`, **bold**)."""
    import re

    escaped = html.escape(str(text))
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)


def render_html(report: dict[str, Any]) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Stacks compared</title>",
        f"<style>{STYLE}</style></head><body><h1>Stacks compared: the same work on each</h1><ul>",
        *(f"<li>{_html_text(line)}</li>" for line in header_lines(report)),
        "</ul><h2>Reading</h2><ul>",
        *(f"<li>{_html_text(line)}</li>" for line in reading(report)),
        "</ul>",
    ]
    for table in build_tables(report):
        parts.append(f"<h2>{_html_text(table.title)}</h2><table><tr><th></th>")
        parts += [f"<th>{_html_text(c)}</th>" for c in table.columns]
        parts.append("</tr>")
        for label, cells in table.rows:
            parts.append(f"<tr><td class='label'>{_html_text(label)}</td>")
            parts += [f"<td>{_html_text(c)}</td>" for c in cells]
            parts.append("</tr>")
        parts.append("</table>")
        parts += [f"<p class='note'>{_html_text(note)}</p>" for note in table.notes]
    for caption, svg in plots(report):
        parts.append(f"<h2>{html.escape(caption)}</h2><figure>{svg}</figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
