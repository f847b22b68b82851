"""Export of trained models to ONNX, with parity checks against torch and int8 / fp16 variants.

Needs the ``[train]`` extra (torch, transformers, onnx). ``colsplade export MODEL_DIR`` is the CLI.
"""

from colsplade.exceptions import ParityError
from colsplade.onnx_export._export import (
    DEFAULT_OPSET,
    ExportReport,
    check_variant,
    colbert_only_graph,
    convert_fp16,
    export_model_dir,
    export_onnx,
    quantize_int8,
)
from colsplade.onnx_export._parity import (
    PARITY_DOCUMENTS,
    PARITY_QUERIES,
    VariantReport,
    kendall_tau,
    top_k_overlap,
)

__all__ = [
    "DEFAULT_OPSET",
    "PARITY_DOCUMENTS",
    "PARITY_QUERIES",
    "ExportReport",
    "ParityError",
    "VariantReport",
    "check_variant",
    "colbert_only_graph",
    "convert_fp16",
    "export_model_dir",
    "export_onnx",
    "kendall_tau",
    "quantize_int8",
    "top_k_overlap",
]
