import os

import pandas as pd
import pytest

from lifecycle.data import file_fingerprint, read_table
from lifecycle.errors import DataError


def test_reads_csv_gzip_and_parquet_alike(tmp_path):
    table = pd.DataFrame({"x": [1.5, 2.5, None], "label": ["a", "b", "a"]})
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_csv(tmp_path / "t.csv.gz", index=False)
    table.to_parquet(tmp_path / "t.parquet", index=False)
    for name in ("t.csv", "t.csv.gz", "t.parquet"):
        pd.testing.assert_frame_equal(read_table(tmp_path / name), table)


def test_semicolon_csv_is_read(tmp_path):
    (tmp_path / "eu.csv").write_text("a;b\n1;2\n3;4\n")
    assert list(read_table(tmp_path / "eu.csv").columns) == ["a", "b"]


def _file(directory, name, content: bytes):
    path = directory / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.csv", "not found"),
        (lambda d: d, "is a directory"),
        (lambda d: _file(d, "empty.csv", b""), "is empty"),
        (lambda d: _file(d, "header.csv", b"a,b\n"), "no data rows"),
        (lambda d: _file(d, "data.xlsx", b"x"), "unsupported type"),
        (lambda d: _file(d, "latin.csv", "name\ncaf\xe9\n".encode("latin-1")), "UTF-8"),
        (lambda d: _file(d, "broken.parquet", b"not parquet"), "could not be parsed"),
    ],
)
def test_unreadable_files_get_a_clear_error(tmp_path, make, message):
    with pytest.raises(DataError, match=message) as error:
        read_table(make(tmp_path))
    assert "Fix" in str(error.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_permissions(tmp_path):
    path = tmp_path / "secret.csv"
    path.write_text("a\n1\n")
    path.chmod(0)
    with pytest.raises(DataError, match="not readable"):
        read_table(path)


def test_fingerprint_follows_content(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a\n1\n")
    first = file_fingerprint(path)
    assert first == file_fingerprint(path) and len(first) == 64
    path.write_text("a\n2\n")
    assert file_fingerprint(path) != first
