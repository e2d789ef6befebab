"""Where reports are written and how a monitoring report opens: its file name and the header a reader needs first."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pandas as pd

from lifecycle.config import PROJECT_ROOT, MonitoringConfig
from lifecycle.monitoring import MonitoringSummary


def reports_folder(monitoring: MonitoringConfig) -> Path:
    """The config's reports folder (relative to the project root); MLOPS_REPORTS_DIR overrides it."""
    folder = Path(os.environ.get("MLOPS_REPORTS_DIR", monitoring.reports_dir))
    return folder if folder.is_absolute() else PROJECT_ROOT / folder


def report_stem(model_name: str, model_version: str, batch_path: str) -> str:
    """`<model>-v<version>-<batch file>-<UTC time>`: a report's name says what was checked, with what, and when."""
    batch = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(batch_path).name.split(".")[0])[:60] or "batch"
    return f"{model_name}-v{model_version}-{batch}-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%SZ}"


def with_header(report_html: str, summary: MonitoringSummary, run_name: str) -> str:
    """The drift report, opening with what a reader needs first: model, version, batch, rows and the decision."""
    decision = "RETRAIN" if summary.decision.retrain else "no retraining"
    header = (
        '<div style="font-family:sans-serif;padding:12px 16px;border-bottom:1px solid #ccc;background:#f6f8fa">'
        f'<h2 style="margin:0 0 6px">Monitoring `{html.escape(summary.model_name)}` version '
        f"{html.escape(str(summary.model_version))}</h2>"
        f'<p style="margin:2px 0">batch: {html.escape(str(summary.batch_source))} ({summary.batch.rows} rows); '
        f"run: {html.escape(run_name)}</p>"
        f'<p style="margin:2px 0"><b>decision: {decision}</b> — '
        f"{html.escape('; '.join(summary.decision.reasons))}</p></div>"
    )
    match = re.search(r"<body[^>]*>", report_html, flags=re.IGNORECASE)
    return report_html[: match.end()] + header + report_html[match.end() :] if match else header + report_html


def write_monitoring_report(
    monitoring: MonitoringConfig,
    model_name: str,
    summary: MonitoringSummary,
    drift_html: str,
    run_name: str,
    batch_path: str,
) -> tuple[Path, Path]:
    """The drift report (with its header) and the JSON summary, in reports/monitoring/<model>/."""
    folder = reports_folder(monitoring) / "monitoring" / model_name
    folder.mkdir(parents=True, exist_ok=True)
    stem = report_stem(summary.model_name, summary.model_version, batch_path)
    report_path = folder / f"{stem}.html"
    report_path.write_text(with_header(drift_html, summary, run_name))
    summary_path = folder / f"{stem}.json"
    summary_path.write_text(summary.model_dump_json(indent=2))
    return report_path, summary_path
