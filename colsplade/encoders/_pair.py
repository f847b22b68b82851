"""A separate SPLADE model and ColBERT model used as one joint encoder.

Teams often hold two checkpoints (an imported naver SPLADE and an imported ColBERTv2, or two models
trained separately because each is better alone than a shared backbone). :class:`EncoderPair` gives
them the joint encoder's face, so ingest fills both index fields in one pass over the documents and
the index records the pair's identity (``splade-name+colbert-name``, the same identity
:class:`colsplade.query.SearchClient` computes for ``splade_model=`` + ``colbert_model=``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any, TypeAlias

from colsplade.encoders._config import ModelConfig
from colsplade.encoders._encoder import JointEncoding, TextExplanation, load_encoder
from colsplade.encoders._protocol import TextEncoder
from colsplade.exceptions import InvalidInputError

__all__ = ["EncoderPair", "EncoderSource", "as_encoder", "load_encoder_pair", "load_joint_encoder"]


class EncoderPair:
    """Two encoders, a ``splade`` one and a ``colbert`` one, with the interface of a joint encoder.

    ``config`` is a synthesised joint :class:`ModelConfig`: name and version joined by ``+``, the
    SPLADE settings of the first, the ColBERT settings of the second, the shorter of the two document
    lengths (so a document chunked for the pair is truncated by neither model).
    """

    kind = "joint"

    def __init__(self, splade: TextEncoder, colbert: TextEncoder) -> None:
        kinds = (getattr(splade.config, "kind", None), getattr(colbert.config, "kind", None))
        if kinds != ("splade", "colbert"):
            raise InvalidInputError(
                f"an encoder pair needs a splade model and a colbert model, got {kinds[0]} and {kinds[1]}"
            )
        self.splade = splade
        self.colbert = colbert
        s, c = splade.config, colbert.config
        self.config = ModelConfig(
            kind="joint",
            name=f"{s.name}+{c.name}",
            version=f"{s.version}+{c.version}",
            base_model=None,
            max_query_length=max(s.max_query_length, c.max_query_length),
            max_doc_length=min(s.max_doc_length, c.max_doc_length),
            splade=dataclasses.replace(s.splade),
            colbert=dataclasses.replace(c.colbert),
            source={"pair": {"splade": _origin(splade), "colbert": _origin(colbert)}},
        )

    @property
    def variant(self) -> str:
        a, b = getattr(self.splade, "variant", "?"), getattr(self.colbert, "variant", "?")
        return a if a == b else f"{a}+{b}"

    @property
    def truncated_count(self) -> int:
        # A text longer than the shorter model's limit is counted by that model; max avoids counting twice.
        return max(self.splade.truncated_count, self.colbert.truncated_count)

    def encode_queries(
        self, texts: Sequence[str | bytes], *, sparse: bool = True, vectors: bool = True
    ) -> JointEncoding:
        """Encode queries with both models (``sparse=False``: the ColBERT model alone, SPLADE dicts empty;
        ``vectors=False``: the SPLADE model alone, ColBERT arrays (0, dim))."""
        if not vectors:
            if not sparse:
                raise InvalidInputError("encode_queries needs sparse=True, vectors=True or both")
            splade = self.splade.encode_queries(texts)
            colbert = self.colbert.config.colbert
            return JointEncoding.terms_only(splade, colbert.dim if colbert else 0)
        colbert = self.colbert.encode_queries(texts)
        if not sparse:
            return JointEncoding(splade=[{} for _ in colbert], colbert=colbert)
        return JointEncoding(splade=self.splade.encode_queries(texts), colbert=colbert)

    def encode_documents(self, texts: Sequence[str | bytes]) -> JointEncoding:
        """Encode documents with both models (two passes; a joint model needs one)."""
        return JointEncoding(
            splade=self.splade.encode_documents(texts), colbert=self.colbert.encode_documents(texts)
        )

    def explain(self, text: str | bytes, *, is_query: bool = True) -> TextExplanation:
        """The SPLADE model's tokens and impacts, with the ColBERT model's token list."""
        explanation = self.splade.explain(text, is_query=is_query)
        explanation.colbert_tokens = self.colbert.explain(text, is_query=is_query).colbert_tokens
        return explanation


def _origin(encoder: TextEncoder) -> str:
    """Where an encoder's model lives: its directory, else (an encoder of a team's own) its model id."""
    model_dir = getattr(encoder, "model_dir", None)
    return str(model_dir) if model_dir is not None else encoder.config.model_id


#: What :func:`as_encoder` opens: a model directory, or an encoder that is already open.
EncoderSource: TypeAlias = str | os.PathLike[str] | TextEncoder


def _is_encoder(model: object) -> bool:
    return hasattr(model, "encode_queries") and hasattr(model, "encode_documents")


def _open_one(model: Any, options: dict[str, Any]) -> TextEncoder:
    if _is_encoder(model):
        return model  # type: ignore[no-any-return]
    if isinstance(model, str | os.PathLike):
        return load_encoder(model, **options)
    raise InvalidInputError(
        f"a model is a model directory (str or path) or a loaded encoder, not {type(model).__name__}"
    )


def as_encoder(
    model: EncoderSource | tuple[EncoderSource, EncoderSource] | None = None,
    *,
    splade_model: EncoderSource | None = None,
    colbert_model: EncoderSource | None = None,
    joint: bool = False,
    **options: Any,
) -> TextEncoder:
    """The one place colsplade turns what a caller gives into an encoder (ingest, search, eval, CLI).

    - ``model`` a model directory: opened with :func:`load_encoder` (``options``: ``variant``, ``device``,
      ``batch_size``, threads, pruning; see :class:`Encoder`);
    - ``model`` an encoder (anything with the :class:`TextEncoder` methods): returned as it is, ``options``
      unused;
    - a separate SPLADE and ColBERT model, as ``splade_model=`` + ``colbert_model=`` or as the tuple
      ``model=(splade, colbert)``: each opened as above and joined into an :class:`EncoderPair`.

    ``joint=True`` asks for both representations (what search and eval need): a single model must then be
    a joint one. Any other combination is an :class:`~colsplade.exceptions.InvalidInputError`.
    """
    if isinstance(model, tuple):
        if len(model) != 2 or splade_model is not None or colbert_model is not None:
            raise InvalidInputError(
                "a model pair is a (splade_model, colbert_model) tuple, or splade_model= + colbert_model="
            )
        model, (splade_model, colbert_model) = None, model
    pair = (splade_model is not None, colbert_model is not None)
    if model is not None and any(pair):
        raise InvalidInputError(
            "give either one joint --model (model=) or --splade-model and --colbert-model "
            "(splade_model= + colbert_model=), not both"
        )
    if model is None:
        if not all(pair):
            raise InvalidInputError(
                "give both --splade-model and --colbert-model (splade_model= + colbert_model=), "
                "or one joint --model (model=)"
            )
        return EncoderPair(_open_one(splade_model, options), _open_one(colbert_model, options))
    encoder = _open_one(model, options)
    if joint and encoder.config.kind != "joint":
        raise InvalidInputError(
            f"a single model must be joint (SPLADE + ColBERT heads), got a {encoder.config.kind} model; "
            "give a splade model and a colbert model as a pair instead"
        )
    return encoder


def load_encoder_pair(
    splade_model_dir: str | os.PathLike[str], colbert_model_dir: str | os.PathLike[str], **options: Any
) -> EncoderPair:
    """Open a SPLADE and a ColBERT model directory as one :class:`EncoderPair` (``options`` as
    :func:`load_encoder`)."""
    pair = as_encoder(splade_model=splade_model_dir, colbert_model=colbert_model_dir, **options)
    assert isinstance(pair, EncoderPair)
    return pair


def load_joint_encoder(
    model: EncoderSource | None = None,
    *,
    splade_model: EncoderSource | None = None,
    colbert_model: EncoderSource | None = None,
    **options: Any,
) -> TextEncoder:
    """What search and eval encode with: one joint model, or a SPLADE + ColBERT pair as an
    :class:`EncoderPair`; that is ``as_encoder(..., joint=True)`` (see :func:`as_encoder`).
    """
    return as_encoder(model, splade_model=splade_model, colbert_model=colbert_model, joint=True, **options)
