"""The HTTP client side of serving: JSON over HTTP, health checks, and reading rows to send."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from lifecycle.errors import LifecycleError
from lifecycle.hints import run_hint


def http_json(
    url: str, body: Any = None, timeout: float = 30.0, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """POST `body` as JSON (GET when None); returns (status, parsed JSON or text). Never raises on 4xx/5xx."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def error_text(body: Any) -> str:
    """The message of an error response: ours and MLflow's are objects; BentoML wraps ours in a list."""
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body.get("detail") or "")
    return str(body or "")


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        status, _ = http_json(url, timeout=timeout)
    except (urllib.error.URLError, OSError):
        return False
    return status == 200


def post_records(url: str, body: Any, timeout: float = 60.0, headers: dict[str, str] | None = None) -> Any:
    """POST a prediction request; the parsed answer, or a LifecycleError with the server's message."""
    try:
        status, answer = http_json(url, body, timeout=timeout, headers=headers)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LifecycleError(
            f"{url} did not answer ({reason}). Fix: `{run_hint()} status`, then `{run_hint()} deploy` if it is down."
        ) from exc
    if status != 200:
        raise LifecycleError(f"{url} answered {status}: {error_text(answer)}")
    return answer


def read_request_rows(path: str) -> list[dict[str, Any]]:
    """Rows to predict from a CSV/Parquet table, or a JSON file holding records or {"records": [...]}."""
    from lifecycle.data import check_data_path, read_table

    if path.lower().endswith(".json"):
        checked = check_data_path(path, suffixes=(".json",))
        try:
            payload = json.loads(Path(checked).read_text())
        except ValueError as exc:
            raise LifecycleError(f"{path} is not valid JSON ({exc}). Fix: write a list of row objects.") from exc
        records = payload.get("records") if isinstance(payload, dict) else payload
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise LifecycleError(f'{path} must hold a list of row objects, or {{"records": [...]}}.')
        return records
    table = read_table(path)
    table = table.astype(object).where(table.notna(), None)
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()} for row in table.to_dict("records")
    ]
