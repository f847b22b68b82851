"""Where a ColBERT model's token codec lives: ``colbert_codec.npz`` in its model directory.

The codec is part of the model: ingest writes codes with it and every reader decodes with it, so it is
saved next to the ONNX graphs (``colsplade ingest`` fits one on the first documents when the directory
has none). A model directory that cannot be written keeps its fitted codec in the cache instead
(``$COLSPLADE_CACHE/codecs/<hash>.npz``, default ``~/.cache/colsplade``), where readers on the same
machine find it by the hash the index records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from colsplade.exceptions import CodecMismatchError
from colsplade.scoring import ResidualCodec

logger = logging.getLogger(__name__)

__all__ = ["CODEC_FILE", "codec_for_index", "load_model_codec", "save_model_codec"]

CODEC_FILE = "colbert_codec.npz"


def _colbert_dir(encoder: Any) -> Path | None:
    """The model directory of the encoder that makes the ColBERT vectors (a pair's ColBERT side)."""
    colbert = getattr(encoder, "colbert", None)
    if colbert is not None and hasattr(colbert, "encode_documents"):
        encoder = colbert
    model_dir = getattr(encoder, "model_dir", None)
    return Path(model_dir) if model_dir is not None else None


def _cache_dir() -> Path:
    return Path(os.environ.get("COLSPLADE_CACHE", Path.home() / ".cache" / "colsplade")) / "codecs"


def _read(path: Path) -> ResidualCodec | None:
    if not path.is_file():
        return None
    return ResidualCodec.from_bytes(path.read_bytes())


def load_model_codec(encoder: Any, expected_hash: str | None = None) -> ResidualCodec | None:
    """The encoder's codec: its model directory's ``colbert_codec.npz``, else (when ``expected_hash``
    is given) a cached codec of that hash; None when there is none."""
    model_dir = _colbert_dir(encoder)
    codec = _read(model_dir / CODEC_FILE) if model_dir is not None else None
    if codec is not None and (expected_hash is None or codec.hash == expected_hash):
        return codec
    if expected_hash is not None:
        cached = _read(_cache_dir() / f"{expected_hash}.npz")
        if cached is not None and cached.hash == expected_hash:
            return cached
    return codec


def codec_for_index(
    encoder: Any, index: str, recorded: Mapping[str, Any] | None, *, allow_other: bool = False
) -> ResidualCodec | None:
    """The codec of ``index``'s blobs, by the hash its ``_meta`` records (``recorded``); with nothing
    recorded, the model's own (None when it has none).

    Raises :class:`~colsplade.exceptions.CodecMismatchError` when the recorded codec is found neither in
    the model directory nor in the cache: decoding with other centroids would give wrong scores silently.
    ``allow_other`` (a re-encoding run) returns the model's own codec instead.
    """
    wanted = recorded.get("hash") if recorded else None
    codec = load_model_codec(encoder, wanted)
    if wanted is not None and (codec is None or codec.hash != wanted) and not allow_other:
        raise CodecMismatchError(index, wanted, codec.hash if codec else None)
    return codec


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a reader never sees half a file


def save_model_codec(encoder: Any, codec: ResidualCodec) -> Path:
    """Save ``codec`` into the encoder's model directory (and the cache); returns where readers find it."""
    data = codec.to_bytes()
    cached = _cache_dir() / f"{codec.hash}.npz"
    try:
        _write(cached, data)
    except OSError as exc:
        logger.debug("cannot cache codec %s: %s", codec.hash, exc)
    model_dir = _colbert_dir(encoder)
    if model_dir is not None:
        try:
            _write(model_dir / CODEC_FILE, data)
            return model_dir / CODEC_FILE
        except OSError as exc:
            logger.warning(
                "cannot write the codec into %s (%s); it is cached as %s: copy it to the model directory "
                "of every reader as %s",
                model_dir,
                exc,
                cached,
                CODEC_FILE,
            )
    return cached
