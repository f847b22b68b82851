"""What the rest of colsplade needs from an encoder, as a ``Protocol``.

Ingest, search and evaluation take any object with this face: the ONNX encoders of this package
(:class:`~colsplade.encoders.SpladeEncoder`, ``ColbertEncoder``, ``JointEncoder``), an
:class:`~colsplade.encoders.EncoderPair`, or a team's own (a remote encoding service, a torch model
behind the same methods). :func:`~colsplade.encoders.as_encoder` turns a model directory, a pair of them
or such an object into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeAlias, runtime_checkable

import numpy as np

from colsplade.encoders._config import ModelConfig
from colsplade.encoders._encoder import JointEncoding, TextExplanation

__all__ = ["Encoding", "TextEncoder"]

#: What ``encode_queries`` / ``encode_documents`` return, by the model's kind: SPLADE impact dicts,
#: ColBERT (n_tokens, dim) float32 arrays, or both for a joint model (in input order).
Encoding: TypeAlias = list[dict[str, float]] | list[np.ndarray] | JointEncoding


@runtime_checkable
class TextEncoder(Protocol):
    """An encoder as ingest, search and evaluation use it.

    ``config`` is the model's :class:`~colsplade.encoders.ModelConfig`: its ``kind`` says what the encode
    methods return (see :data:`Encoding`), and ``name`` / ``version`` (``model_id``) are what an index
    records, so that a query with another model is refused. ``variant`` names the ONNX file in use (for
    reports), ``truncated_count`` counts the texts cut to the model's maximum length so far.
    """

    @property
    def config(self) -> ModelConfig: ...

    @property
    def variant(self) -> str: ...

    @property
    def truncated_count(self) -> int: ...

    def encode_queries(self, texts: Sequence[str | bytes]) -> Encoding:
        """Encode queries (one result per text, in input order)."""
        ...

    def encode_documents(self, texts: Sequence[str | bytes]) -> Encoding:
        """Encode documents (one result per text, in input order)."""
        ...

    def explain(self, text: str | bytes, *, is_query: bool = True) -> TextExplanation:
        """How the model reads one text: tokens, SPLADE impacts, ColBERT tokens."""
        ...
