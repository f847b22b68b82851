"""Logging helpers shared by the packages (no dependencies)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

__all__ = ["quiet_logger"]


class _DropBelow(logging.Filter):
    """Drops the records below ``level`` that one thread logs; other threads' records pass."""

    def __init__(self, level: int, thread: int) -> None:
        super().__init__()
        self.level = level
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or (record.thread is not None and record.thread != self.thread)


@contextlib.contextmanager
def quiet_logger(logger_name: str, *, below: int) -> Iterator[None]:
    """Silence ``logger_name``'s records below ``below`` from this thread, for the ``with`` block only.

    A filter rather than ``setLevel``: the logger's level (which the application owns) never changes,
    and what other threads log meanwhile still gets through.

    >>> with quiet_logger("colsplade.demo", below=logging.ERROR):
    ...     logging.getLogger("colsplade.demo").warning("not shown")
    >>> logging.getLogger("colsplade.demo").filters
    []
    """
    logger_ = logging.getLogger(logger_name)
    dropper = _DropBelow(below, threading.get_ident())
    logger_.addFilter(dropper)
    try:
        yield
    finally:
        logger_.removeFilter(dropper)
