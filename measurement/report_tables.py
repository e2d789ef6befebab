"""The comparison report's tables (measurement/report.py): one per part of the work, a column per stack, each
cell from the run's measurements or saying why it has none."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


def load_level_keys(report: dict[str, Any]) -> list[str]:
    """The keys of the configured load levels in the serving results: `c<concurrency>`."""
    return [f"c{level['concurrency']}" for level in report["meta"]["size"]["load"]]


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
    prefixes = report["meta"].get("inspect_prefixes") or {}
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
        "Each stack has its own store. To look for yourself, point a shell at one first:",
        *(f"{stack}: `export {prefix}`" for stack, prefix in prefixes.items()),
        "Then:",
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
    own = checks.get("served_own_version") or {}
    table.rows.append(
        (
            "version served (the one this stack trained?)",
            [
                _cell(
                    r,
                    "serving",
                    lambda v, s=r["stack"]: (
                        f"v{v['model_version']}"
                        + ("" if s not in own else " (trained here)" if own[s] else " (NOT the one trained here)")
                    ),
                )
                for r in results
            ]
            + ["—"],
        )
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
        "Each stack starts from an empty ZenML store, MLflow database and BentoML home of its own, trains with the "
        "same data and seed, promotes that version (there is no production version to beat) and serves it."
    )
    return table


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
            rounds = [found["throughput_rps"] for found in values.get("rounds") or []]
            spread = f" (rounds {min(rounds):.0f}–{max(rounds):.0f})" if len(rounds) > 1 else ""
            return f"{values['throughput_rps']:.1f}{spread}"
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
    for level in load_level_keys(report):
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
        "Latency is measured by the client from request to full answer, over every round; requests/s is all answers "
        "over all the rounds' time, with the slowest and fastest round in brackets. The bare HTTP server is the same "
        "model behind the smallest Starlette app (measurement/bare_server.py: JSON in, DataFrame, `model.predict`, "
        "JSON out; no validation). The in-process column is the floor: that server's very work for each request "
        "called directly, one after the other, after the same warm-up requests and in the same rounds, so it does "
        "everything a server must do but HTTP."
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
