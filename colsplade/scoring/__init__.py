"""Pure numpy scoring: MaxSim, sparse dot products, quantisation and the residual codec of token vectors (no I/O).

Nothing here imports torch or transformers, so backend code can score without the ``[train]`` extra.
"""

from colsplade.scoring._codec import (
    CorruptBlobError,
    DecodedWindow,
    ResidualCodec,
    default_n_centroids,
    fit_codec,
    maxsim_codes,
    pool_tokens,
)
from colsplade.scoring._fusion import (
    DEFAULT_FUSION_WEIGHT,
    DEFAULT_FUSION_WEIGHTS,
    FUSION_METHODS,
    fuse_scores,
    rank_fusion,
    zscore_fusion,
    zscores,
)
from colsplade.scoring._maxsim import (
    SINGLE_THREAD_PRODUCT,
    maxsim,
    maxsim_batch,
    maxsim_matrix,
    sparse_dot,
    token_similarities,
)
from colsplade.scoring._quantize import (
    bit_similarities,
    dequantize_bits,
    dequantize_int8,
    hamming_maxsim,
    quantize_bits,
    quantize_int8,
)

__all__ = [
    "DEFAULT_FUSION_WEIGHT",
    "DEFAULT_FUSION_WEIGHTS",
    "FUSION_METHODS",
    "SINGLE_THREAD_PRODUCT",
    "CorruptBlobError",
    "DecodedWindow",
    "ResidualCodec",
    "bit_similarities",
    "default_n_centroids",
    "dequantize_bits",
    "dequantize_int8",
    "fit_codec",
    "fuse_scores",
    "hamming_maxsim",
    "maxsim",
    "maxsim_batch",
    "maxsim_codes",
    "maxsim_matrix",
    "pool_tokens",
    "quantize_bits",
    "quantize_int8",
    "rank_fusion",
    "sparse_dot",
    "token_similarities",
    "zscore_fusion",
    "zscores",
]
