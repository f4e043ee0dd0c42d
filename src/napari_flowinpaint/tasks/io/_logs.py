"""Quieting a library's logger while the package reports the problem itself."""

from __future__ import annotations

import logging
from contextlib import contextmanager

__all__ = ["quiet_logger"]


@contextmanager
def quiet_logger(name: str, level: int = logging.CRITICAL):
    """Raise the level of logger ``name`` for the duration of the block."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
