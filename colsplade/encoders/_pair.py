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
from typing import Any

from colsplade.encoders._config import ModelConfig
from colsplade.encoders._encoder import Encoder, JointEncoding, TextExplanation, load_encoder
from colsplade.exceptions import InvalidInputError

__all__ = ["EncoderPair", "load_encoder_pair", "load_joint_encoder"]


class EncoderPair:
    """Two encoders, a ``splade`` one and a ``colbert`` one, with the interface of a joint encoder.

    ``config`` is a synthesised joint :class:`ModelConfig`: name and version joined by ``+``, the
    SPLADE settings of the first, the ColBERT settings of the second, the shorter of the two document
    lengths (so a document chunked for the pair is truncated by neither model).
    """

    kind = "joint"

    def __init__(self, splade: Encoder, colbert: Encoder) -> None:
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
            source={"pair": {"splade": str(splade.model_dir), "colbert": str(colbert.model_dir)}},
        )

    @property
    def variant(self) -> str:
        a, b = getattr(self.splade, "variant", "?"), getattr(self.colbert, "variant", "?")
        return a if a == b else f"{a}+{b}"

    @property
    def truncated_count(self) -> int:
        # A text longer than the shorter model's limit is counted by that model; max avoids counting twice.
        return max(self.splade.truncated_count, self.colbert.truncated_count)

    def encode_queries(self, texts: Sequence[str | bytes]) -> JointEncoding:
        """Encode queries with both models."""
        return JointEncoding(
            splade=self.splade.encode_queries(texts), colbert=self.colbert.encode_queries(texts)
        )

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


def load_encoder_pair(
    splade_model_dir: str | os.PathLike[str], colbert_model_dir: str | os.PathLike[str], **options: Any
) -> EncoderPair:
    """Open a SPLADE and a ColBERT model directory as one :class:`EncoderPair` (``options`` as
    :func:`load_encoder`)."""
    return EncoderPair(load_encoder(splade_model_dir, **options), load_encoder(colbert_model_dir, **options))


def _opened(model: Any, options: dict[str, Any]) -> Any:
    return model if hasattr(model, "encode_queries") else load_encoder(model, **options)


def load_joint_encoder(
    model: Any = None, *, splade_model: Any = None, colbert_model: Any = None, **options: Any
) -> Any:
    """What ingest, search and eval encode with: one joint model, or a SPLADE + ColBERT pair as an
    :class:`EncoderPair`. Each argument is a model directory or an already loaded encoder; ``options``
    go to :func:`load_encoder`. Any other combination is an :class:`InvalidInputError`.
    """
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
        return EncoderPair(_opened(splade_model, options), _opened(colbert_model, options))
    joint = _opened(model, options)
    if joint.config.kind != "joint":
        raise InvalidInputError(
            f"a single model must be joint (SPLADE + ColBERT heads), got a {joint.config.kind} model; "
            "give a splade model and a colbert model as a pair instead"
        )
    return joint
