"""The comparison report's "Which to pick" (measurement/report.py): each need a reviewer may have, and the stacks
that meet it in this run, built from what was measured and observed (records, probes of the running servers,
the load's rounds, memory, the stacks' ZenML integrations), never from a stack's name."""

from __future__ import annotations

from typing import Any

from measurement.noise import rank
from measurement.report_reading import FIGURES, served_spreads
from measurement.report_tables import load_level_keys


def _names(stacks: list[str]) -> str:
    return ", ".join(f"`{s}`" for s in stacks) if stacks else "none"


def _path(serving: dict[str, Any], url: str) -> str:
    return url.split(serving["url"].rstrip("/"), 1)[-1] or "/"


def _needs_tracking(available: list[dict[str, Any]]) -> str | None:
    tracked = [r for r in available if (r.get("records") or {}).get("mlflow")]
    if not tracked:
        return None
    example = tracked[0]["records"]["mlflow"]
    plain = [r["stack"] for r in available if r not in tracked]
    return (
        f"An experiment-tracking UI and a model registry with aliases: {_names([r['stack'] for r in tracked])} "
        f"(MLflow: the training run with {example.get('params', 0)} params and {example.get('metrics', 0)} metrics; "
        f"aliases {', '.join(sorted(example.get('aliases') or {})) or 'none'})"
        + (f". {_names(plain)} keep runs, artifacts and versions in ZenML alone." if plain else ".")
    )


def _needs_probe(available: list[dict[str, Any]], probe: str, what: str, test) -> str | None:
    served = [r for r in available if r.get("serving")]
    having = [r["stack"] for r in served if test(r["serving"]["probes"].get(probe) or {})]
    if not served:
        return None
    others = [
        f"`{r['stack']}` {(r['serving']['probes'].get(probe) or {}).get('status') or 'no answer'}"
        for r in served
        if r["stack"] not in having
    ]
    return f"{what}: {_names(having)}" + (f" (not: {', '.join(others)})." if others else ".")


def _request_shapes(available: list[dict[str, Any]]) -> str | None:
    served = [r for r in available if r.get("serving")]
    shapes: dict[str, list[str]] = {}
    for r in served:
        serving = r["serving"]
        body = "{" + ", ".join(f'"{key}": [...]' for key in serving["request_shape"]) + "}"
        shapes.setdefault(f"POST {_path(serving, serving['predict_url'])} {body}", []).append(r["stack"])
    if len(shapes) < 2:
        return None
    return (
        "The request your clients send: " + "; ".join(f"`{shape}` on {_names(s)}" for shape, s in shapes.items()) + "."
    )


def _needs_speed(report: dict[str, Any]) -> list[str]:
    levels = load_level_keys(report)
    if not levels:
        return []
    min_share = report["meta"].get("min_difference", 0.1)
    lines = []
    for level, figure, need in (
        (levels[0], "p50_ms", "The lowest one-request latency"),
        (levels[-1], "throughput_rps", f"The most requests/s at concurrency {levels[-1][1:]}"),
    ):
        spreads = served_spreads(report, level, figure)
        if len(spreads) < 2:
            continue
        ranking = rank(spreads, FIGURES[figure][0], min_share)
        _, unit, digits = FIGURES[figure]
        if not ranking.behind:
            lines.append(
                f"{need}: does not decide in this run (no measurable difference between {_names(list(spreads))})."
            )
            continue
        leaders = [ranking.best, *ranking.tied]
        behind = ", ".join(f"`{s}` {spreads[s].median:.{digits}f}{unit}" for s, _ in ranking.behind)
        figures = ", ".join(spreads[s].text(digits, unit) for s in leaders)
        lines.append(f"{need}: {_names(leaders)} ({figures}; measurably behind: {behind}).")
    return lines


def _needs_small_footprint(report: dict[str, Any], available: list[dict[str, Any]]) -> str | None:
    memory = {
        r["stack"]: r["serving"]["rss_mb_after"] for r in available if (r.get("serving") or {}).get("rss_mb_after")
    }
    if len(memory) < 2:
        return None
    smallest = min(memory.values())
    margin = 1 + report["meta"].get("min_difference", 0.1)
    small = sorted((s for s, mb in memory.items() if mb <= smallest * margin), key=lambda s: memory[s])
    large = sorted((s for s in memory if s not in small), key=lambda s: memory[s])

    def listed(stacks: list[str]) -> str:
        return ", ".join(f"`{s}` {memory[s]:.0f} MiB" for s in stacks)

    if not large:
        return f"The smallest server: no stack stands out ({listed(list(memory))})."
    return f"The smallest server (memory of all its processes after the load): {listed(small)} (then {listed(large)})."


def _needs_few_installs(available: list[dict[str, Any]]) -> str | None:
    needs: dict[str, dict[str, list[str]]] = {
        r["stack"]: r["integrations"] for r in available if r.get("integrations") is not None
    }
    if not needs:
        return None
    fewest = min(len(found) for found in needs.values())
    least = [s for s, found in needs.items() if len(found) == fewest]

    def listed(found: dict[str, list[str]]) -> str:
        return (
            " + ".join(f"{name} ({', '.join(packages) or 'no packages'})" for name, packages in found.items())
            or "ZenML alone"
        )

    return (
        f"The least to install: {_names(least)} ({listed(needs[least[0]])}). ZenML integrations each stack needs: "
        + "; ".join(f"`{s}` {listed(found)}" for s, found in needs.items())
        + "."
    )


def choice(report: dict[str, Any]) -> list[str]:
    """ "Need → stacks that meet it, with the evidence", for each need the run can speak to."""
    available = [r for r in report["results"] if r.get("available")]
    if not available:
        return ["No stack could be measured: nothing to pick from (see the reasons above)."]
    lines = [
        _needs_tracking(available),
        _needs_probe(
            available,
            "metrics",
            "Prometheus metrics from the model server (`GET /metrics`)",
            lambda p: p.get("prometheus"),
        ),
        _needs_probe(
            available,
            "docs",
            "An API docs page on the model server (`GET /docs` → 200)",
            lambda p: p.get("status") == 200,
        ),
        _request_shapes(available),
        *_needs_speed(report),
        _needs_small_footprint(report, available),
        _needs_few_installs(available),
    ]
    return [line for line in lines if line]
