"""From a source document to what gets encoded and written: id, text, copied fields, passages.

Pure functions (no I/O), so every validation rule is unit-tested without an engine.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from colsplade._text import document_text, field_value
from colsplade.exceptions import InvalidInputError

__all__ = ["FieldMapping", "Prepared", "Rejected", "Unit", "prepare_document", "split_passages", "stable_id"]

#: Elasticsearch and OpenSearch refuse ``_id`` values longer than 512 bytes.
MAX_ID_BYTES = 512
#: Fields that name document metadata: the engines refuse them inside ``_source``.
METADATA_FIELDS = frozenset(
    {"_id", "_index", "_routing", "_source", "_version", "_seq_no", "_primary_term", "_score", "_type"}
)


@dataclass(frozen=True)
class FieldMapping:
    """Which source fields mean what.

    ``id_field``: dotted path of the id; ``None`` takes ``_id`` or ``id`` when present, else a stable hash
    of the document (so a replay of the same document lands on the same ``_id``). An explicit ``id_field``
    that a document lacks sends it to the dead-letter file.
    ``text_fields``: fields joined (in this order, by ``joiner``) into the text the encoders read; a list of
    strings counts as text too.
    ``copy_fields``: fields stored as they are; ``None`` copies every field (colsplade's own excepted),
    an empty tuple none.
    """

    id_field: str | None = None
    text_fields: tuple[str, ...] = ("title", "text")
    copy_fields: tuple[str, ...] | None = None
    joiner: str = "\n"

    def __post_init__(self) -> None:
        if not self.text_fields:
            raise InvalidInputError("at least one text field is needed")
        if isinstance(self.text_fields, str):
            object.__setattr__(self, "text_fields", (self.text_fields,))
        if isinstance(self.copy_fields, str):
            object.__setattr__(self, "copy_fields", (self.copy_fields,))


@dataclass
class Unit:
    """One engine document to encode and write: a whole document, or one passage of a long one."""

    doc_id: str
    text: str
    body: dict[str, Any]


@dataclass
class Prepared:
    """A source document ready for the encoders: one unit, or one per passage."""

    doc_id: str
    units: list[Unit] = field(default_factory=list)
    truncated: bool = False


@dataclass
class Rejected:
    """A source document that cannot be indexed, and why."""

    reason: str
    doc_id: str | None = None


def stable_id(doc: Mapping[str, Any]) -> str:
    """A content hash of ``doc`` (key order and whitespace do not matter), for sources without ids.

    >>> stable_id({"b": 1, "a": "x"}) == stable_id({"a": "x", "b": 1})
    True
    """
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:40]


_WORD = re.compile(r"\S+")


def split_passages(text: str, words: int, overlap: int = 0) -> list[str]:
    """Cut ``text`` into windows of ``words`` words, consecutive windows sharing ``overlap`` words.

    >>> split_passages("a b c d e", 2, overlap=0)
    ['a b', 'c d', 'e']
    >>> split_passages("a b c d e", 3, overlap=1)
    ['a b c', 'c d e']
    """
    if words < 1 or not 0 <= overlap < words:
        raise InvalidInputError(
            f"passage words must be >= 1 and overlap in [0, words), got {words}, {overlap}"
        )
    spans = [m.span() for m in _WORD.finditer(text)]
    if len(spans) <= words:
        return [text.strip()] if spans else []
    out = []
    step = words - overlap
    for start in range(0, len(spans), step):
        window = spans[start : start + words]
        out.append(text[window[0][0] : window[-1][1]])
        if start + words >= len(spans):
            break
    return out


def prepare_document(
    doc: Mapping[str, Any],
    mapping: FieldMapping,
    *,
    source_id: str | None = None,
    reserved: Sequence[str] = ("splade", "colbert", "colsplade"),
    long_docs: Literal["truncate", "chunk"] = "truncate",
    max_chars: int = 8192,
    passage_words: int = 150,
    passage_overlap: int = 20,
    parent_field: str = "parent_id",
    passage_field: str = "passage",
) -> Prepared | Rejected:
    """Validate ``doc`` and turn it into engine documents.

    ``truncate``: one unit whose text is cut at ``max_chars`` characters (the encoder then cuts at its
    maximum token length; cutting first keeps a 1 MB text from costing a 1 MB tokenisation).
    ``chunk``: one unit per passage of ``passage_words`` words; passage ``n > 0`` gets the id
    ``<id>#p<n>``, every passage carries ``parent_field`` (the document id) and ``passage_field`` (n), so a
    query can collapse passages to documents.

    >>> p = prepare_document({"id": 7, "title": "Cats", "text": "purr", "year": 2020}, FieldMapping())
    >>> p.doc_id, p.units[0].text, p.units[0].body
    ('7', 'Cats\\npurr', {'id': 7, 'title': 'Cats', 'text': 'purr', 'year': 2020})
    >>> prepare_document({"id": 1, "text": "  "}, FieldMapping()).reason
    'empty text (fields: title, text)'
    >>> prepare_document({"id": 2, "text": "x", "_routing": "r1"}, FieldMapping()).reason[:40]
    '_routing: engine metadata field(s), not '
    """
    doc_id = _document_id(doc, mapping, source_id)
    if isinstance(doc_id, Rejected):
        return doc_id
    full_text = _joined_text(doc, mapping)
    if isinstance(full_text, Rejected):
        full_text.doc_id = doc_id
        return full_text
    body = _copied_fields(doc, mapping, reserved)
    if long_docs == "truncate":
        truncated = len(full_text) > max_chars
        return Prepared(doc_id, [Unit(doc_id, full_text[:max_chars], body)], truncated=truncated)
    if long_docs != "chunk":
        raise InvalidInputError(f"long_docs must be 'truncate' or 'chunk', not {long_docs!r}")
    passages = split_passages(full_text, passage_words, passage_overlap)
    return Prepared(doc_id, _passage_units(doc_id, passages, body, mapping, parent_field, passage_field))


def _document_id(doc: Mapping[str, Any], mapping: FieldMapping, source_id: str | None) -> str | Rejected:
    """The engine ``_id`` of ``doc``: the source's own id, the id field, ``_id`` or ``id``, else a content
    hash; rejected when it is missing (an explicit id field), not a string or integer, or too long, and
    when the document holds engine metadata fields."""
    if source_id is not None:
        doc_id: Any = source_id
    elif mapping.id_field is not None:
        found, doc_id = field_value(doc, mapping.id_field)
        if not found or doc_id is None or doc_id == "":
            return Rejected(f"missing id field {mapping.id_field!r}")
    elif doc.get("_id") not in (None, ""):
        doc_id = doc["_id"]
    elif doc.get("id") not in (None, ""):
        doc_id = doc["id"]
    else:
        doc_id = stable_id(doc)
    # The engine's metadata fields cannot be written inside a document (the engine refuses them) and
    # colsplade would have to drop them; only _id has a meaning here, the document's id.
    metadata = sorted(k for k in doc if k in METADATA_FIELDS and k != "_id")
    if metadata:
        return Rejected(
            f"{', '.join(metadata)}: engine metadata field(s), not document fields; colsplade sets only _id "
            "(from _id, id or --id-field): rename the field(s) or leave them out",
            doc_id=str(doc_id) if isinstance(doc_id, str | int) else None,
        )
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
        return Rejected(f"id must be a string or an integer, not a {type(doc_id).__name__}")
    doc_id = str(doc_id)
    if len(doc_id.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        return Rejected(f"id longer than {MAX_ID_BYTES} bytes", doc_id=doc_id[:100] + "...")
    return doc_id


def _joined_text(doc: Mapping[str, Any], mapping: FieldMapping) -> str | Rejected:
    """The text ingest encodes: :func:`colsplade._text.document_text`, the one reading that label-free
    training and evaluation share. Rejected (without an id: the caller sets it) when no text field is
    present, all are blank, or one holds something that is not text.

    >>> _joined_text({"title": " Cats ", "text": ["purr", "nap"]}, FieldMapping())
    'Cats\\npurr\\nnap'
    """
    try:
        full_text = document_text(doc, mapping.text_fields, mapping.joiner)
    except InvalidInputError as exc:
        return Rejected(str(exc))
    if not any(field_value(doc, name)[0] for name in mapping.text_fields):
        return Rejected(f"missing text (none of the fields {', '.join(mapping.text_fields)})")
    if not full_text:
        return Rejected(f"empty text (fields: {', '.join(mapping.text_fields)})")
    return full_text


def _copied_fields(doc: Mapping[str, Any], mapping: FieldMapping, reserved: Sequence[str]) -> dict[str, Any]:
    """The fields stored as they are: ``mapping.copy_fields`` (every field when None), leaving out
    colsplade's ``reserved`` fields and the engine's metadata fields.

    >>> _copied_fields({"_id": 1, "a": 1, "splade": {}}, FieldMapping(), ("splade",))
    {'a': 1}
    """
    skip = set(reserved) | METADATA_FIELDS
    if mapping.copy_fields is None:
        return {k: v for k, v in doc.items() if k not in skip}
    body = {}
    for name in mapping.copy_fields:
        found, value = field_value(doc, name)
        if found and name not in skip:
            body[name] = value
    return body


def _passage_units(
    doc_id: str,
    passages: Sequence[str],
    body: Mapping[str, Any],
    mapping: FieldMapping,
    parent_field: str,
    passage_field: str,
) -> list[Unit]:
    """One unit per passage: ids ``doc_id``, ``doc_id#p1``, ...; each body carries the passage as its last
    text field, ``parent_field`` (the document id) and ``passage_field`` (the passage number)."""
    units = []
    for n, passage in enumerate(passages):
        # The passage's own text replaces the long text fields (one copy of a long text, not n); short
        # ones such as a title stay on every passage.
        passage_body = {
            k: v
            for k, v in body.items()
            if k not in mapping.text_fields or (isinstance(v, str) and len(v) <= 1000)
        }
        passage_body[mapping.text_fields[-1]] = passage
        passage_body[parent_field] = doc_id
        passage_body[passage_field] = n
        units.append(Unit(doc_id if n == 0 else f"{doc_id}#p{n}", passage, passage_body))
    return units
