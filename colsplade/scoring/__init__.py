"""Pure numpy scoring: MaxSim, sparse dot products, quantisation of token vectors (no I/O).

Nothing here imports torch or transformers, so backend code can score without the ``[train]`` extra.
"""

from colsplade.scoring._maxsim import maxsim, maxsim_batch, maxsim_matrix, sparse_dot
from colsplade.scoring._quantize import (
    dequantize_bits,
    dequantize_int8,
    hamming_maxsim,
    quantize_bits,
    quantize_int8,
)

__all__ = [
    "dequantize_bits",
    "dequantize_int8",
    "hamming_maxsim",
    "maxsim",
    "maxsim_batch",
    "maxsim_matrix",
    "quantize_bits",
    "quantize_int8",
    "sparse_dot",
]
