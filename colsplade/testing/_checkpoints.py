"""Tiny public-format checkpoints, written by the library that defines each format, and that library's
reader of them: the references colsplade's importers are held to (tests and ``benchmarks/model_zoo.py``).

Needs the ``[train]`` extra (torch, transformers, sentence-transformers); imported only when used.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from colsplade.testing._tiny import make_tiny_base_model

#: format -> the checkpoint's kind; every format :func:`write_reference_checkpoint` writes
REFERENCE_FORMATS: dict[str, str] = {
    "naver-splade": "splade",
    "st-sparse": "splade",
    "st-sparse-inference-free": "splade",
    "opensearch-inference-free": "splade",
    "st-multivector": "colbert",
    "colbertv2": "colbert",
}

#: the backbones the tiny checkpoints come in
REFERENCE_ARCHITECTURES = ("bert", "distilbert", "modernbert", "xlm-roberta")


def write_reference_checkpoint(
    fmt: str,
    out_dir: str | Path,
    *,
    arch: str = "bert",
    pooling: str = "max",
    attend: bool = False,
    two_dense: bool = True,
    seed: int = 0,
) -> Path:
    """Write a tiny random checkpoint of format ``fmt`` (see :data:`REFERENCE_FORMATS`) into
    ``out_dir`` with the library that defines it, and return its directory.

    - ``naver-splade``: a ``*ForMaskedLM`` saved by transformers;
    - ``st-sparse``: a sentence-transformers ``SparseEncoder`` (MLM transformer + ``SpladePooling``,
      ``pooling`` max or sum);
    - ``st-sparse-inference-free``: its ``Router`` layout, queries through a ``SparseStaticEmbedding``
      (a random positive weight per token), documents through the MLM;
    - ``opensearch-inference-free``: OpenSearch's layout, a document ``*ForMaskedLM`` with ``idf.json``;
    - ``colbertv2``: Stanford ColBERTv2's layout (``bert.*`` + ``linear.weight``, ``HF_ColBERT`` config,
      ``artifact.metadata``: query 16 / document 40 tokens, 16 dimensions, [unused0] / [unused1] markers),
      written here in that layout (colbert-ai itself is not installable next to colsplade's extras);
      BERT only, as Stanford's checkpoints are;
    - ``st-multivector``: a sentence-transformers v6 ``MultiVectorEncoder`` ColBERT: ``[Q]`` / ``[D]``
      prompt tokens added to the tokenizer (as PyLate does), fixed [MASK] expansion to 16 (``attend``:
      whether expansion tokens are attended to), documents to 40 tokens, one or two (``two_dense``)
      identity Dense layers to 16 dimensions, a punctuation skiplist for documents, ``Normalize``.
    """
    import torch

    if fmt not in REFERENCE_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(REFERENCE_FORMATS)}, not {fmt!r}")
    out = Path(out_dir)
    mlm = REFERENCE_FORMATS[fmt] == "splade"
    base = make_tiny_base_model(out / "base", mlm=mlm, arch=arch, layers=3, seed=seed)
    torch.manual_seed(seed + 1)
    if fmt == "naver-splade":
        return base
    if fmt == "opensearch-inference-free":
        import numpy as np
        from transformers import AutoTokenizer

        rng = np.random.default_rng(seed + 5)
        vocab = AutoTokenizer.from_pretrained(str(base)).get_vocab()
        idf = {t: round(float(rng.uniform(0.1, 4.0)), 4) for t in vocab if not t.startswith("[")}
        (base / "idf.json").write_text(json.dumps(idf), encoding="utf-8")
        return base
    if fmt == "st-multivector":
        return _multivector(base, out / fmt, attend=attend, two_dense=two_dense)
    if fmt == "colbertv2":
        return _stanford_colbert(base, out / fmt, attend=attend)
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    document = [Transformer(str(base), transformer_task="fill-mask"), SpladePooling(pooling_strategy=pooling)]
    if fmt == "st-sparse":
        model = SparseEncoder(modules=document, device="cpu")
    else:
        from sentence_transformers.base.modules import Router
        from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(base))
        weights = torch.rand(len(tokenizer.get_vocab())) * 3
        router = Router.for_query_document(
            query_modules=[SparseStaticEmbedding(tokenizer, weight=weights, frozen=True)],
            document_modules=document,
        )
        model = SparseEncoder(modules=[router], similarity_fn_name="dot", device="cpu")
    model.save(str(out / fmt))
    return out / fmt


def _multivector(base: Path, out: Path, *, attend: bool, two_dense: bool) -> Path:
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    tokenizer.add_tokens(["[Q]", "[D]"], special_tokens=True)
    backbone = AutoModel.from_pretrained(str(base))
    backbone.resize_token_embeddings(len(tokenizer))
    tokenizer.save_pretrained(str(base))
    backbone.save_pretrained(str(base))
    transformer = Transformer(
        str(base),
        query_length=16,
        document_length=40,
        query_expansion={"strategy": "fixed", "length": 16, "attend": attend},
    )
    hidden = int(backbone.config.hidden_size)
    identity = torch.nn.Identity()
    first = 24 if two_dense else 16
    dense = [
        Dense(hidden, first, bias=True, activation_function=identity, module_input_name="token_embeddings")
    ]
    if two_dense:  # answerai / mxbai-style stacks: composed into one projection on import
        dense.append(
            Dense(24, 16, bias=False, activation_function=identity, module_input_name="token_embeddings")
        )
    model = MultiVectorEncoder(
        modules=[
            transformer,
            *dense,
            MultiVectorMask(skiplist_words=list(string.punctuation)),
            Normalize(module_input_name="token_embeddings"),
        ],
        prompts={"query": "[Q] ", "document": "[D] "},
        device="cpu",
    )
    model.save(str(out))
    return out


def _stanford_colbert(base: Path, out: Path, *, attend: bool) -> Path:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModel

    if json.loads((base / "config.json").read_text(encoding="utf-8")).get("model_type") != "bert":
        raise ValueError("Stanford ColBERTv2 checkpoints are BERT models: use arch='bert'")
    out.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(str(base)).eval()
    linear = torch.nn.Linear(bert.config.hidden_size, 16, bias=False)
    state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    state["linear.weight"] = linear.weight.detach().clone()
    save_file(state, str(out / "model.safetensors"))
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = ["HF_ColBERT"]
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (base / name).is_file():
            (out / name).write_bytes((base / name).read_bytes())
    meta = {
        "query_maxlen": 16,
        "doc_maxlen": 40,
        "dim": 16,
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
        "mask_punctuation": True,
        "attend_to_mask_tokens": attend,
    }
    (out / "artifact.metadata").write_text(json.dumps(meta), encoding="utf-8")
    return out


def reference_encoder(fmt: str, src: str | Path) -> Any:
    """The defining library's reader of a checkpoint written by :func:`write_reference_checkpoint`: a
    sentence-transformers ``SparseEncoder`` or ``MultiVectorEncoder`` with ``encode_query`` /
    ``encode_document``. A naver SPLADE is read as sentence-transformers reads a bare MLM (+ SPLADE
    max pooling); OpenSearch's files as its documented route (``SparseStaticEmbedding.from_json`` over
    ``idf.json`` for queries, the MLM for documents); a Stanford ColBERTv2 by sentence-transformers 6's
    reader of that layout."""
    src = Path(src)
    if fmt in ("st-multivector", "colbertv2"):  # sentence-transformers 6 reads Stanford's layout too
        from sentence_transformers import MultiVectorEncoder

        return MultiVectorEncoder(str(src), device="cpu")
    from sentence_transformers import SparseEncoder

    if fmt in ("st-sparse", "st-sparse-inference-free"):
        return SparseEncoder(str(src), device="cpu")
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    document = [Transformer(str(src), transformer_task="fill-mask"), SpladePooling("max")]
    if fmt == "naver-splade":
        return SparseEncoder(modules=document, device="cpu")
    from sentence_transformers.base.modules import Router
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(src))
    query = SparseStaticEmbedding.from_json(str(src / "idf.json"), tokenizer, frozen=True)
    router = Router.for_query_document(query_modules=[query], document_modules=document)
    return SparseEncoder(modules=[router], similarity_fn_name="dot", device="cpu")


def reference_outputs(reference: Any, texts: list[str], *, is_query: bool) -> list[Any]:
    """The reference library's encoding of ``texts``, as numpy: (vocab,) dense rows for a sparse
    encoder, (n_tokens, dim) arrays for a multi-vector one."""
    encode = reference.encode_query if is_query else reference.encode_document
    if type(reference).__name__ == "MultiVectorEncoder":
        return [t.detach().cpu().numpy() for t in encode(texts, convert_to_numpy=False)]
    return list(encode(texts, convert_to_tensor=True).to_dense().cpu().numpy())


def compare_with_reference(
    reference: Any, encoder: Any, texts: list[str], *, is_query: bool
) -> dict[str, Any]:
    """colsplade's ``encoder`` against the reference on ``texts``: ``max_abs_diff`` over every output,
    and for sparse encoders ``nonzero_terms_equal`` (the same non-zero vocabulary terms, special tokens
    aside: colsplade never writes [CLS], [SEP], [MASK] ...); for multi-vector ones ``shapes_equal``."""
    import numpy as np

    want = reference_outputs(reference, texts, is_query=is_query)
    got = encoder.encode_queries(texts) if is_query else encoder.encode_documents(texts)
    if type(reference).__name__ == "MultiVectorEncoder":
        shapes = all(g.shape == w.shape for g, w in zip(got, want, strict=True))
        diff = (
            max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
            if shapes
            else float("inf")
        )
        return {"max_abs_diff": diff, "shapes_equal": shapes}
    vocab = reference.tokenizer.get_vocab()
    special = sorted(encoder.tokenizer.special_ids)
    same, diff = True, 0.0
    for row, terms in zip(want, got, strict=True):
        row = row.copy()
        row[special] = 0.0
        dense = np.zeros_like(row)
        for token, weight in terms.items():
            dense[vocab[token]] = weight
        same = same and set(np.flatnonzero(dense)) == set(np.flatnonzero(row))
        diff = max(diff, float(np.abs(dense - row).max()))
    return {"max_abs_diff": diff, "nonzero_terms_equal": same}
