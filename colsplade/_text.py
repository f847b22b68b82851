"""Pure text helpers shared by label-free training and the upgrade's gate (no torch, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["field_text", "split_sentences"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


def field_text(source: Mapping[str, Any], field: str) -> str:
    """A (possibly dotted, possibly list-valued) source field as one string ("" when absent).

    >>> field_text({"meta": {"abstract": ["a", None, "b"]}, "t": 3}, "meta.abstract"), field_text({"t": 3}, "t")
    ('a b', '3')
    """
    value: Any = source
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, list):
        return " ".join(str(v) for v in value if v is not None).strip()
    return "" if value is None else str(value).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after ``.!?`` followed by a capital, digit or quote (keeps "e.g. x").

    >>> split_sentences("One two. Three four! e.g. five. Six")
    ['One two.', 'Three four! e.g. five.', 'Six']
    """
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]
