"""A model version's card: what it predicts, from which data, how well, why it was (not) promoted, where it is
served and how it has done since. Built from facts the lifecycle already records (see `workflows.model_card`),
rendered as Markdown and as one self-contained HTML page (inline SVG charts, no network)."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from lifecycle.config import PROJECT_ROOT
from lifecycle.hints import run_hint
from lifecycle.metrics import LOWER_IS_BETTER, EvaluationReport
from lifecycle.validation import DataQualityReport, FeatureSchema


class ModelCard(BaseModel):
    model_name: str
    version: str
    description: str = ""
    intended_use: str = ""
    limitations: str = ""
    stage: str | None = None
    created: str = ""
    run_name: str = ""
    schema_: FeatureSchema = Field(alias="schema")
    data: DataQualityReport
    data_fingerprint: str = ""
    treatments: dict[str, str] = Field(default_factory=dict)
    split: dict[str, Any] = Field(default_factory=dict)
    evaluation: EvaluationReport
    promotion: dict[str, Any] = Field(default_factory=dict)  # the latest decision on this version
    estimator: str = ""
    estimator_params: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    git_commit: str = ""
    releases: list[dict[str, Any]] = Field(default_factory=list)
    serving: list[dict[str, Any]] = Field(default_factory=list)  # stack, backend, role, url, front_door
    monitoring: list[dict[str, Any]] = Field(default_factory=list)  # oldest first
    # With challengers: each trainer's figures on the same test rows (lifecycle.trainers) and the AutoML leaderboard.
    trainers: dict[str, Any] = Field(default_factory=dict)
    leaderboard: list[dict[str, Any]] = Field(default_factory=list)

    model_config = {"populate_by_name": True}


# A card is a list of sections; each block is a paragraph, a table or a chart, rendered by both renderers.
@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Chart:
    title: str
    labels: list[str]
    series: dict[str, list[float | None]]  # name -> one value per label
    kind: str = "bars"  # or "line"


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Chart] = field(default_factory=list)


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _code(value: Any) -> str:
    return f"`{value}`"


def share(value: Any) -> str:
    """A share (0.42) as every page of the card shows it: a percentage (42%)."""
    if value is None:
        return "—"
    number = float(value)
    return f"{number:.0%}" if number == 0 or abs(number) >= 0.01 else f"{number:.1%}"  # 0.4%, not 0%


NOT_FILLED_IN = (
    "*Not filled in.* Say it in `model.{key}` of the training config (configs/training.yaml); the next training "
    "run's card shows it."
)


def sections(card: ModelCard) -> list[Section]:
    """The card's content, in reading order."""
    return [
        _summary(card),
        _intended_use(card),
        _limitations(card),
        _data(card),
        _split(card),
        _metrics(card),
        *([_trainers(card)] if card.trainers else []),
        _promotion(card),
        _releases(card),
        _serving(card),
        _monitoring(card),
        _reproduce(card),
    ]


def _summary(card: ModelCard) -> Section:
    schema = card.schema_
    what = f"Predicts {_code(schema.target)} ({schema.task})"
    if schema.classes:
        what += f", classes {', '.join(_code(c) for c in schema.classes[:20])}"
    blocks: list[str | Table | Chart] = [
        f"{what} from {len(schema.model_inputs)} input columns.",
        f"Stage: **{card.stage or 'none (not promoted)'}**. Trained {card.created or '?'} "
        f"in run {_code(card.run_name)}.",
    ]
    # A description that says what the first line already says ("Predicts `cnt` ...") is not repeated.
    if card.description and not card.description.startswith(f"Predicts `{schema.target}`"):
        blocks.insert(0, card.description)
    return Section(f"Model card: {card.model_name} version {card.version}", blocks)


def _intended_use(card: ModelCard) -> Section:
    return Section("Intended use", [card.intended_use.strip() or NOT_FILLED_IN.format(key="intended_use")])


def _limitations(card: ModelCard) -> Section:
    return Section("Limitations", [card.limitations.strip() or NOT_FILLED_IN.format(key="limitations")])


def _data(card: ModelCard) -> Section:
    data = card.data
    blocks: list[str | Table | Chart] = [
        f"File {_code(data.source)}, sha256 {_code(card.data_fingerprint or '?')}.",
        f"Rows: {data.rows_in} read, {data.rows_out} used, {data.rows_without_target} dropped (no target).",
    ]
    ordering = card.schema_.time_columns[:1]  # the split orders rows by the first time column
    for column in ordering:
        if column in data.time_span:
            first, last = data.time_span[column]
            blocks.append(f"Time span ({_code(column)}): {first} to {last}.")
    rows = [[_code(card.schema_.target), "target", f"{card.schema_.task} target", "0"]]
    for column in card.schema_.model_inputs:
        rows.append([_code(column), "input", card.treatments.get(column, ""), str(data.missing_values.get(column, 0))])
    for column, why in data.dropped_columns.items():
        rows.append([_code(column), "dropped", why, ""])
    blocks.append(Table(["column", "role", "treatment", "missing"], rows))
    if data.warnings:
        blocks.append("Warnings: " + "; ".join(data.warnings) + ".")
    return Section("Data", blocks)


def _split(card: ModelCard) -> Section:
    split = card.split
    text = (
        f"{split.get('split_method', '?')} split: {split.get('train_rows', '?')} training rows, "
        f"{split.get('test_rows', card.evaluation.test_rows)} test rows"
    )
    if split.get("test_starts_at"):
        text += f"; the test rows start at {split['test_starts_at']}"
    return Section("Split", [text + f" (seed {_num(split.get('seed', card.seed))})."])


def _metrics(card: ModelCard) -> Section:
    evaluation = card.evaluation
    production = card.promotion.get("production_metrics") or {}
    production_version = card.promotion.get("production_version")
    strongest = evaluation.naive_baseline.strongest if evaluation.naive_baseline else {}
    headers = ["metric", "this version", "naive baseline"]
    if production:
        headers.append(f"production (version {production_version}), same rows")
    rows = []
    for metric, value in evaluation.metrics.items():
        baseline = evaluation.baseline_metrics.get(metric)
        which = f" ({strongest[metric]})" if metric in strongest else ""
        row = [metric + (" (primary)" if metric == evaluation.primary_metric else ""), _num(value)]
        row.append(_num(baseline) + (which if baseline is not None else ""))
        if production:
            row.append(_num(production.get(metric)))
        rows.append(row)
    direction = "lower" if evaluation.primary_metric in LOWER_IS_BETTER else "higher"
    blocks: list[str | Table | Chart] = [
        f"On {evaluation.test_rows} test rows; {direction} {evaluation.primary_metric} is better.",
        Table(headers, rows),
    ]
    segments = [s for s in evaluation.segments if s.metrics]
    if segments:
        metric = evaluation.primary_metric
        production_segments = {
            (s["column"], str(s["value"])): s.get("metrics", {}) for s in card.promotion.get("production_segments", [])
        }
        seg_headers = ["segment", "rows", f"{metric}, this version"]
        if production_segments:
            seg_headers.append(f"{metric}, production")
        seg_headers.append("vs overall")
        seg_rows, labels, mine, theirs = [], [], [], []
        for segment in segments:
            label = f"{segment.column}={segment.value}"
            other = production_segments.get((segment.column, str(segment.value)), {}).get(metric)
            row = [label, str(segment.rows), _num(segment.metrics.get(metric))]
            if production_segments:
                row.append(_num(other))
            gap = f"{segment.gap:+.0%}" if segment.gap is not None else ""
            seg_rows.append(row + [f"{gap} flagged" if segment.flagged else gap])
            labels.append(label)
            mine.append(segment.metrics.get(metric))
            theirs.append(other)
        blocks.append(Table(seg_headers, seg_rows))
        series: dict[str, list[float | None]] = {f"version {card.version}": mine}
        if production_segments:
            series[f"production (version {production_version})"] = theirs
        blocks.append(Chart(f"{metric} per segment", labels, series))
    return Section("Metrics", blocks + _per_class(card))


def _per_class(card: ModelCard) -> list[str | Table | Chart]:
    """A classifier's metrics per class, its confusion matrix and the class balance of its train and test rows."""
    breakdown = card.evaluation.by_class
    if breakdown is None:
        return []
    metrics = card.evaluation.metrics
    blocks: list[str | Table | Chart] = []
    if "accuracy" in metrics and "f1_macro" in metrics:
        blocks.append(
            f"accuracy {_num(metrics['accuracy'])} counts rows, so the common classes dominate it; f1_macro "
            f"{_num(metrics['f1_macro'])} is the plain mean of the per-class F1 below, so each class counts alike."
        )
    rows = [
        [
            _code(c.label),
            _num(c.precision),
            _num(c.recall),
            _num(c.f1),
            str(c.support),
            share(breakdown.train_shares.get(c.label)),
            share(breakdown.test_shares.get(c.label)),
        ]
        for c in breakdown.classes
    ]
    headers = ["class", "precision", "recall", "F1", "support (test rows)", "share of train", "share of test"]
    blocks.append(Table(headers, rows))
    blocks.append("Confusion matrix on the test rows (rows: the true class; columns: the predicted class):")
    blocks.append(
        Table(
            ["true ↓ predicted →", *(_code(label) for label in breakdown.labels)],
            [
                [_code(label), *(str(cell) for cell in row)]
                for label, row in zip(breakdown.labels, breakdown.confusion, strict=True)
            ],
        )
    )
    blocks.append(
        Chart(
            "F1 per class",
            list(breakdown.labels),
            {"F1": [c.f1 for c in breakdown.classes]},
        )
    )
    return blocks


def _trainers(card: ModelCard) -> Section:
    comparison = card.trainers
    metric = comparison.get("primary_metric", "")
    rows = []
    for figures in comparison.get("trainers", []):
        low, high = figures.get("interval") or (None, None)
        rows.append(
            [
                _code(figures.get("trainer")),
                _code(figures.get("estimator")),
                _num(figures.get("metrics", {}).get(metric)),
                f"{_num(low)} to {_num(high)}",
                _num(figures.get("train_seconds")),
                f"{(figures.get('size_bytes') or 0) / 1024:.0f} KiB",
            ]
        )
    blocks: list[Any] = [
        f"Chosen: **{comparison.get('chosen', '')}**. {comparison.get('reason', '')}.",
        Table(["trainer", "estimator", metric, "95% interval", "train s", "size"], rows),
    ]
    if card.leaderboard:
        headers = list(card.leaderboard[0])
        blocks.append("H2O AutoML leaderboard (cross-validated on the training rows):")
        blocks.append(Table(headers, [[_num(row.get(h)) for h in headers] for row in card.leaderboard]))
    return Section("Trainers compared", blocks)


def _promotion(card: ModelCard) -> Section:
    decision = card.promotion
    if not decision:
        return Section("Promotion", ["No promotion decision is recorded for this version."])
    verdict = f"promoted to {decision.get('stage', 'production')}" if decision.get("promoted") else "not promoted"
    blocks: list[str | Table | Chart] = [f"**{verdict}**: {decision.get('reason', '')}"]
    gates = decision.get("gates") or []
    if gates:
        rows = []
        for gate in gates:
            passed = gate.get("passed")
            outcome = "passed" if passed else ("not checked" if passed is None else "failed")
            rows.append([gate.get("name", ""), gate.get("mode", ""), outcome, gate.get("detail", "")])
        blocks.append(Table(["gate", "mode", "outcome", "detail"], rows))
    if decision.get("flags"):
        blocks.append("Flags: " + "; ".join(decision["flags"]) + ".")
    return Section("Promotion", blocks)


def _releases(card: ModelCard) -> Section:
    if not card.releases:
        return Section("Releases", ["This version has not changed stage."])
    rows = [
        [e.get("at", ""), e.get("stage", ""), e.get("by", ""), _code(e.get("command", "")), e.get("reason", "")]
        for e in card.releases
    ]
    return Section("Releases", [Table(["at", "stage", "by", "command", "reason"], rows)])


def _serving(card: ModelCard) -> Section:
    if not card.serving:
        return Section("Serving", ["Not served on any stack of this project."])
    rows = [
        [s.get("stack", ""), s.get("backend", ""), s.get("role", ""), s.get("url", ""), s.get("front_door") or "—"]
        for s in card.serving
    ]
    return Section("Serving", [Table(["stack", "backend", "role", "server", "front door"], rows)])


def _monitoring(card: ModelCard) -> Section:
    if not card.monitoring:
        return Section("Monitoring", [f"Not monitored yet (`{run_hint()} monitor`)."])
    metric = card.evaluation.primary_metric
    rows, labels, drift, scores = [], [], [], []
    for record in card.monitoring:
        performance = (record.get("metrics") or {}).get(metric)
        rows.append(
            [
                record.get("at", ""),
                record.get("batch", ""),
                str(record.get("rows", "")),
                share(record.get("drift_share")),
                ", ".join(record.get("drifted_columns") or []) or "none",
                _num(performance),
                "retrain" if record.get("retrain") else "keep",
            ]
        )
        labels.append(str(record.get("at", ""))[:16])
        drift.append(record.get("drift_share"))
        scores.append(performance)
    latest = card.monitoring[-1]
    blocks: list[str | Table | Chart] = [
        f"Latest: {latest.get('at', '')}, decision **{'retrain' if latest.get('retrain') else 'keep'}**: "
        + "; ".join(latest.get("reasons") or []),
        Table(["at", "batch", "rows", "drift share", "drifted columns", metric, "decision"], rows),
        Chart("drift share per monitoring run", labels, {"drift share": drift}, kind="line"),
    ]
    if any(score is not None for score in scores):
        blocks.append(Chart(f"{metric} on labelled batches", labels, {metric: scores}, kind="line"))
    return Section("Monitoring", blocks)


def _reproduce(card: ModelCard) -> Section:
    params = ", ".join(f"{k}={_num(v)}" for k, v in sorted(card.estimator_params.items())) or "defaults"
    return Section(
        "Reproduce",
        [
            f"Estimator {_code(card.estimator)} ({params}); seed {_num(card.seed)}.",
            f"Code: {_commit(card.git_commit)}. Data: the file above, with the same sha256.",
        ],
    )


def _commit(commit: str) -> str:
    if commit and commit != "unknown":
        return f"git commit {_code(commit)}"
    return (
        "git commit not recorded (the project is not a git repository, or has no commit yet). To tie each card "
        "to the code that trained it: `git init && git add -A && git commit -m 'First version'`, then train again"
    )


# --- Markdown ---------------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(card: ModelCard) -> str:
    lines: list[str] = []
    for index, section in enumerate(sections(card)):
        lines += [f"{'#' if index == 0 else '##'} {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
                lines.append("|" + "---|" * len(block.headers))
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            elif isinstance(block, Chart):
                continue  # charts are in the HTML card; their figures are in the tables
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


# --- HTML -------------------------------------------------------------------------------------------------------

_COLOURS = ["#2f6fb0", "#d0803a", "#4a9a5c", "#a34a8c"]


def _inline(text: str) -> str:
    """Markdown's `code` and **bold** in one line of text, as HTML."""
    import re

    escaped = html.escape(str(text))
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", escaped)


def svg_chart(chart: Chart, width: int = 760, height: int = 260) -> str:
    """A bar or line chart as inline SVG (no script, no network)."""
    values = [v for series in chart.series.values() for v in series if v is not None]
    if not values or not chart.labels:
        return ""
    top = max(max(values), 0.0) or 1.0
    bottom = min(min(values), 0.0)
    left, right, upper, lower = 60, 10, 30, 70
    plot_w, plot_h = width - left - right, height - upper - lower
    span = (top - bottom) or 1.0

    def y(value: float) -> float:
        return upper + plot_h * (top - value) / span

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{html.escape(chart.title)}</title>",
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(chart.title)}</text>',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" stroke="#888"/>',
    ]
    for tick in (bottom, (top + bottom) / 2, top):
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.3g}</text>')
    slot = plot_w / len(chart.labels)
    names = list(chart.series)
    for s_index, name in enumerate(names):
        colour = _COLOURS[s_index % len(_COLOURS)]
        points = []
        for index, value in enumerate(chart.series[name]):
            if value is None:
                continue
            if chart.kind == "bars":
                bar_w = slot * 0.8 / len(names)
                x = left + slot * index + slot * 0.1 + bar_w * s_index
                y0, y1 = sorted((y(0), y(value)))
                parts.append(
                    f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar_w:.1f}" height="{max(y1 - y0, 0.5):.1f}" '
                    f'fill="{colour}"><title>{html.escape(chart.labels[index])}: {value:.4g}</title></rect>'
                )
            else:
                points.append(f"{left + slot * (index + 0.5):.1f},{y(value):.1f}")
        if points:
            parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for point in points:
                cx, cy = point.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        parts.append(
            f'<rect x="{width - right - 220}" y="{8 + 14 * s_index}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{width - right - 206}" y="{17 + 14 * s_index}">{html.escape(name)}</text>'
        )
    step = max(1, len(chart.labels) // 24)  # at most about 24 labels under the axis
    for index in range(0, len(chart.labels), step):
        x = left + slot * (index + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{height - lower + 14}" text-anchor="end" '
            f'transform="rotate(-40 {x:.1f} {height - lower + 14})">{html.escape(chart.labels[index][:18])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}"
    "table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;"
    "font-size:13px;vertical-align:top}th{background:#f3f5f7}code{background:#f3f5f7;padding:0 3px}"
    "h1{font-size:24px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}"
)


def render_html(card: ModelCard) -> str:
    body: list[str] = []
    for index, section in enumerate(sections(card)):
        tag = "h1" if index == 0 else "h2"
        body.append(f"<section><{tag}>{html.escape(section.title)}</{tag}>")
        for block in section.blocks:
            if isinstance(block, Table):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>" for row in block.rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif isinstance(block, Chart):
                body.append(svg_chart(block))
            else:
                body.append(f"<p>{_inline(block)}</p>")
        body.append("</section>")
    title = html.escape(f"{card.model_name} version {card.version}: model card")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


def cards_folder(model_name: str) -> Path:
    """reports/models/<model>/ (MLOPS_REPORTS_DIR moves reports/)."""
    reports = Path(os.environ.get("MLOPS_REPORTS_DIR", "reports"))
    return (reports if reports.is_absolute() else PROJECT_ROOT / reports) / "models" / model_name


def write_card_files(card: ModelCard) -> tuple[Path, Path]:
    """reports/models/<model>/v<N>.html and .md; returns their paths."""
    folder = cards_folder(card.model_name)
    folder.mkdir(parents=True, exist_ok=True)
    html_path, md_path = folder / f"v{card.version}.html", folder / f"v{card.version}.md"
    html_path.write_text(render_html(card))
    md_path.write_text(render_markdown(card))
    return html_path, md_path
