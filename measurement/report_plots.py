"""The comparison report's plots (measurement/report.py), as inline SVG: step durations, serving latency and
throughput."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from measurement.report_tables import load_level_keys


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(caption, inline SVG) for the step times, the serving latency and the throughput: linear axes from 0."""
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
    served += [(label, baselines[key]["load"]) for key, label in BASELINES if key in baselines]
    levels = load_level_keys(report)
    if served and levels:
        for figure_key, caption, unit in (
            ("p50_ms", "Serving latency: p50 per server (whisker: the rounds' lowest to highest p50)", "ms"),
            (
                "throughput_rps",
                "Serving throughput per server (whisker: the slowest to the fastest round)",
                "requests/s",
            ),
        ):
            figures.append((caption, _svg(_level_panels(plt, served, levels, figure_key, unit))))
    return figures


# The baselines beside the stacks' servers: the floor (the bare server's work in-process) and the bare server.
BASELINES = (("in_process", "floor: in-process"), ("bare_http", "bare HTTP server"))


def _level_panels(plt, served: list[tuple[str, dict[str, Any]]], levels: list[str], key: str, unit: str):
    """One panel per load level, side by side, each with its own linear axis from 0: a horizontal bar per server
    (the figure over all rounds) and a whisker over the rounds' range; the value written beside each bar."""
    height = 0.45 * max(len(served), 2) + 1.0
    figure, axes = plt.subplots(
        1, len(levels), figsize=(5.2 * len(levels), height), squeeze=False, layout="constrained"
    )
    for axis, level in zip(axes[0], levels, strict=True):
        rows = [(name, load[level]) for name, load in served if level in load]
        names = [name for name, _ in rows][::-1]  # the first server at the top
        values = [found[key] for _, found in rows][::-1]
        low, high = [], []
        for (_, found), value in zip(rows[::-1], values, strict=True):
            rounds = [r[key] for r in found.get("rounds") or []] or [value]
            low.append(max(value - min(rounds), 0.0))
            high.append(max(max(rounds) - value, 0.0))
        positions = np.arange(len(rows))
        colours = ["#9e9e9e" if name in dict(BASELINES).values() else "#4878b0" for name in names]
        axis.barh(positions, values, color=colours, xerr=[low, high], ecolor="black", capsize=3)
        top = max((v + h for v, h in zip(values, high, strict=True)), default=1.0) or 1.0
        for position, value, extra in zip(positions, values, high, strict=True):
            axis.text(
                value + extra + top * 0.02,
                position,
                f"{value:.0f}" if key == "throughput_rps" else f"{value:.1f}",
                va="center",
                fontsize=8,
            )
        axis.set_yticks(positions, names, fontsize=9)
        axis.set_xlim(0, top * 1.25)
        axis.set_xlabel(unit)
        axis.set_title(f"concurrency {level[1:]}", fontsize=10)
    return figure
