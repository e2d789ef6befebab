#!/usr/bin/env python
"""mlops-lifecycle command line: `python run.py` runs the whole lifecycle available on the active stack.

The commands live in the `cli` package (also installed as the `mlops-lifecycle` command); this file is the entry
point the documentation, the Makefile and CI call."""

from __future__ import annotations

from cli import cli, main

__all__ = ["cli", "main"]

if __name__ == "__main__":
    main()
