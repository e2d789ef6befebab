"""Security checks on data paths: a directory, a missing, unreadable or empty file, or an unsupported suffix given
to `train --data`, `monitor --batch` or `predict --input` ends in a one-line error (exit code 2), never a
traceback; the rows `predict` reads are validated before they are sent."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

from lifecycle.errors import LifecycleError


def _unreadable_wrapper() -> list[str]:
    """Root reads every file: drop the two capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    if os.geteuid() != 0:
        return []
    wrapper = [shutil.which("setpriv") or "setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    try:
        usable = subprocess.run([*wrapper, "true"], capture_output=True, timeout=30).returncode == 0
    except OSError:
        usable = False
    if not usable:
        pytest.skip("running as root without a usable `setpriv` (util-linux): root would read a mode-000 file")
    return wrapper


def _bad_path(tmp_path: Path, kind: str) -> Path:
    if kind == "a directory":
        path = tmp_path / "table.csv"
        path.mkdir()
    elif kind == "a missing file":
        path = tmp_path / "absent.csv"
    elif kind == "an unsupported suffix":
        path = tmp_path / "table.xlsx"
        path.write_bytes(b"PK\x03\x04 not a table")
    elif kind == "an empty file":
        path = tmp_path / "empty.csv"
        path.write_bytes(b"")
    else:
        path = tmp_path / "locked.csv"
        path.write_text("cnt,temp\n1,2\n")
        path.chmod(0)
    return path


EXPECTED = {
    "a directory": "is a directory",
    "a missing file": "not found",
    "an unsupported suffix": "unsupported type",
    "an empty file": "is empty",
    "an unreadable file": "not readable",
}


@pytest.mark.parametrize(
    "command, kind",
    [
        ("train", "a directory"),
        ("train", "a missing file"),
        ("train", "an unsupported suffix"),
        ("train", "an empty file"),
        ("train", "an unreadable file"),
        ("monitor", "a directory"),
        ("predict", "a directory"),
    ],
)
def test_cli_rejects_bad_data_paths_in_one_line(zenml_client, tmp_path, command, kind):
    path = _bad_path(tmp_path, kind)
    wrapper = _unreadable_wrapper() if kind == "an unreadable file" else []
    option = {"train": "--data", "monitor": "--batch", "predict": "--input"}[command]
    extra = ["--target", "cnt"] if command == "train" else []
    done = run_cli(command, option, str(path), *extra, timeout=300, wrapper=tuple(wrapper))
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "Fix" in message, done.stderr[-3000:]
    if command == "predict":
        # `predict` looks for a live server before it reads --input: with none running, that is the error.
        assert str(path) in message or "no healthy" in message, message
    else:
        assert str(path) in message and EXPECTED[kind] in message, message
        assert done.stderr.strip() == message, "more than the one-line error on stderr"


@pytest.mark.parametrize("kind", ["a directory", "a missing file", "an unsupported suffix", "an empty file"])
def test_predict_input_rows_are_validated(tmp_path, kind):
    """What `python run.py predict --input` reads once a server is found (serving.client.read_request_rows)."""
    from serving.client import read_request_rows

    path = _bad_path(tmp_path, kind)
    with pytest.raises(LifecycleError) as error:
        read_request_rows(str(path))
    assert str(path) in str(error.value) and EXPECTED[kind] in str(error.value)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("rows.json", None, "is a directory"),
        ("rows.json", b"{not json", "is not valid JSON"),
        ("rows.json", b'{"records": "all of them"}', "list of row objects"),
        ("rows.json", b"\xff\xfe\x00garbage", "rows.json"),
    ],
)
def test_predict_json_input_is_validated(tmp_path, name, content, expected):
    from serving.client import read_request_rows

    path = tmp_path / name
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(LifecycleError, match=re.escape(expected)):
        read_request_rows(str(path))
