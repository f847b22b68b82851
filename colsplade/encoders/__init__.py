"""Torch-free inference encoders: tokenizer + ONNX Runtime (SPLADE impacts, ColBERT token vectors).

Nothing in this package imports torch or transformers (a test checks it), so backend code can encode
with the base install. Typical use::

    from colsplade.encoders import load_encoder
    enc = load_encoder("models/joint", variant="int8")
    both = enc.encode_documents(["first passage", "second passage"])
    both.splade[0]   # {"passage": 1.9, ...}
    both.colbert[0]  # (n_tokens, dim) float32
"""

from colsplade.encoders._config import (
    CONFIG_FILE,
    KINDS,
    ONNX_VARIANTS,
    ColbertSettings,
    ModelConfig,
    SpladeSettings,
    read_model_config,
    write_model_config,
)
from colsplade.encoders._encoder import (
    ColbertEncoder,
    Encoder,
    JointEncoder,
    JointEncoding,
    SpladeEncoder,
    TextExplanation,
    load_encoder,
    select_providers,
)
from colsplade.encoders._pair import EncoderPair, load_encoder_pair, load_joint_encoder
from colsplade.encoders._tokenize import TextTokenizer, TokenizedTexts, clean_texts

__all__ = [
    "CONFIG_FILE",
    "KINDS",
    "ONNX_VARIANTS",
    "ColbertEncoder",
    "ColbertSettings",
    "Encoder",
    "EncoderPair",
    "JointEncoder",
    "JointEncoding",
    "ModelConfig",
    "SpladeEncoder",
    "SpladeSettings",
    "TextExplanation",
    "TextTokenizer",
    "TokenizedTexts",
    "clean_texts",
    "load_encoder",
    "load_encoder_pair",
    "load_joint_encoder",
    "read_model_config",
    "select_providers",
    "write_model_config",
]
