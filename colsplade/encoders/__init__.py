"""Torch-free inference encoders: tokenizer + ONNX Runtime (SPLADE impacts, ColBERT token vectors).

Nothing in this package imports torch or transformers (a test checks it), so backend code can encode
with the base install. Typical use::

    from colsplade.encoders import as_encoder
    enc = as_encoder("models/joint", variant="int8")      # or load_encoder(...)
    both = enc.encode_documents(["first passage", "second passage"])
    both.splade[0]   # {"passage": 1.9, ...}
    both.colbert[0]  # (n_tokens, dim) float32

:func:`as_encoder` is what ingest, search and eval open their models with: a model directory, a
SPLADE + ColBERT pair (:class:`EncoderPair`), or an encoder of your own that has the
:class:`TextEncoder` methods.
"""

from colsplade.encoders._codec_store import CODEC_FILE, codec_for_index, load_model_codec, save_model_codec
from colsplade.encoders._config import (
    CONFIG_FILE,
    DEFAULT_SKIPLIST,
    FORMAT_VERSION,
    KINDS,
    ONNX_VARIANTS,
    SPARSE_QUERY_MODES,
    ColbertSettings,
    ModelConfig,
    SpladeSettings,
    colbert_only_file,
    colbert_only_key,
    position_limit,
    read_model_config,
    sparse_query_mode,
    write_model_config,
)
from colsplade.encoders._encoder import (
    QUERY_WEIGHTS_FILE,
    ColbertEncoder,
    Encoder,
    JointEncoder,
    JointEncoding,
    SpladeEncoder,
    TextExplanation,
    load_encoder,
    select_providers,
)
from colsplade.encoders._pair import (
    EncoderPair,
    EncoderSource,
    as_encoder,
    load_encoder_pair,
    load_joint_encoder,
)
from colsplade.encoders._postprocess import colbert_rows, prune_splade_row, splade_rows
from colsplade.encoders._protocol import Encoding, TextEncoder
from colsplade.encoders._tokenize import TextTokenizer, TokenizedTexts, clean_texts

__all__ = [
    "CODEC_FILE",
    "CONFIG_FILE",
    "DEFAULT_SKIPLIST",
    "FORMAT_VERSION",
    "KINDS",
    "ONNX_VARIANTS",
    "QUERY_WEIGHTS_FILE",
    "SPARSE_QUERY_MODES",
    "ColbertEncoder",
    "ColbertSettings",
    "Encoder",
    "EncoderPair",
    "EncoderSource",
    "Encoding",
    "JointEncoder",
    "JointEncoding",
    "ModelConfig",
    "SpladeEncoder",
    "SpladeSettings",
    "TextEncoder",
    "TextExplanation",
    "TextTokenizer",
    "TokenizedTexts",
    "as_encoder",
    "clean_texts",
    "codec_for_index",
    "colbert_only_file",
    "colbert_only_key",
    "colbert_rows",
    "load_encoder",
    "load_encoder_pair",
    "load_joint_encoder",
    "load_model_codec",
    "position_limit",
    "prune_splade_row",
    "read_model_config",
    "save_model_codec",
    "select_providers",
    "sparse_query_mode",
    "splade_rows",
    "write_model_config",
]
