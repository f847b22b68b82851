"""colsplade: two-stage neural search for Elasticsearch and OpenSearch.

SPLADE impacts in ``rank_features`` fields retrieve on the engine's inverted index; ColBERT token
vectors in nested vector fields rerank the candidates by MaxSim. Subpackages follow the pipeline:
``encoders``, ``engines``, ``mappings``, ``ingest``, ``query``, ``scoring``, ``training``,
``onnx_export``, ``evaluation``, ``testing``, and ``local`` (engine nodes and a Kafka broker on this machine).

Names below are imported lazily, so ``import colsplade`` stays cheap and never imports torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from colsplade.exceptions import (
    ColspladeError,
    EngineError,
    EngineRefusedError,
    EngineStartError,
    EngineUnreachableError,
    InvalidInputError,
    MappingConflictError,
    MissingExtraError,
    ModelDirectoryError,
    ModelVersionMismatchError,
    ParityError,
    PartialResultError,
    StreamError,
)

try:
    __version__ = version("colsplade")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

_LAZY = {
    "Settings": "colsplade.config",
    "load_settings": "colsplade.config",
    "read_jsonl": "colsplade._jsonl",
    "FieldSpec": "colsplade.mappings",
    "EngineClient": "colsplade.engines",
    "connect": "colsplade.engines",
    "connect_default": "colsplade.engines",
    "create_index": "colsplade.engines",
    "start_node": "colsplade.local",
}

__all__ = [
    "ColspladeError",
    "EngineClient",
    "EngineError",
    "EngineRefusedError",
    "EngineStartError",
    "EngineUnreachableError",
    "FieldSpec",
    "InvalidInputError",
    "MappingConflictError",
    "MissingExtraError",
    "ModelDirectoryError",
    "ModelVersionMismatchError",
    "ParityError",
    "PartialResultError",
    "Settings",
    "StreamError",
    "__version__",
    "connect",
    "connect_default",
    "create_index",
    "load_settings",
    "read_jsonl",
    "start_node",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'colsplade' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
