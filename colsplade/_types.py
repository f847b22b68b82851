"""The value sets colsplade passes around as strings, declared once as ``Literal`` types.

Each type comes with the tuple of its values (for validation and ``click.Choice``), taken from the type
itself so the two cannot drift apart::

    >>> ENGINE_NAMES
    ('elasticsearch', 'opensearch')
    >>> MODEL_KINDS, RERANK_MODES, ONNX_VARIANT_NAMES
    (('splade', 'colbert', 'joint'), ('auto', 'engine', 'client', 'none'), ('fp32', 'int8', 'fp16'))

This module imports nothing from colsplade, so every package may use it.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "CHECKPOINT_FORMATS",
    "ENGINE_NAMES",
    "HYBRID_MODES",
    "KNN_NATIVE_ATTRIBUTE",
    "MODEL_KINDS",
    "ONNX_VARIANT_NAMES",
    "RERANK_MODES",
    "CheckpointFormat",
    "EngineName",
    "HybridMode",
    "ModelKind",
    "OnnxVariant",
    "RerankMode",
    "VariantChoice",
]

#: The node attribute (``node.attr.<name>``) through which a node says, with the value ``false``, that its
#: k-NN plugin lacks the native (faiss / nmslib) libraries: colsplade.local sets it on the OpenSearch nodes
#: it starts from Maven Central, and the engine client reads it (``Capabilities.knn_native``).
KNN_NATIVE_ATTRIBUTE = "colsplade_knn_native"

#: A search engine colsplade talks to.
EngineName = Literal["elasticsearch", "opensearch"]
#: What a model directory holds: a SPLADE head, a ColBERT head, or both on one backbone.
ModelKind = Literal["splade", "colbert", "joint"]
#: How the ColBERT stage reranks the first-stage candidates (see ``colsplade.query.SearchClient``):
#: the faster path measured for the engine, painless in the engine, numpy in the client, or not at all.
RerankMode = Literal["auto", "engine", "client", "none"]
#: How a hybrid plan joins its BM25 and SPLADE candidate lists: reciprocal-rank fusion in the client, or
#: one engine query summing both scores.
HybridMode = Literal["rrf", "sum"]
#: An exported ONNX file of a model directory (``onnx/model.onnx``, ``model-int8.onnx``, ``model-fp16.onnx``).
OnnxVariant = Literal["fp32", "int8", "fp16"]
#: What an encoder accepts as ``variant``: an ONNX variant, or ``auto`` (fp16 on CUDA when exported, else fp32).
VariantChoice = Literal["fp32", "int8", "fp16", "auto"]

ENGINE_NAMES: tuple[EngineName, ...] = get_args(EngineName)
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)
RERANK_MODES: tuple[RerankMode, ...] = get_args(RerankMode)
HYBRID_MODES: tuple[HybridMode, ...] = get_args(HybridMode)
ONNX_VARIANT_NAMES: tuple[OnnxVariant, ...] = get_args(OnnxVariant)

#: A checkpoint layout ``colsplade import-model`` reads (see ``colsplade.training.import_checkpoint``).
CheckpointFormat = Literal[
    "colsplade",
    "naver-splade",
    "opensearch-inference-free",
    "st-sparse",
    "st-multivector",
    "colbertv2",
    "pylate",
]
CHECKPOINT_FORMATS: tuple[CheckpointFormat, ...] = get_args(CheckpointFormat)
