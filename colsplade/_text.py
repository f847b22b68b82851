"""Pure text helpers (no torch, no I/O): a document's text, fields, sentences.

:func:`document_text` is the one reading of the text a document is encoded from: ingest encodes it,
label-free training cuts its pseudo-queries from it and BEIR evaluation retrieves over it, so the three
see the same text for the same document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from colsplade.exceptions import InvalidInputError

__all__ = [
    "DEFAULT_TEXT_FIELDS",
    "TEXT_JOINER",
    "document_text",
    "field_text",
    "field_value",
    "split_sentences",
    "text_value",
]

#: the fields a document's text is read from unless told otherwise (BEIR's and ingest's default).
DEFAULT_TEXT_FIELDS = ("title", "text")
#: what joins the text fields (and the strings of a list-valued field) into one text.
TEXT_JOINER = "\n"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


def field_value(doc: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """-> (found, value) of the field ``name``: the key as written (dots and all) when ``doc`` has it,
    else a dotted path into nested objects.

    >>> field_value({"a.b": 1, "a": {"b": 2}}, "a.b"), field_value({"a": {"b": 2}}, "a.b"), field_value({}, "x")
    ((True, 1), (True, 2), (False, None))
    """
    if name in doc:
        return True, doc[name]
    current: Any = doc
    for part in name.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def text_value(value: Any, name: str) -> str | None:
    """A text field's value as text: a string, the strings of a list joined, a number written out; None
    for null. Anything else raises :class:`InvalidInputError` (ingest dead-letters such a document).

    >>> text_value(["a", "b"], "tags"), text_value(3, "n"), text_value(None, "t")
    ('a\\nb', '3', None)
    >>> text_value({"x": 1}, "meta")
    Traceback (most recent call last):
      ...
    colsplade.exceptions.InvalidInputError: text field 'meta' holds a dict, not text
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return TEXT_JOINER.join(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidInputError(f"text field {name!r} holds a {type(value).__name__}, not text")


def document_text(
    doc: Mapping[str, Any], fields: Sequence[str] = DEFAULT_TEXT_FIELDS, joiner: str = TEXT_JOINER
) -> str:
    """The text a document is encoded from: its ``fields`` in that order (see :func:`field_value`), each
    stripped, the empty and absent ones left out, joined by ``joiner``; "" when none has text.

    Raises :class:`InvalidInputError` naming the field whose value is not text (:func:`text_value`).

    >>> document_text({"title": " Cats ", "text": "purr", "year": 2020})
    'Cats\\npurr'
    >>> document_text({"text": "purr", "meta.tags": ["a", "b"]}, ["title", "text", "meta.tags"], " ")
    'purr a\\nb'
    """
    parts = []
    for name in fields:
        found, value = field_value(doc, name)
        text = text_value(value, name) if found else None
        if text and text.strip():
            parts.append(text.strip())
    return joiner.join(parts)


def field_text(source: Mapping[str, Any], field: str) -> str:
    """A (possibly dotted, possibly list-valued) source field as one string ("" when absent).

    >>> field_text({"meta": {"abstract": ["a", None, "b"]}, "t": 3}, "meta.abstract"), field_text({"t": 3}, "t")
    ('a b', '3')
    """
    value = field_value(source, field)[1]
    if isinstance(value, list):
        return " ".join(str(v) for v in value if v is not None).strip()
    return "" if value is None else str(value).strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after ``.!?`` followed by a capital, digit or quote (keeps "e.g. x").

    >>> split_sentences("One two. Three four! e.g. five. Six")
    ['One two.', 'Three four! e.g. five.', 'Six']
    """
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]
