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
        levels = load_level_keys(report)
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
