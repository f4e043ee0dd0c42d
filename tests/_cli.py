"""Running the command line in a child process, as a user or a batch system does."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def _default_sigint():
    """Ctrl-C reaches the child even when the tests run in the background (where SIGINT is
    ignored, and a child would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def command(*args) -> list[str]:
    """``python -m napari_flowinpaint ARGS``."""
    return [sys.executable, "-m", "napari_flowinpaint", *map(str, args)]


def start_until(argv: list[str], pattern: str, *, timeout: float = 60):
    """Start ``argv`` and read its stderr until ``pattern`` shows (e.g. the progress bar past
    its first sections); returns the process, still running, and what it printed."""
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=_default_sigint)
    t0, seen = time.monotonic(), ""
    while time.monotonic() - t0 < timeout:
        seen += proc.stderr.read(1)
        if re.search(pattern, seen) or proc.poll() is not None:
            break
    assert proc.poll() is None, f"ended before it could be interrupted: {seen}"
    return proc, seen
