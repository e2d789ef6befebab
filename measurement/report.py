"""The comparison report of `python run.py compare`: what was measured on each stack, summarized with the
cross-stack checks, as Markdown and as a self-contained HTML page (tables and inline SVG plots, no external
resources).

Every cell comes from the run's measurements (measurement/comparison.py); a cell that has nothing to show says
why (the stack has no such component, or the stage failed, with its error). The tables are built in
measurement/report_tables.py, the reading in measurement/report_reading.py, the plots in
measurement/report_plots.py.
"""

from __future__ import annotations

import html
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from measurement.report_choice import choice
from measurement.report_plots import plots
from measurement.report_reading import reading
from measurement.report_tables import build_tables
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
            "served_own_version": {r["stack"]: served_own_version(r) for r in served if r.get("training")},
        },
    }


def served_own_version(result: dict[str, Any]) -> bool:
    """The stack served the version its own training run made, and its store held no other."""
    trained = str(result["training"]["model_version"])
    held = [str(v) for v in ((result.get("records") or {}).get("mcp") or {}).get("versions", [])]
    return result["serving"]["model_version"] == trained and held == [trained]


def _spread(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return float(max(present) - min(present)) if present else float("nan")


def header_lines(report: dict[str, Any]) -> list[str]:
    meta = report["meta"]
    data, host = meta["data"], meta["machine"]
    versions = ", ".join(f"{name} {v}" for name, v in host["versions"].items())
    rounds = meta["size"].get("rounds", 1)
    loads = ", ".join(
        f"{level['requests']} requests at concurrency {level['concurrency']}" for level in meta["size"]["load"]
    ) + (f", each level sent in {rounds} rounds" if rounds > 1 else "")
    return [
        f"Generated {meta['generated']} in {meta['seconds'] / 60:.1f} min"
        + (" (--quick: small data, few requests)" if meta["quick"] else ""),
        f"Machine: {host['cpus']} CPUs, {host['python']}, {host['platform']}; {versions}",
        f"Data: {data['source']}: {data['training_rows']} training rows, {data['batch_rows']} monitoring-batch rows "
        f"(the newest), target `{data['target']}`, seed {data['seed']}, model `{data['model_name']}`",
        f"Serving load per server: {loads}; one row per request, over 127.0.0.1",
        f"Workspace: {meta['workspace']}; each stack has a fresh ZenML store, MLflow database and BentoML home of "
        "its own there (`stacks/<name>/`), so every stack starts from the same empty state",
    ]


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# Stacks compared: the same work on each", ""]
    lines += [f"- {line}" for line in header_lines(report)]
    lines += ["", "## Reading", ""] + [f"- {line}" for line in reading(report)]
    lines += ["", "## Which to pick", ""] + [f"- {line}" for line in choice(report)]
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
        "</ul><h2>Which to pick</h2><ul>",
        *(f"<li>{_html_text(line)}</li>" for line in choice(report)),
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
