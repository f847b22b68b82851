"""ONNX Runtime encoders for SPLADE, ColBERT and joint model directories (no torch)."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from colsplade._types import ModelKind, VariantChoice
from colsplade.encoders._config import (
    ONNX_VARIANTS,
    ModelConfig,
    colbert_only_key,
    position_limit,
    read_model_config,
)
from colsplade.encoders._postprocess import colbert_rows, splade_rows
from colsplade.encoders._tokenize import TextTokenizer, clean_texts
from colsplade.exceptions import InvalidInputError, ModelDirectoryError

__all__ = [
    "DEFAULT_MAX_BATCH_TOKENS",
    "QUERY_WEIGHTS_FILE",
    "ColbertEncoder",
    "Encoder",
    "JointEncoder",
    "JointEncoding",
    "SpladeEncoder",
    "TextExplanation",
    "check_query_length",
    "load_encoder",
    "select_providers",
    "token_batches",
]

logger = logging.getLogger(__name__)

#: Output names of the exported graphs, per kind (the export writes them; the encoders check them).
GRAPH_OUTPUTS: dict[ModelKind, tuple[str, ...]] = {
    "splade": ("splade",),
    "colbert": ("colbert", "colbert_mask"),
    "joint": ("splade", "colbert", "colbert_mask"),
}
QUERY_WEIGHTS_FILE = "query_weights.npy"
#: Padded-token budget of one ONNX run on CPU (``max_batch_tokens="auto"``, see :class:`Encoder`).
#: A SPLADE run's logits take 2048 x 30522 x 4 bytes = 0.25 GB: a joint all-MiniLM-L6-v2 int8
#: encoder peaked at 1.2 GB RSS with the memory arena (4.6 GB in runs of 32 x 256 tokens), and the
#: smaller runs were faster, not slower: 1.7x less CPU time per 256-token passage, 1024 and 4096
#: tokens in between (benchmarks/bench_encoders.py).
DEFAULT_MAX_BATCH_TOKENS = 2048


def check_query_length(max_query_length: object, limit: int) -> int:
    """``max_query_length`` checked against a model's position ``limit``: an int in ``[4, limit]``."""
    if isinstance(max_query_length, bool) or not isinstance(max_query_length, int):
        raise InvalidInputError(f"max_query_length must be an int, not {max_query_length!r}")
    if max_query_length < 4:
        raise InvalidInputError(f"max_query_length must be at least 4 tokens, not {max_query_length}")
    if max_query_length > limit:
        raise InvalidInputError(
            f"max_query_length={max_query_length} is past the model's limit of {limit} tokens "
            "(the backbone's position embeddings); use at most "
            f"{limit}"
        )
    return max_query_length


def token_batches(lengths: Sequence[int], max_texts: int, max_tokens: int | None) -> list[tuple[int, int]]:
    """Split texts sorted by ascending ``lengths`` into ``(start, stop)`` runs of consecutive texts.

    Each run has at most ``max_texts`` texts and, padded to its longest text, at most ``max_tokens``
    tokens (None: no limit); a text longer than ``max_tokens`` forms a run of its own.
    """
    runs: list[tuple[int, int]] = []
    start = 0
    for i, length in enumerate(lengths):
        count = i - start
        if count and (count >= max_texts or (max_tokens is not None and (count + 1) * length > max_tokens)):
            runs.append((start, i))
            start = i
    if start < len(lengths):
        runs.append((start, len(lengths)))
    return runs


class JointEncoding(NamedTuple):
    """What a joint model yields per batch: SPLADE impact dicts and ColBERT token arrays, in input order."""

    splade: list[dict[str, float]]
    colbert: list[np.ndarray]

    @classmethod
    def terms_only(cls, splade: list[dict[str, float]], dim: int) -> JointEncoding:
        """The SPLADE dicts with no ColBERT vectors: one (0, dim) float32 array per text (``vectors=False``).

        >>> JointEncoding.terms_only([{"cat": 1.0}], 4).colbert[0].shape
        (0, 4)
        """
        return cls(splade=splade, colbert=[np.zeros((0, dim), np.float32) for _ in splade])


@dataclass
class TextExplanation:
    """One text as the model sees it (see :meth:`Encoder.explain`).

    ``tokens``: the input tokens (specials included); ``impacts``: ``(term, weight, is_expansion)``
    highest first, where an expansion term does not occur in the text; ``colbert_tokens``: the token
    behind each ColBERT vector, in order.
    """

    text: str
    tokens: list[str]
    impacts: list[tuple[str, float, bool]] = field(default_factory=list)
    colbert_tokens: list[str] = field(default_factory=list)


def select_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime execution providers for ``device``.

    ``auto``: CUDA when onnxruntime-gpu is installed and sees a GPU, else CPU; ``cpu``; ``cuda``.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise InvalidInputError(
                "device='cuda' needs onnxruntime-gpu and a GPU: pip install 'colsplade[gpu]'"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device != "auto":
        raise InvalidInputError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _check_batching(batch_size: int, max_batch_tokens: object) -> None:
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, not {batch_size}")
    positive_int = (
        isinstance(max_batch_tokens, int) and not isinstance(max_batch_tokens, bool) and max_batch_tokens > 0
    )
    if not positive_int and max_batch_tokens not in ("auto", None):
        raise InvalidInputError(
            f"max_batch_tokens must be a positive int, 'auto' or None, not {max_batch_tokens!r}"
        )


def _choose_variant(variant: str, on_cuda: bool, model_dir: Path) -> str:
    """``auto``: fp16 on CUDA when the directory has it, else fp32; any other name is checked."""
    if variant == "auto":
        variant = "fp16" if on_cuda and (model_dir / ONNX_VARIANTS["fp16"]).is_file() else "fp32"
    if variant not in ONNX_VARIANTS:
        raise InvalidInputError(f"variant must be one of {', '.join(ONNX_VARIANTS)} or auto, not {variant!r}")
    return variant


def _session_options(
    memory_arena: bool, intra_op_threads: int | None, inter_op_threads: int | None, spin: bool | None
) -> Any:
    """ONNX Runtime session options: every graph optimisation, the thread pools and spinning asked for."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ONNX Runtime's CPU arena keeps its peak allocation for the session's lifetime; a SPLADE
    # batch of 32 x 256 tokens has a ~1 GB (batch, seq, vocab) logits tensor, so processes that
    # hold several sessions may prefer to return that memory after each run.
    options.enable_cpu_mem_arena = memory_arena
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    if inter_op_threads is not None:
        options.inter_op_num_threads = inter_op_threads
    if spin is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


def _inference_free_weights(model_dir: Path, config: ModelConfig) -> np.ndarray | None:
    """(vocab,) float32 query-term weights of an inference-free SPLADE model (None for any other)."""
    if config.splade is None or config.splade.query_encoder != "inference_free":
        return None
    path = model_dir / QUERY_WEIGHTS_FILE
    if not path.is_file():
        raise ModelDirectoryError(f"an inference-free SPLADE model needs {path}, which is missing")
    return np.load(path).astype(np.float32).reshape(-1)


class Encoder:
    """Common machinery: model directory, tokenizer, ONNX Runtime session, length-sorted batching.

    ``variant``: ``fp32``, ``int8``, ``fp16`` or ``auto`` (fp16 on CUDA when exported, else fp32).
    ``device``: ``auto`` / ``cpu`` / ``cuda``. ``intra_op_threads`` / ``inter_op_threads``: ONNX
    Runtime thread pools (None: ONNX Runtime's default, one per core; the graphs run sequentially,
    so only the intra-op pool matters). On a host whose cores other processes keep busy,
    ``intra_op_threads=1`` can be faster: on a shared 2-core machine it halved the single-query
    latency and gave 1.2x documents/s (the pool's threads spin waiting for each other).

    ``batch_size``: at most this many texts per ONNX run; ``max_batch_tokens``: at most this many
    padded tokens (texts x padded length) per run, so that memory does not grow with document
    length (a SPLADE run holds a (batch, length, vocab) float32 logits tensor: 120 kB per token
    for BERT's vocabulary); a text longer than the budget runs alone; None: no token limit;
    ``auto``: :data:`DEFAULT_MAX_BATCH_TOKENS` on CPU, no token limit on CUDA (not measured there;
    GPUs want large batches). Texts are sorted by length first so each batch pads little; results
    come back in input order. ``query_top_k`` / ``doc_top_k`` / ``threshold`` override the pruning
    of ``colsplade.json``. ``memory_arena``: ONNX Runtime's CPU memory arena; it keeps the peak
    memory of the largest run for the session's lifetime, which ``max_batch_tokens`` bounds, and
    it was faster than allocating every run afresh.

    ``spin``: whether ONNX Runtime's intra-op threads spin while waiting for work (None: its default,
    spinning). Off suits a process that serves queries from many threads: spinning threads burn the
    cores the other callers need.

    ``max_query_length``: read queries up to this many tokens (specials and marker included) instead
    of ``colsplade.json``'s ``max_query_length``; at most the backbone's position limit
    (:func:`~colsplade.encoders.position_limit`), else :class:`InvalidInputError`. The graphs have a
    dynamic sequence axis, so no re-export is needed; with ColBERT query augmentation every query is
    padded with [MASK] to this length, so a longer one costs encode time and MaxSim work on every query.
    """

    kind: str = ""

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        variant: VariantChoice = "auto",
        device: str = "auto",
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        batch_size: int = 32,
        max_batch_tokens: int | Literal["auto"] | None = "auto",
        query_top_k: int | None = None,
        doc_top_k: int | None = None,
        threshold: float | None = None,
        memory_arena: bool = True,
        max_query_length: int | None = None,
        spin: bool | None = None,
        config: ModelConfig | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.config = config if config is not None else read_model_config(self.model_dir)
        self.position_limit = position_limit(self.model_dir, self.config)
        """The longest input in tokens the backbone reads (its position embeddings / tokenizer limit)."""
        if max_query_length is not None:
            self.config = dataclasses.replace(
                self.config, max_query_length=check_query_length(max_query_length, self.position_limit)
            )
        if self.kind and self.config.kind != self.kind:
            raise ModelDirectoryError(
                f"{str(self.model_dir)!r} holds a {self.config.kind} model, not a {self.kind} model; "
                f"use colsplade.encoders.load_encoder() to get the matching encoder"
            )
        _check_batching(batch_size, max_batch_tokens)
        self.batch_size = batch_size
        self.tokenizer = TextTokenizer(self.model_dir, self.config)
        self.providers = select_providers(device)
        on_cuda = self.providers[0] == "CUDAExecutionProvider"
        if max_batch_tokens == "auto":
            max_batch_tokens = None if on_cuda else DEFAULT_MAX_BATCH_TOKENS
        self.max_batch_tokens: int | None = max_batch_tokens
        """At most this many padded tokens per ONNX run (None: only ``batch_size`` bounds a run)."""
        self.variant = variant = _choose_variant(variant, on_cuda, self.model_dir)
        onnx_path = self.model_dir / self.config.onnx.get(variant, ONNX_VARIANTS[variant])
        if not onnx_path.is_file():
            raise ModelDirectoryError(
                f"{str(self.model_dir)!r} has no {ONNX_VARIANTS[variant]}; export it with: "
                f"colsplade export {self.model_dir} --variants {variant}"
            )
        self._session_options = _session_options(memory_arena, intra_op_threads, inter_op_threads, spin)
        self.session = self._open_session(onnx_path)
        # A joint model's ColBERT-only graph (written by the export): ONNX Runtime runs every node of a
        # graph whatever outputs a call asks for, so a query that needs no SPLADE terms would still pay
        # the vocabulary head; opened on first use, ingest never needs it.
        colbert_file = self.config.onnx.get(colbert_only_key(variant))
        self._colbert_path = self.model_dir / colbert_file if colbert_file else None
        self._colbert_session: Any = None
        self._colbert_lock = threading.Lock()
        outputs = [o.name for o in self.session.get_outputs()]
        expected = GRAPH_OUTPUTS[self.config.kind]
        if tuple(outputs[: len(expected)]) != expected:
            raise ModelDirectoryError(
                f"{onnx_path} has outputs {outputs}, but a {self.config.kind} graph has {list(expected)}; "
                "re-export the model directory (colsplade export)"
            )
        self._output_names = list(expected)
        vocab_size = self.tokenizer.vocab_size
        self._vocab = np.asarray([self.tokenizer.id_to_token(i) for i in range(vocab_size)], dtype=object)
        self._excluded = np.zeros(vocab_size, dtype=bool)
        self._excluded[self.tokenizer.special_ids] = True
        self.truncated_count = 0
        """How many texts have been truncated to the model's maximum length so far."""
        self._query_weights = _inference_free_weights(self.model_dir, self.config)
        splade = self.config.splade
        self.query_top_k = (
            query_top_k if query_top_k is not None else (splade.query_top_k if splade else None)
        )
        self.doc_top_k = doc_top_k if doc_top_k is not None else (splade.doc_top_k if splade else None)
        self.threshold = threshold if threshold is not None else (splade.threshold if splade else 0.0)
        logger.info(
            "loaded %s encoder %s (%s, %s)",
            self.config.kind,
            self.config.model_id,
            variant,
            self.providers[0],
        )

    def _open_session(self, path: Path) -> Any:
        import onnxruntime as ort

        try:
            return ort.InferenceSession(
                str(path), sess_options=self._session_options, providers=self.providers
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise ModelDirectoryError(f"ONNX Runtime cannot load {path}: {exc}") from exc

    def _session_for(self, want: Sequence[str]) -> tuple[Any, list[str]]:
        """The session and output names that compute ``want``: the ColBERT-only graph when only ColBERT
        vectors are wanted and the model directory has one, else the model's graph."""
        if self._colbert_path is not None and "splade" not in want:
            if self._colbert_session is None:
                with self._colbert_lock:
                    if self._colbert_session is None:
                        self._colbert_session = self._open_session(self._colbert_path)
            return self._colbert_session, ["colbert", "colbert_mask"]
        return self.session, self._output_names

    # -- core ---------------------------------------------------------------------------------------
    def _forward(
        self, texts: Sequence[str | bytes], *, is_query: bool, want: Sequence[str]
    ) -> tuple[dict[str, list[Any]], list[list[int]]]:
        """Run the graph over ``texts`` and return, per requested output, one item per text (input order)."""
        cleaned = clean_texts(texts)
        tok = self.tokenizer.tokenize(cleaned, is_query=is_query)
        self.truncated_count += tok.truncated
        n = len(cleaned)
        results: dict[str, list[Any]] = {name: [None] * n for name in want}
        dim = self.config.colbert.dim if self.config.colbert is not None else 0
        for i in range(n):
            if tok.empty[i]:
                # Documented result for empty / whitespace-only texts: nothing to match.
                if "splade" in results:
                    results["splade"][i] = {}
                if "colbert" in results:
                    results["colbert"][i] = np.zeros((0, dim), dtype=np.float32)
        todo = [i for i in range(n) if not tok.empty[i]]
        # Length-sorted batches pad little. Augmented queries all have max_query_length ids, so they
        # are sorted by attended length too: the graph runs the SPLADE head only up to the longest
        # attended prefix of a batch.
        todo.sort(key=lambda i: (len(tok.ids[i]), tok.attended[i]))
        top_k = self.query_top_k if is_query else self.doc_top_k
        lengths = [len(tok.ids[i]) for i in todo]
        session, output_names = self._session_for(want)
        for start, stop in token_batches(lengths, self.batch_size, self.max_batch_tokens):
            idx = todo[start:stop]
            input_ids, attention = self.tokenizer.pad(
                [tok.ids[i] for i in idx], [tok.attended[i] for i in idx]
            )
            try:
                out = session.run(output_names, {"input_ids": input_ids, "attention_mask": attention})
            except Exception as exc:
                raise InvalidInputError(f"ONNX Runtime failed on a batch of {len(idx)} texts: {exc}") from exc
            named = dict(zip(output_names, out, strict=True))
            if "splade" in results:
                dicts = splade_rows(
                    named["splade"].astype(np.float32),
                    self._vocab,
                    self._excluded,
                    top_k=top_k,
                    threshold=self.threshold,
                )
                for i, d in zip(idx, dicts, strict=True):
                    results["splade"][i] = d
            if "colbert" in results:
                rows = colbert_rows(named["colbert"], named["colbert_mask"])
                for i, r in zip(idx, rows, strict=True):
                    results["colbert"][i] = r
        return results, tok.ids

    def _inference_free(self, texts: Sequence[str | bytes]) -> list[dict[str, float]]:
        """Inference-free SPLADE queries: each distinct query token weighs its learned weight."""
        assert self._query_weights is not None
        cleaned = clean_texts(texts)
        tok = self.tokenizer.tokenize(cleaned, is_query=True)
        self.truncated_count += tok.truncated
        out = []
        known = min(self._query_weights.shape[0], len(self._vocab))
        for seq in tok.ids:
            ids = np.unique(np.asarray(seq, dtype=np.int64))
            ids = ids[ids < known]
            # the same selection as over the whole vocabulary row (every other term weighs 0), on the
            # query's own tokens only: a few dozen columns, not the vocabulary's 30k
            out.append(
                splade_rows(
                    self._query_weights[ids][None, :],
                    self._vocab[ids],
                    self._excluded[ids],
                    top_k=self.query_top_k,
                    threshold=self.threshold,
                )[0]
            )
        return out

    def explain(self, text: str | bytes, *, is_query: bool = True) -> TextExplanation:
        """How the model reads one text: tokens, SPLADE impacts (expansions flagged), ColBERT tokens."""
        cleaned = clean_texts([text])[0]
        want = list(dict.fromkeys(n for n in GRAPH_OUTPUTS[self.config.kind] if n != "colbert_mask"))
        if self.config.splade is not None and is_query and self._query_weights is not None:
            want = [n for n in want if n != "splade"]
        results, ids = self._forward([cleaned], is_query=is_query, want=want)
        seq = ids[0]
        explanation = TextExplanation(text=cleaned, tokens=[self.tokenizer.id_to_token(i) for i in seq])
        impacts = results["splade"][0] if "splade" in results else None
        if impacts is None and self.config.splade is not None:
            impacts = self._inference_free([cleaned])[0]
        if impacts:
            present = set(explanation.tokens)
            explanation.impacts = [(t, w, t not in present) for t, w in impacts.items()]
        if "colbert" in results and len(results["colbert"][0]):
            explanation.colbert_tokens = self._colbert_tokens(seq, is_query)
        return explanation

    def _colbert_tokens(self, seq: list[int], is_query: bool) -> list[str]:
        # Mirrors the graph's mask: queries keep every non-pad token; documents drop the skiplist.
        skip = set() if is_query else set(self.tokenizer.skiplist_ids)
        return [self.tokenizer.id_to_token(i) for i in seq if i != self.tokenizer.pad_id and i not in skip]


class SpladeEncoder(Encoder):
    """SPLADE model directory -> ``{token: weight}`` dicts (> threshold, at most top-k, highest first).

    Empty or whitespace-only texts give ``{}``.
    """

    kind = "splade"

    def encode_queries(self, texts: Sequence[str | bytes]) -> list[dict[str, float]]:
        """Encode queries (the inference-free query side when the model has one)."""
        if self._query_weights is not None:
            return self._inference_free(texts)
        return self._forward(texts, is_query=True, want=["splade"])[0]["splade"]

    def encode_documents(self, texts: Sequence[str | bytes]) -> list[dict[str, float]]:
        """Encode documents."""
        return self._forward(texts, is_query=False, want=["splade"])[0]["splade"]


class ColbertEncoder(Encoder):
    """ColBERT model directory -> one (n_tokens, dim) float32 array of unit vectors per text.

    Queries give ``max_query_length`` vectors with augmentation on; documents one vector per kept token
    (punctuation dropped). Empty or whitespace-only texts give a (0, dim) array.
    """

    kind = "colbert"

    def encode_queries(self, texts: Sequence[str | bytes]) -> list[np.ndarray]:
        """Encode queries: list of (n_tokens, dim) float32."""
        return self._forward(texts, is_query=True, want=["colbert"])[0]["colbert"]

    def encode_documents(self, texts: Sequence[str | bytes]) -> list[np.ndarray]:
        """Encode documents: list of (n_tokens, dim) float32."""
        return self._forward(texts, is_query=False, want=["colbert"])[0]["colbert"]


class JointEncoder(Encoder):
    """Joint model directory: one forward pass gives both the SPLADE dicts and the ColBERT arrays."""

    kind = "joint"

    def encode_queries(
        self, texts: Sequence[str | bytes], *, sparse: bool = True, vectors: bool = True
    ) -> JointEncoding:
        """Encode queries into both representations.

        ``sparse=False``: the ColBERT vectors alone (every SPLADE dict empty), from the ColBERT-only graph
        where the export wrote one (a plan that retrieves with BM25 and reranks by MaxSim needs no SPLADE
        terms). ``vectors=False``: the SPLADE dicts alone (every ColBERT array (0, dim)); with an
        inference-free query side that is a tokenizer call and a lookup, no transformer pass (a plan
        that retrieves with SPLADE and does not rerank needs no vectors)."""
        if not vectors:
            if not sparse:
                raise InvalidInputError("encode_queries needs sparse=True, vectors=True or both")
            splade = (
                self._inference_free(texts)
                if self._query_weights is not None
                else self._forward(texts, is_query=True, want=["splade"])[0]["splade"]
            )
            return JointEncoding.terms_only(splade, self.config.colbert.dim if self.config.colbert else 0)
        if self._query_weights is not None or not sparse:
            colbert = self._forward(texts, is_query=True, want=["colbert"])[0]["colbert"]
            if not sparse:
                return JointEncoding(splade=[{} for _ in colbert], colbert=colbert)
            return JointEncoding(splade=self._inference_free(texts), colbert=colbert)
        res = self._forward(texts, is_query=True, want=["splade", "colbert"])[0]
        return JointEncoding(splade=res["splade"], colbert=res["colbert"])

    def encode_documents(self, texts: Sequence[str | bytes]) -> JointEncoding:
        """Encode documents into both representations."""
        res = self._forward(texts, is_query=False, want=["splade", "colbert"])[0]
        return JointEncoding(splade=res["splade"], colbert=res["colbert"])


_ENCODERS: dict[ModelKind, type[Encoder]] = {
    "splade": SpladeEncoder,
    "colbert": ColbertEncoder,
    "joint": JointEncoder,
}


def load_encoder(model_dir: str | os.PathLike[str], **options: Any) -> Encoder:
    """Open a model directory with the encoder class of its kind (see :class:`Encoder` for ``options``)."""
    config = read_model_config(model_dir)
    return _ENCODERS[config.kind](model_dir, config=config, **options)
