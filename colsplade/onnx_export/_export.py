"""torch -> ONNX export of model directories, int8 / fp16 variants, and the parity check."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colsplade._logging import quiet_logger
from colsplade._types import ModelKind, OnnxVariant
from colsplade.encoders import (
    ONNX_VARIANTS,
    colbert_only_file,
    colbert_only_key,
    read_model_config,
    write_model_config,
)
from colsplade.exceptions import InvalidInputError, ParityError
from colsplade.onnx_export._parity import (
    PARITY_DOCUMENTS,
    PARITY_QUERIES,
    VariantReport,
    kendall_tau,
    top_k_overlap,
)
from colsplade.scoring import maxsim

__all__ = [
    "DEFAULT_OPSET",
    "ExportReport",
    "convert_fp16",
    "export_model_dir",
    "export_onnx",
    "optimize_graph",
    "quantize_int8",
]

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
REPORT_FILE = "onnx/export-report.json"


@dataclass
class ExportReport:
    """What :func:`export_model_dir` wrote and how each file compared with torch."""

    model_dir: str
    kind: ModelKind
    tolerance: float
    min_kendall_tau: float
    variants: dict[OnnxVariant, VariantReport] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no checked variant failed (an unchecked fp16 does not count as a failure)."""
        return all(v.passed is not False for v in self.variants.values())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"ok": self.ok}

    def summary(self) -> str:
        """Human-readable lines, one per variant and output."""
        lines = [
            f"{self.kind} model {self.model_dir}: {'OK' if self.ok else 'FAILED'} ({self.seconds:.1f} s)"
        ]
        for v in self.variants.values():
            state = {True: "ok", False: "FAILED", None: "not checked"}[v.passed]
            lines.append(
                f"  {v.variant:5s} {v.path} ({v.size_bytes / 1e6:.1f} MB): {state} {v.message}".rstrip()
            )
            for name, diff in v.max_abs_diff.items():
                lines.append(f"        max |diff| {name:13s} {diff:.3g}")
            for name, tau in v.kendall_tau.items():
                lines.append(
                    f"        ranking   {name:13s} kendall tau {tau:.3f}, "
                    f"top-3 overlap {v.top_k_overlap[name]:.3f}"
                )
        return "\n".join(lines)


class _GraphWrapper:
    """Builds the nn.Module whose tuple outputs become the graph outputs (import-time torch kept lazy)."""

    @staticmethod
    def build(model: Any) -> Any:
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(
                self, input_ids: torch.Tensor, attention_mask: torch.Tensor
            ) -> tuple[torch.Tensor, ...]:
                out = self.model(input_ids, attention_mask)
                return tuple(out[name] for name in self.model.output_names)

        return Wrapper().eval()


def _odd_batch(model: Any, texts: Sequence[str], *, is_query: bool) -> tuple[Any, Any]:
    """Tokenise ``texts`` into a padded batch whose sequence length is odd (catches stride / reshape bugs)."""
    texts = list(texts)
    ids, mask = model.tokenize(texts, is_query=is_query)
    if ids.shape[1] % 2 == 0:
        # Shorten the longest text by one word, or lengthen it, until the padded width is odd.
        longest = int(mask.sum(1).argmax())
        texts[longest] = texts[longest] + " cells"
        ids, mask = model.tokenize(texts, is_query=is_query)
        if ids.shape[1] % 2 == 0:
            texts[longest] = texts[longest].rsplit(" ", 2)[0]
            ids, mask = model.tokenize(texts, is_query=is_query)
    return ids, mask


@contextlib.contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """Trace the backbone with its eager attention: ONNX Runtime's transformer optimiser fuses that
    graph into ``Attention``, while the SDPA trace (scale split over q and k, a Where-masked softmax)
    matches none of its patterns, and even unfused the eager graph runs faster. Same results within
    float tolerance (the parity check holds every export to it)."""
    backbone = getattr(model, "backbone", None)
    before = getattr(getattr(backbone, "config", None), "_attn_implementation", None)
    setter = getattr(backbone, "set_attn_implementation", None)
    switched = False
    if setter is not None and before not in (None, "eager"):
        try:
            setter("eager")
            switched = True
        except Exception as exc:  # an architecture without eager attention: trace it as it is
            logger.debug("keeping %s attention for the export: %s", before, exc)
    try:
        yield
    finally:
        if switched:
            setter(before)


def optimize_graph(path: str | os.PathLike[str], model: Any = None) -> dict[str, int]:
    """Rewrite an fp32 graph in place with ONNX Runtime's transformer optimiser (``model_type='bert'``).

    Offline fusions that a session's own ``ORT_ENABLE_ALL`` does not find: multi-head ``Attention``,
    ``EmbedLayerNormalization``, ``SkipLayerNormalization``, ``BiasGelu``. ``model`` (the torch model)
    gives the head count and hidden size. Returns the fused operator counts; leaves the file as it
    was (and returns ``{}``) if the optimiser fails.
    """
    from onnxruntime.transformers import optimizer

    config = getattr(getattr(model, "backbone", None), "config", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None) or 0
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None) or 0
    try:
        optimized = optimizer.optimize_model(
            str(path), model_type="bert", num_heads=int(heads), hidden_size=int(hidden), opt_level=0
        )
        stats = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(path))
    except Exception as exc:  # the unoptimised graph is still a correct one
        logger.warning("the transformer optimiser failed on %s; keeping the graph as exported: %s", path, exc)
        return {}
    logger.info("optimised %s: %s", path, stats)
    return stats


def export_onnx(
    model: Any,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    optimize: bool = True,
    fuse: bool = True,
) -> Path:
    """Export a :class:`colsplade.training.ColspladeModel` to one fp32 ONNX file.

    Inputs ``input_ids`` / ``attention_mask`` (batch, sequence) int64; outputs by kind: ``splade``
    (batch, vocab), ``colbert`` (batch, sequence, dim) unit vectors and ``colbert_mask`` (batch, sequence);
    pooling, projection, normalisation and the skiplist are inside the graph; batch and sequence
    axes are dynamic. The SPLADE head runs only over the longest attended prefix of a batch, never
    over a query's [MASK] augmentation (see ``ColspladeModel.forward``). ``optimize``: trace with
    eager attention (on all-MiniLM-L6-v2, int8 CPU time per document 0.72x of the SDPA trace's) and
    then, unless ``fuse`` is False, fuse the graph with :func:`optimize_graph` (fp32: 0.8x more); a
    fused graph uses ONNX Runtime's ``com.microsoft`` operators. ``optimize=False``: the plain trace.
    """
    import torch

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    wrapper = _GraphWrapper.build(model)
    dummy = _odd_batch(model, ["the cells of the immune response", "a dog"], is_query=False)
    dynamic: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "splade": {0: "batch"},
        "colbert": {0: "batch", 1: "sequence"},
        "colbert_mask": {0: "batch", 1: "sequence"},
    }
    names = list(model.output_names)
    with warnings.catch_warnings():
        # The TorchScript exporter's deprecation and tracer notices are expected; the parity check
        # is what tells whether the trace is right.
        warnings.simplefilter("ignore")
        with torch.no_grad(), _eager_attention(model) if optimize else contextlib.nullcontext():
            torch.onnx.export(
                wrapper,
                dummy,
                str(out),
                input_names=["input_ids", "attention_mask"],
                output_names=names,
                dynamic_axes={
                    k: v for k, v in dynamic.items() if k in names or k in ("input_ids", "attention_mask")
                },
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    model.eval()  # the exporter restores the wrapper's training flag recursively
    logger.info("exported %s to %s", model.kind, out)
    if optimize and fuse:
        optimize_graph(out, model)
    return out


def quantize_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Dynamic int8 quantisation (weights int8, activations quantised at run time) for CPU inference.

    Per-channel weight scales: on all-MiniLM-L6-v2 with a 128-d ColBERT head, per-tensor scales gave a
    ranking Kendall tau of 0.74 against fp32 on the parity set, per-channel 0.88.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ONNX Runtime logs, on the root logger, advice to pre-process the graph first; colsplade's parity
    # check measures what quantisation changed instead, so the advice would only make a user wonder.
    with quiet_logger("root", below=logging.ERROR):
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights: x86 CPUs without VNNI (AVX2, AVX-512F) multiply u8 x s8 pairs into saturating
            # 16-bit sums, which 8-bit weights overflow (measured on an AMD EPYC without VNNI: a tiny random
            # model's int8 ColBERT vectors 0.143 off fp32 at most, 0.011 with reduce_range).
            reduce_range=True,
            # shape inference stops at com.microsoft operators (fused graphs); their tensors are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return Path(dst)


def convert_fp16(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """fp16 weights and compute with fp32 inputs / outputs kept (for onnxruntime-gpu)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)


def colbert_only_graph(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Write the joint graph ``src`` cut to its ColBERT outputs (``colbert``, ``colbert_mask``) to ``dst``.

    ONNX Runtime runs every node of a graph whatever outputs a call asks for, so a query that needs no
    SPLADE terms (a plan that retrieves with BM25 and reranks by MaxSim) would still pay for the
    vocabulary projection; this graph keeps only the nodes the ColBERT outputs depend on (the same
    operators and weights, so the same vectors).
    """
    import onnx

    model = onnx.load(str(src))
    graph = model.graph
    outputs = [o for o in graph.output if o.name in ("colbert", "colbert_mask")]
    if len(outputs) != 2:
        raise InvalidInputError(f"{src} has no colbert / colbert_mask outputs; it is not a joint graph")
    needed = {o.name for o in outputs}
    kept = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(_names_read(node))
    initializers = [t for t in graph.initializer if t.name in needed]
    value_info = [v for v in graph.value_info if v.name in needed]
    del graph.node[:], graph.output[:], graph.initializer[:], graph.value_info[:]
    graph.node.extend(reversed(kept))
    graph.output.extend(outputs)
    graph.initializer.extend(initializers)
    graph.value_info.extend(value_info)
    onnx.save(model, str(dst))
    return Path(dst)


def _names_read(node: Any) -> set[str]:
    """Every tensor name ``node`` reads, those its subgraphs (If / Loop bodies) read from outside included."""
    from onnx import AttributeProto

    names = {name for name in node.input if name}
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
        for sub in graphs:
            for inner in sub.node:
                names |= _names_read(inner)
    return names


def _check_colbert_only(full: Path, colbert: Path, providers: list[str]) -> float:
    """Largest absolute difference between the two graphs' ColBERT vectors on a small batch (0 expected)."""
    # small ids: any vocabulary holds them (the test models' too); the graphs only compute, never decode
    ids = np.array([[2, 10, 11, 12, 10, 13, 14, 3], [2, 15, 3, 0, 0, 0, 0, 0]])
    feeds = {"input_ids": ids.astype(np.int64), "attention_mask": (ids > 0).astype(np.int64)}
    want = ["colbert", "colbert_mask"]
    a = _ort_session(full, providers).run(want, feeds)
    b = _ort_session(colbert, providers).run(want, feeds)
    if not np.array_equal(a[1], b[1]):
        return float("inf")
    return float(np.abs(a[0] - b[0]).max())


#: The logger of the tokenizer the torch model shares with the encoders (it warns about truncation).
TOKENIZE_LOGGER = "colsplade.encoders._tokenize"


def _ort_session(path: Path, providers: list[str]) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def _run_both(
    model: Any, session: Any, batch: tuple[Any, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    import torch

    ids, mask = batch
    with torch.no_grad():
        ref = {
            k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
            for k, v in model(ids, mask).items()
        }
    names = list(model.output_names)
    got = dict(
        zip(
            names,
            session.run(names, {"input_ids": ids.cpu().numpy(), "attention_mask": mask.cpu().numpy()}),
            strict=True,
        )
    )
    return ref, got


def _scores(outputs_q: dict[str, np.ndarray], outputs_d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Query x document score matrices per head: SPLADE dot products and ColBERT MaxSim."""
    scores: dict[str, np.ndarray] = {}
    if "splade" in outputs_q:
        scores["splade"] = outputs_q["splade"].astype(np.float64) @ outputs_d["splade"].astype(np.float64).T
    if "colbert" in outputs_q:
        qm, dm = outputs_q["colbert_mask"].astype(bool), outputs_d["colbert_mask"].astype(bool)
        scores["colbert"] = np.array(
            [
                [
                    maxsim(outputs_q["colbert"][i][qm[i]], outputs_d["colbert"][j][dm[j]])
                    for j in range(len(dm))
                ]
                for i in range(len(qm))
            ]
        )
    return scores


def check_variant(
    model: Any,
    path: Path,
    variant: OnnxVariant,
    *,
    tolerance: float,
    min_kendall_tau: float,
    providers: list[str] | None = None,
) -> VariantReport:
    """Compare one ONNX file with the torch model on the parity texts (multi-text batches of odd length)."""
    import onnxruntime as ort

    report = VariantReport(variant=variant, path=str(path), size_bytes=path.stat().st_size)
    if providers is None:
        # fp16 is meant for CUDA; without a GPU the CPU provider still runs it (slowly), which is
        # enough to check the ranking.
        providers = ["CPUExecutionProvider"]
        if variant == "fp16" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    try:
        session = _ort_session(path, providers)
    except Exception as exc:
        if variant == "fp16" and providers[0] == "CPUExecutionProvider":
            report.message = f"not checked: the CPU provider cannot run this fp16 graph ({exc})"
            return report
        report.passed = False
        report.message = f"ONNX Runtime cannot load the file: {exc}"
        return report
    # parity texts may exceed a tiny model's lengths on purpose: no truncation warnings for them
    with quiet_logger(TOKENIZE_LOGGER, below=logging.ERROR):
        q_batch = _odd_batch(model, PARITY_QUERIES, is_query=True)
        d_batch = _odd_batch(model, PARITY_DOCUMENTS, is_query=False)
    report.message = f"checked on {providers[0]}" if variant == "fp16" else ""
    ref_q, got_q = _run_both(model, session, q_batch)
    ref_d, got_d = _run_both(model, session, d_batch)
    for name in ref_q:
        diff = max(
            float(np.abs(ref_q[name].astype(np.float64) - got_q[name].astype(np.float64)).max()),
            float(np.abs(ref_d[name].astype(np.float64) - got_d[name].astype(np.float64)).max()),
        )
        report.max_abs_diff[name] = diff
    ref_scores, got_scores = _scores(ref_q, ref_d), _scores(got_q, got_d)
    for name, ref in ref_scores.items():
        got = got_scores[name]
        report.kendall_tau[name] = float(np.mean([kendall_tau(ref[i], got[i]) for i in range(len(ref))]))
        report.top_k_overlap[name] = float(
            np.mean([top_k_overlap(ref[i], got[i], 3) for i in range(len(ref))])
        )
    problems = []
    if variant == "fp32":
        problems += [
            f"{n} differs by {d:.3g} > {tolerance:g}" for n, d in report.max_abs_diff.items() if d > tolerance
        ]
    else:
        problems += [
            f"{n} kendall tau {t:.3f} < {min_kendall_tau:g}"
            for n, t in report.kendall_tau.items()
            if t < min_kendall_tau
        ]
    if "colbert_mask" in report.max_abs_diff and report.max_abs_diff["colbert_mask"] != 0:
        problems.append("colbert_mask differs")
    report.passed = not problems
    if problems:
        report.message = "; ".join(problems)
    return report


def export_model_dir(
    model_dir: str | os.PathLike[str],
    *,
    variants: Sequence[OnnxVariant] = ("int8",),
    tolerance: float = 1e-4,
    min_kendall_tau: float = 0.8,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    raise_on_failure: bool = True,
    optimize: bool = True,
) -> ExportReport:
    """Export a model directory's torch weights to ``onnx/model.onnx`` plus the requested ``variants``.

    Every file is checked against torch (see :func:`check_variant`): fp32 outputs within ``tolerance``
    (absolute), int8 / fp16 rankings with mean Kendall tau >= ``min_kendall_tau``. ``colsplade.json``
    lists the files that were written; the figures go to ``onnx/export-report.json``. With
    ``raise_on_failure`` a failed check raises :class:`~colsplade.exceptions.ParityError` (the files
    stay for inspection, but colsplade.json does not list a failed variant). ``optimize``: eager
    attention trace, and the fp32 / fp16 graphs fused (see :func:`export_onnx`); int8 is quantised
    from the unfused graph, because the fused one's ``QAttention`` lowered the ranking agreement
    with torch (SPLADE Kendall tau 0.92 -> 0.87 on all-MiniLM-L6-v2) for ~5% speed.
    """
    from colsplade.training import load_model_dir

    start = time.perf_counter()
    unknown = [v for v in variants if v not in ONNX_VARIANTS or v == "fp32"]
    if unknown:
        raise InvalidInputError(
            f"unknown variants {unknown}; choose from int8, fp16 (fp32 is always written)"
        )
    path = Path(model_dir)
    model = load_model_dir(path)
    config = read_model_config(path)
    report = ExportReport(
        model_dir=str(path), kind=config.kind, tolerance=tolerance, min_kendall_tau=min_kendall_tau
    )
    fp32 = export_onnx(model, path / ONNX_VARIANTS["fp32"], opset=opset, optimize=optimize, fuse=False)
    files = {"fp32": fp32}
    if "int8" in variants:
        files["int8"] = quantize_int8(fp32, path / ONNX_VARIANTS["int8"])
    if optimize:
        optimize_graph(fp32, model)
    if "fp16" in variants:
        files["fp16"] = convert_fp16(fp32, path / ONNX_VARIANTS["fp16"])
    for variant, file in files.items():
        if check:
            report.variants[variant] = check_variant(
                model, file, variant, tolerance=tolerance, min_kendall_tau=min_kendall_tau
            )
        else:
            report.variants[variant] = VariantReport(
                variant, str(file), file.stat().st_size, message="not checked"
            )
    config.onnx = {v: ONNX_VARIANTS[v] for v in files if report.variants[v].passed is not False}
    if config.kind == "joint":
        for variant in list(config.onnx):
            full = path / config.onnx[variant]
            cut = colbert_only_graph(full, path / colbert_only_file(config.onnx[variant]))
            diff = _check_colbert_only(full, cut, ["CPUExecutionProvider"])
            if diff <= 1e-6:
                config.onnx[colbert_only_key(variant)] = colbert_only_file(config.onnx[variant])
            else:
                logger.warning("the ColBERT-only graph %s differs from %s by %g; not listed", cut, full, diff)
    report.seconds = time.perf_counter() - start
    write_model_config(path, config)
    (path / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    logger.info("%s", report.summary())
    if raise_on_failure and not report.ok:
        raise ParityError(f"ONNX export of {path} failed its parity check:\n{report.summary()}", report)
    return report
