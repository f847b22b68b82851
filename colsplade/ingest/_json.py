"""JSON encoding of prepared documents, done on the encoder thread so the writer only sends bytes."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

try:  # orjson writes numpy arrays natively and is several times faster on vector-heavy documents
    import orjson as _orjson
except ImportError:  # pragma: no cover - optional speed-up
    _orjson = None

__all__ = ["dumps"]


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (numpy arrays and scalars allowed).

    >>> dumps({"v": np.array([1, 2], dtype=np.int8), "t": "é"})
    '{"v":[1,2],"t":"é"}'
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(value, option=_orjson.OPT_SERIALIZE_NUMPY | _orjson.OPT_NON_STR_KEYS).decode(
                "utf-8"
            )
        except TypeError:
            # orjson refuses what json accepts in a few corners (integers beyond 64 bits, non-contiguous
            # arrays); the standard library is the reference.
            pass
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_default, allow_nan=False)
