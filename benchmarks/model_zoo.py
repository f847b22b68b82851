"""The public model formats colsplade imports, one row per format x architecture (results/model_zoo.json).

    python benchmarks/model_zoo.py [--engines elasticsearch,opensearch] [--pylate-python .venv-peers-pylate/bin/python]

Every row starts from a tiny random checkpoint written by the library that defines the format
(``colsplade.testing.write_reference_checkpoint``: sentence-transformers 6 for its SparseEncoder, its
inference-free Router, its MultiVectorEncoder and as the reader of naver SPLADE, OpenSearch's idf.json
layout and Stanford's ColBERTv2 layout; PyLate itself for PyLate, run in its own venv because it pins
sentence-transformers 5, see benchmarks/requirements-peers.txt). Then, through the product:
``import_checkpoint`` -> ``export_model_dir`` (fp32 + int8, parity-checked against torch) -> the fp32
ONNX encoder against the library's own ``encode_query`` / ``encode_document`` (``fp32_max_abs_diff``;
the same non-zero terms for sparse models, the same kept tokens for ColBERTs) -> int8 ranking agreement
with torch (``int8_kendall_tau``, from the export's parity check) -> ingest and search on each engine
(paired with a tiny model of the other kind; the first stage must be the model's own sparse dot
product). ``speed``: docs/s and single-query p50 of a tiny ModernBERT next to a tiny BERT of the same
size (hidden 32, 3 layers), fp32, both kinds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_report

ROWS: list[tuple[str, str]] = [
    ("naver-splade", "bert"),
    ("naver-splade", "distilbert"),
    ("naver-splade", "modernbert"),
    ("naver-splade", "xlm-roberta"),
    ("st-sparse", "bert"),
    ("st-sparse", "distilbert"),
    ("st-sparse", "modernbert"),
    ("st-sparse", "xlm-roberta"),
    ("st-sparse-inference-free", "bert"),
    ("st-sparse-inference-free", "modernbert"),
    ("opensearch-inference-free", "bert"),
    ("opensearch-inference-free", "modernbert"),
    ("st-multivector", "bert"),
    ("st-multivector", "distilbert"),
    ("st-multivector", "modernbert"),
    ("st-multivector", "xlm-roberta"),
    ("colbertv2", "bert"),
    ("pylate", "bert"),
    ("pylate", "modernbert"),
]
QUERIES = ["what does the drug do to the heart?", "immune response of mice", "gene"]
DOCUMENTS = [
    "The immune response of mice to the virus, and its effect.",
    "A drug dose changes the heart: the risk increases!",
    "Gene expression in cells.",
    "Cells of the immune system respond to a virus in mice; the drug dose, the heart and the risk of "
    "gene expression all change, and the effect increases with each dose of the drug in the cells.",
]
TITLED = [("Mice", DOCUMENTS[0]), ("Heart", DOCUMENTS[1]), ("Genes", DOCUMENTS[2]), ("Cells", DOCUMENTS[3])]


# -- PyLate, in its own venv ------------------------------------------------------------------------


def write_pylate(out: Path) -> None:
    """(Runs in the PyLate venv.) A tiny PyLate ColBERT per architecture, saved by PyLate, and PyLate's
    own encodings of QUERIES / DOCUMENTS (``reference.npz``)."""
    import numpy as np
    from pylate import __version__, models

    from colsplade.testing import make_tiny_base_model

    for arch in ("bert", "modernbert"):
        base = make_tiny_base_model(out / arch / "base", arch=arch, layers=3)
        model = models.ColBERT(
            model_name_or_path=str(base),
            embedding_size=16,
            query_length=16,
            document_length=40,
            device="cpu",
        )
        model.save(str(out / arch / "pylate"))
        queries = model.encode(QUERIES, is_query=True, convert_to_numpy=True)
        documents = model.encode(DOCUMENTS, is_query=False, convert_to_numpy=True)
        arrays = {f"q{i}": np.asarray(v) for i, v in enumerate(queries)}
        arrays.update({f"d{i}": np.asarray(v) for i, v in enumerate(documents)})
        np.savez(out / arch / "reference.npz", **arrays)
    (out / "version.txt").write_text(f"pylate {__version__}")


def _pylate_rows(python: str, work: Path) -> dict[str, Any]:
    """Run :func:`write_pylate` in the PyLate venv; {arch: (checkpoint dir, reference arrays)} or the reason."""
    import numpy as np

    if not Path(python).is_file():
        return {"skipped": f"no PyLate venv at {python} (see benchmarks/requirements-peers.txt)"}
    done = subprocess.run(
        [python, __file__, "--write-pylate", str(work)], capture_output=True, text=True, check=False
    )
    if done.returncode:
        return {"skipped": f"PyLate failed: {done.stderr.strip()[-500:]}"}
    rows: dict[str, Any] = {"version": (work / "version.txt").read_text().strip()}
    for arch in ("bert", "modernbert"):
        arrays = np.load(work / arch / "reference.npz")
        queries = [arrays[f"q{i}"] for i in range(len(QUERIES))]
        documents = [arrays[f"d{i}"] for i in range(len(DOCUMENTS))]
        rows[arch] = (work / arch / "pylate", queries, documents)
    return rows


# -- one row -------------------------------------------------------------------------------------------


def _compare_arrays(want: list[Any], got: list[Any]) -> tuple[float, bool]:
    import numpy as np

    same = all(g.shape == w.shape for g, w in zip(got, want, strict=True))
    if not same:
        return float("inf"), False
    return max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)), True


def _ingest_and_search(engine: str, kind: str, model: Path, tiny: dict[str, Path]) -> bool:
    """Ingest TITLED with the model (paired with a tiny one of the other kind) and search; the first
    stage must be the SPLADE side's own dot product through the engine."""
    import math

    from colsplade.config import load_settings
    from colsplade.encoders import load_encoder, load_encoder_pair
    from colsplade.engines import connect_default
    from colsplade.ingest import FieldMapping, ingest
    from colsplade.query import SearchClient

    splade_dir = model if kind == "splade" else tiny["splade"]
    colbert_dir = model if kind == "colbert" else tiny["colbert"]
    index = f"model-zoo-{os.getpid()}"
    with contextlib.closing(connect_default(load_settings(engine=engine), autostart=True)) as client:
        if client.index_exists(index):
            client.delete_index(index)
        try:
            pair = load_encoder_pair(splade_dir, colbert_dir, variant="fp32")
            docs = [{"id": f"d{i}", "title": t, "text": x} for i, (t, x) in enumerate(TITLED)]
            summary = ingest(docs, client, index, pair, fields=FieldMapping(id_field="id"), progress=False)
            if summary.indexed != len(docs):
                return False
            client.refresh(index)
            search = SearchClient(
                index,
                splade_model=splade_dir,
                colbert_model=colbert_dir,
                client=client,
                encoder_options={"variant": "fp32"},
            )
            result = search.search(QUERIES[0], k=len(docs), window=len(docs), plan="splade+colbert")
            splade = load_encoder(splade_dir, variant="fp32")
            query = splade.encode_queries([QUERIES[0]])[0]
            terms = dict(
                zip(
                    [d["id"] for d in docs],
                    splade.encode_documents([f"{t}\n{x}" for t, x in TITLED]),
                    strict=True,
                )
            )
            exact = all(
                math.isclose(
                    h.stage_scores["first_stage"],
                    sum(w * terms[h.id].get(t, 0.0) for t, w in query.items()),
                    rel_tol=0.01,
                    abs_tol=1e-3,
                )
                for h in result.hits
            )
            return bool(result.hits) and exact and all("maxsim" in h.stage_scores for h in result.hits)
        finally:
            client.delete_index(index)


def run_row(
    fmt: str, arch: str, work: Path, engines: list[str], tiny: dict[str, Path], pylate: dict[str, Any]
) -> dict[str, Any]:
    import sentence_transformers

    from colsplade.encoders import load_encoder, read_model_config
    from colsplade.onnx_export import export_model_dir
    from colsplade.testing import (
        REFERENCE_FORMATS,
        compare_with_reference,
        reference_encoder,
        write_reference_checkpoint,
    )
    from colsplade.training import import_checkpoint

    row: dict[str, Any] = {"format": fmt, "architecture": arch}
    if fmt == "pylate":
        if arch not in pylate:
            return {**row, "skipped": pylate.get("skipped", "no PyLate checkpoint")}
        src, want_q, want_d = pylate[arch]
        kind, reference_name = "colbert", pylate["version"]
    else:
        kind = REFERENCE_FORMATS[fmt]
        src = write_reference_checkpoint(fmt, work / f"{fmt}-{arch}", arch=arch)
        reference_name = f"sentence-transformers {sentence_transformers.__version__}"
    out = import_checkpoint(src, work / f"{fmt}-{arch}-imported")
    report = export_model_dir(out, variants=("int8",), raise_on_failure=False)
    config = read_model_config(out)
    encoder = load_encoder(out, variant="fp32")
    if fmt == "pylate":
        diff_q, same_q = _compare_arrays(want_q, encoder.encode_queries(QUERIES))
        diff_d, same_d = _compare_arrays(want_d, encoder.encode_documents(DOCUMENTS))
        compared = {"max_abs_diff": max(diff_q, diff_d), "shapes_equal": same_q and same_d}
    else:
        reference = reference_encoder(fmt, src)
        parts = [
            compare_with_reference(reference, encoder, texts, is_query=q)
            for texts, q in ((QUERIES, True), (DOCUMENTS, False))
        ]
        compared = {
            "max_abs_diff": max(p["max_abs_diff"] for p in parts),
            **{k: all(p[k] for p in parts) for k in ("nonzero_terms_equal", "shapes_equal") if k in parts[0]},
        }
    int8 = report.variants.get("int8")
    backbone = json.loads((out / "config.json").read_text())  # the imported model's backbone config
    per_engine = {engine: _ingest_and_search(engine, kind, out, tiny) for engine in engines}
    row.update(
        {
            "kind": kind,
            "dim": config.colbert.dim if kind == "colbert" else int(backbone.get("vocab_size") or 0),
            "reference": reference_name,
            "fp32_max_abs_diff": compared["max_abs_diff"],
            "int8_kendall_tau": int8.kendall_tau.get(kind) if int8 else None,
            "nonzero_terms_equal": compared.get("nonzero_terms_equal"),
            "tokens_equal": compared.get("shapes_equal"),
            "ingest_and_search_ok": all(per_engine.values()),
            "ingest_and_search": per_engine,
            # the document length taken from the checkpoint (its max_seq_length / document_length /
            # doc_maxlen); the query's and the backbone's position table beside it
            "max_length": config.max_doc_length,
            "query_max_length": config.max_query_length,
            "backbone_positions": backbone.get("max_position_embeddings"),
            "query_side": config.splade.query_encoder if config.splade else "model",
            "imported_as": config.source.get("format"),
        }
    )
    return row


# -- speed: ModernBERT next to BERT ----------------------------------------------------------------------


def speed(work: Path) -> dict[str, Any]:
    """docs/s (batches of 32 documents of ~60 tokens) and single-query p50 of same-size tiny BERT and
    ModernBERT encoders (fp32), SPLADE (st-sparse) and ColBERT (st-multivector), interleaved."""
    from colsplade.encoders import load_encoder
    from colsplade.onnx_export import export_model_dir
    from colsplade.testing import write_reference_checkpoint
    from colsplade.training import import_checkpoint

    texts = [f"{DOCUMENTS[i % 4]} {DOCUMENTS[(i + 1) % 4]}" for i in range(256)]
    out: dict[str, Any] = {"docs": len(texts), "queries": 200, "variant": "fp32", "hidden": 32, "layers": 3}
    for fmt in ("st-sparse", "st-multivector"):
        encoders = {}
        for arch in ("bert", "modernbert"):
            src = write_reference_checkpoint(fmt, work / f"speed-{fmt}-{arch}", arch=arch)
            model = import_checkpoint(src, work / f"speed-{fmt}-{arch}-imported")
            export_model_dir(model, variants=())
            encoders[arch] = load_encoder(model, variant="fp32")
        rates: dict[str, list[float]] = {a: [] for a in encoders}
        query_ms: dict[str, list[float]] = {a: [] for a in encoders}
        for _ in range(3):
            for arch, encoder in encoders.items():
                t0 = time.perf_counter()
                for start in range(0, len(texts), 32):
                    encoder.encode_documents(texts[start : start + 32])
                rates[arch].append(len(texts) / (time.perf_counter() - t0))
        for i in range(out["queries"] + 20):
            for arch, encoder in encoders.items():
                t0 = time.perf_counter()
                encoder.encode_queries([QUERIES[i % len(QUERIES)]])
                if i >= 20:
                    query_ms[arch].append((time.perf_counter() - t0) * 1000)
        out[fmt] = {
            arch: {
                "docs_per_s": round(statistics.median(rates[arch]), 1),
                "query_p50_ms": round(statistics.median(query_ms[arch]), 3),
            }
            for arch in encoders
        }
        out[fmt]["modernbert_over_bert_docs_per_s"] = round(
            out[fmt]["modernbert"]["docs_per_s"] / out[fmt]["bert"]["docs_per_s"], 3
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", default="elasticsearch,opensearch")
    parser.add_argument("--pylate-python", default=".venv-peers-pylate/bin/python")
    parser.add_argument("--out", default="benchmarks/results/model_zoo.json")
    parser.add_argument("--write-pylate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_pylate:
        write_pylate(Path(args.write_pylate))
        return
    import logging

    logging.getLogger("colsplade").setLevel(logging.WARNING)
    load_at_start = os.getloadavg()
    from colsplade.testing import make_tiny_model_dir

    work = Path(tempfile.mkdtemp(prefix="model-zoo-"))
    engines = [e for e in args.engines.split(",") if e]
    try:
        tiny = {
            "splade": make_tiny_model_dir("splade", work / "tiny-splade", variants=()),
            "colbert": make_tiny_model_dir("colbert", work / "tiny-colbert", variants=(), dim=16),
        }
        pylate = _pylate_rows(args.pylate_python, work / "pylate")
        rows = []
        for fmt, arch in ROWS:
            t0 = time.perf_counter()
            row = run_row(fmt, arch, work, engines, tiny, pylate)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            print(json.dumps(row), flush=True)
            rows.append(row)
        measured = speed(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done = [r for r in rows if "skipped" not in r]
    targets = {
        "every_row_present": len(done) == len(ROWS),
        "fp32_max_abs_diff_le_1e-4": all(r["fp32_max_abs_diff"] <= 1e-4 for r in done),
        "int8_kendall_tau_ge_0.90": all((r["int8_kendall_tau"] or 0) >= 0.9 for r in done),
        "ingest_and_search_ok": all(r["ingest_and_search_ok"] for r in done),
    }
    write_report(
        args.out,
        {
            "settings": {
                "engines": engines,
                "checkpoints": "tiny random (hidden 32, 3 layers, a 300-token WordPiece vocabulary; ModernBERT "
                "with a 32-token sliding window), written by each format's library",
                "load_average_at_start": load_at_start,
                "load_average_at_end": os.getloadavg(),
            },
            "rows": rows,
            "targets": targets,
            "speed": measured,
        },
    )


if __name__ == "__main__":
    main()
