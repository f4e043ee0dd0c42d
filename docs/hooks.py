"""MkDocs hook: every ``<!-- table: NAME -->`` line of a page becomes the table that
``benchmarks/tables.py`` makes from ``benchmarks/results/*.json`` (one source of truth for
numbers: no table of the documentation is typed by hand)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import tables  # noqa: E402


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 (MkDocs' signature)
    return tables.fill_markers(markdown)
