"""The comparison report's reading (measurement/report.py): a few sentences generated from the measurements.

A serving difference is named only when it exceeds the run's own noise (measurement/noise.py: the rounds of the
two servers do not overlap, and their medians differ by more than `min_difference`); otherwise the reading says
there is no measurable difference.
"""

from __future__ import annotations

from typing import Any

from measurement.noise import Ranking, Spread, compare_spreads, rank, rule
from measurement.report_tables import load_level_keys

# figure in a load level's rounds -> (higher is better, unit, digits)
FIGURES = {"throughput_rps": (True, "/s", 0), "p50_ms": (False, " ms", 1)}


def spread_of(load: dict[str, Any] | None, level: str, figure: str) -> Spread | None:
    """A load level's figure over its rounds (one value, the pooled one, where rounds were not kept)."""
    values = (load or {}).get(level)
    if not values:
        return None
    rounds = [found.get(figure) for found in values.get("rounds") or []]
    try:
        return Spread.of(rounds or [values.get(figure)])
    except ValueError:
        return None


def served_spreads(report: dict[str, Any], level: str, figure: str) -> dict[str, Spread]:
    """Each serving stack's spread of `figure` at `level`."""
    spreads = {}
    for result in report["results"]:
        found = spread_of((result.get("serving") or {}).get("load"), level, figure)
        if found is not None:
            spreads[result["stack"]] = found
    return spreads


def ranking_text(ranking: Ranking, spreads: dict[str, Spread], figure: str) -> str:
    """`local` 150/s (140–160 over 5 rounds); within its noise: ...; measurably behind: ..."""
    _, unit, digits = FIGURES[figure]
    named = lambda name: f"`{name}` {spreads[name].text(digits, unit)}"  # noqa: E731
    if not ranking.behind:
        return "no measurable difference: " + ", ".join(named(name) for name in [ranking.best, *ranking.tied])
    text = f"{named(ranking.best)}" + (
        f", with {', '.join(named(name) for name in ranking.tied)} within its noise" if ranking.tied else ""
    )
    behind = "; ".join(f"{named(name)}, {difference.why}" for name, difference in ranking.behind)
    return f"{text}; measurably behind: {behind}"


def serving_lines(report: dict[str, Any]) -> list[str]:
    """Traffic and latency, named only beyond the noise; the floor and the bare server as the yardsticks."""
    levels = load_level_keys(report)
    min_share = report["meta"].get("min_difference", 0.1)
    lines: list[str] = []
    if not levels:
        return lines
    first, top = levels[0], levels[-1]
    lines.append(rule(report["meta"]["size"].get("rounds", 1), min_share))
    for level, figure, label in ((top, "throughput_rps", "Traffic"), (first, "p50_ms", "One-request latency")):
        spreads = served_spreads(report, level, figure)
        if len(spreads) < 2:
            continue
        ranking = rank(spreads, FIGURES[figure][0], min_share)
        what = "requests/s" if figure == "throughput_rps" else "p50"
        lines.append(f"{label} ({what} at concurrency {level[1:]}): {ranking_text(ranking, spreads, figure)}.")
        lines += same_server_drift(report, ranking, spreads, level, figure)
    lines += floor_lines(report, first)
    return lines


def same_server_drift(
    report: dict[str, Any], ranking: Ranking, spreads: dict[str, Spread], level: str, figure: str
) -> list[str]:
    """Two stacks that run the same server: a measurable difference between them is the machine, not the stack."""
    backend = {r["stack"]: r["serving"]["backend"] for r in report["results"] if r.get("serving")}
    lines = []
    pairs = [(a, b) for a in spreads for b in spreads if a < b and backend.get(a) == backend.get(b)]
    for a, b in pairs:
        difference = compare_spreads(
            spreads[a], spreads[b], FIGURES[figure][0], report["meta"].get("min_difference", 0.1)
        )
        if difference.measurable:
            lines.append(
                f"`{a}` and `{b}` run the same {backend[a]} server, yet differ measurably at concurrency {level[1:]} "
                f"({difference.ratio:.2f}x): the machine's load changed between them, so read the other serving "
                "differences with that margin in mind."
            )
        else:
            lines.append(
                f"`{a}` and `{b}` run the same {backend[a]} server: at concurrency {level[1:]} they show no "
                f"measurable difference ({difference.why}), as they should."
            )
    return lines


def floor_lines(report: dict[str, Any], level: str) -> list[str]:
    """Why the floor is the floor: the bare server's own work in-process, then what HTTP and each server add."""
    baselines = report["baselines"]
    floor = spread_of((baselines.get("in_process") or {}).get("load"), level, "p50_ms")
    bare = spread_of((baselines.get("bare_http") or {}).get("load"), level, "p50_ms")
    if floor is None or bare is None:
        return []
    served = served_spreads(report, level, "p50_ms")
    text = (
        f"Floor: the bare server's whole work for a request (JSON in, DataFrame, `model.predict`, JSON out) called "
        f"in-process takes {floor.text(1, ' ms')} p50; the bare HTTP server adds HTTP for "
        f"{bare.median - floor.median:+.1f} ms ({bare.text(1, ' ms')})"
    )
    if served:
        added = [spread.median - bare.median for spread in served.values()]
        span = f"{min(added):+.1f}" if len(added) == 1 else f"{min(added):+.1f} to {max(added):+.1f}"
        text += (
            f"; the stacks' servers add {span} ms more (request validation, their framework, their own process model)"
        )
    if floor.median > bare.median:
        text += (
            ". The floor measured slower than the bare server in this run: the machine was busier while it ran "
            "(the two do the same work but HTTP)"
        )
    return [text + "."]


def mlflow_numbering(report: dict[str, Any]) -> list[str]:
    """MLflow numbers its registered versions on its own: say which ZenML version each MLflow version holds."""
    lines = []
    for result in report["results"]:
        mlflow = (result.get("records") or {}).get("mlflow") or {}
        registered = mlflow.get("registered") or []
        if not registered:
            continue
        held = ", ".join(f"MLflow v{found['version']} = ZenML v{found['mcp_version'] or '?'}" for found in registered)
        aliases = ", ".join(f"`{a}` → MLflow v{f['version']}" for a, f in (mlflow.get("aliases") or {}).items())
        same = {found["mcp_version"] for found in registered}
        matching = all(str(found["version"]) == str(found["mcp_version"]) for found in registered)
        if matching:
            note = "; they match here because the stack's MLflow database started empty"
        elif len(same) < len(registered):
            note = "; one ZenML version is registered in MLflow more than once"
        else:
            note = "; they differ from ZenML's"
        lines.append(
            f"MLflow numbers its versions on its own{note}: on `{result['stack']}`, {held}"
            + (f"; {aliases}." if aliases else ".")
        )
    return lines


def reading(report: dict[str, Any]) -> list[str]:
    """A short reading of the measurements, generated from them: traffic and latency (named beyond the noise
    only), the floor, MLflow's numbering, what each stack served, what orchestration costs, and the caveats."""
    results, meta = report["results"], report["meta"]
    lines = serving_lines(report)
    served = [r for r in results if r.get("serving")]
    slow = [r for r in served if r["serving"].get("pipeline_runs_per_request")]
    if slow:
        lines.append(
            "Recorded pipeline runs per request served: "
            + ", ".join(f"`{r['stack']}` {r['serving']['pipeline_runs_per_request']:.2f}" for r in slow)
            + " (ZenML's deployer with `record_every` set in configs/deployment.yaml): each costs a run in the "
            "ZenML store."
        )
    lines += mlflow_numbering(report)
    checks = report["checks"]
    if checks.get("metrics_identical") is not None:
        lines.append(
            "Same model everywhere: the metrics are identical on every stack and called directly."
            if checks["metrics_identical"]
            else "The metrics differ between stacks (see the answers table): the same seed and data should not."
        )
    own = checks.get("served_own_version") or {}
    if own:
        if all(own.values()):
            lines.append(
                "Each stack started from an empty store of its own and served the version it trained itself ("
                + ", ".join(f"`{s}` v{r['serving']['model_version']}" for s in own for r in served if r["stack"] == s)
                + ")."
            )
        else:
            lines.append(
                "Not every stack served the version it trained: "
                + ", ".join(f"`{s}`" for s, same in own.items() if not same)
                + " (see the answers table)."
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
            f"--quick: each round has as few as {smallest} requests: percentiles are indicative only; run without "
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
