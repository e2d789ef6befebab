"""Files written whole or not at all (`atomic_write_text`), ZenML's configuration files included.

ZenML 0.98 rewrites its configuration files in place: each client start truncates and rewrites the project's
`.zen/config.yaml`, and the global configuration is written the same way. A second ZenML process that reads the
file between the truncation and the write gets an empty file and fails ("'NoneType' object has no attribute
'update'"), or, for the global configuration, starts over from an empty one. This project runs ZenML processes side
by side (a promote beside the follower, a canary judge beside a deploy, the release commands of a team), so
`make_zenml_config_writes_atomic` replaces ZenML's YAML writer with one that writes a temporary file in the same
folder and renames it over the old one: a reader sees the old file or the new one, never half of one.

ZenML is not imported here (it takes seconds): the writer is replaced when ZenML first imports its YAML helpers.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

YAML_HELPERS = "zenml.utils.yaml_utils"


def atomic_write_text(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace `path` with `text` whole or not at all, even across a crash or power loss: a temporary file in
    the same folder (created `mode`), flushed to disk, renamed over `path`, and the rename flushed too. A reader
    sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def file_mode_for(path: str) -> int:
    """The permissions an existing file has, or those the process's umask gives a new one."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _patch(yaml_utils: ModuleType) -> None:
    in_place = getattr(yaml_utils, "write_yaml")  # noqa: B009 (a module attribute the type checker cannot see)
    if getattr(in_place, "writes_atomically", False):
        return

    def write_yaml(file_path: str, contents: Any, sort_keys: bool = True) -> None:
        local = not yaml_utils.io_utils.is_remote(file_path)
        if not local or not os.path.isdir(os.path.dirname(os.path.abspath(file_path))):
            in_place(file_path, contents, sort_keys=sort_keys)  # remote, or ZenML's own missing-folder error
            return
        text = yaml_utils.yaml.dump(contents, sort_keys=sort_keys)
        atomic_write_text(Path(file_path), text, file_mode_for(file_path))

    write_yaml.writes_atomically = True  # type: ignore[attr-defined]
    setattr(yaml_utils, "write_yaml", write_yaml)  # noqa: B010


class _PatchWhenImported(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ZenML's YAML helpers are imported, it has the real loader run them and then
    replaces their writer."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != YAML_HELPERS:
            return None
        sys.meta_path.remove(self)  # once is enough, and the real finders must answer
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            _patch(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def make_zenml_config_writes_atomic() -> None:
    """Replace ZenML's YAML writer now if ZenML is loaded, else as soon as it is."""
    if YAML_HELPERS in sys.modules:
        _patch(sys.modules[YAML_HELPERS])
    elif not any(isinstance(finder, _PatchWhenImported) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchWhenImported())
