"""Each family of public checkpoints colsplade imports ingests and searches on both real engines: the
imported model (written by its own library: sentence-transformers' SparseEncoder, its inference-free
Router, OpenSearch's idf.json layout, a naver SPLADE MLM, sentence-transformers' MultiVectorEncoder,
Stanford's ColBERTv2 layout;
BERT, DistilBERT and ModernBERT backbones), paired with a tiny model of the other kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from colsplade.encoders import load_encoder, load_encoder_pair
from colsplade.ingest import FieldMapping, ingest
from colsplade.query import SearchClient

FAMILIES = [
    ("st-sparse", "bert"),
    ("st-sparse", "modernbert"),
    ("st-sparse-inference-free", "bert"),
    ("opensearch-inference-free", "bert"),
    ("naver-splade", "distilbert"),
    ("st-multivector", "bert"),
    ("st-multivector", "modernbert"),
    ("colbertv2", "bert"),
]
TEXTS = [
    ("Mice", "The immune response of mice to the virus, and its effect."),
    ("Heart", "A drug dose changes the heart: the risk increases!"),
    ("Genes", "Gene expression in cells."),
    ("Virus", "The virus and the drug: cells of the immune system respond."),
]
QUERY = "what does the drug do to the heart?"


@pytest.fixture(scope="module")
def public_models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Imported and exported models by (format, arch), built on first use, and the tiny counterparts."""
    from colsplade.onnx_export import export_model_dir
    from colsplade.testing import REFERENCE_FORMATS, make_tiny_model_dir, write_reference_checkpoint
    from colsplade.training import import_checkpoint

    root = tmp_path_factory.mktemp("public-models")
    built: dict = {
        "splade": make_tiny_model_dir("splade", root / "tiny-splade", variants=()),
        "colbert": make_tiny_model_dir("colbert", root / "tiny-colbert", variants=(), dim=16),
    }

    def get(fmt: str, arch: str) -> tuple[str, Path]:
        if (fmt, arch) not in built:
            src = write_reference_checkpoint(fmt, root / f"{fmt}-{arch}-src", arch=arch)
            out = import_checkpoint(src, root / f"{fmt}-{arch}")
            export_model_dir(out, variants=())
            built[fmt, arch] = out
        return REFERENCE_FORMATS[fmt], built[fmt, arch]

    built["get"] = get
    return built


@pytest.mark.parametrize(("fmt", "arch"), FAMILIES)
def test_public_model_ingests_and_searches(engine, engine_index, public_models, fmt: str, arch: str) -> None:
    kind, model = public_models["get"](fmt, arch)
    splade_dir = model if kind == "splade" else public_models["splade"]
    colbert_dir = model if kind == "colbert" else public_models["colbert"]
    pair = load_encoder_pair(splade_dir, colbert_dir, variant="fp32")
    docs = [{"id": f"d{i}", "title": t, "text": x} for i, (t, x) in enumerate(TEXTS)]
    summary = ingest(docs, engine, engine_index, pair, fields=FieldMapping(id_field="id"), progress=False)
    assert summary.indexed == len(TEXTS) and summary.dead_lettered == 0, summary.reasons
    engine.refresh(engine_index)
    client = SearchClient(
        engine_index,
        splade_model=splade_dir,
        colbert_model=colbert_dir,
        client=engine,
        encoder_options={"variant": "fp32"},
    )
    result = client.search(QUERY, k=len(TEXTS), window=len(TEXTS), plan="splade+colbert")
    assert result.hits and result.round_trips == 1
    assert all("maxsim" in h.stage_scores for h in result.hits)
    # the first stage is the model's own sparse dot product, through the engine
    splade = load_encoder(splade_dir, variant="fp32")
    query_terms = splade.encode_queries([QUERY])[0]
    doc_texts = [f"{t}\n{x}" for t, x in TEXTS]
    doc_terms = dict(zip([d["id"] for d in docs], splade.encode_documents(doc_texts), strict=True))
    for hit in result.hits:
        expected = sum(w * doc_terms[hit.id].get(t, 0.0) for t, w in query_terms.items())
        assert np.isclose(hit.stage_scores["first_stage"], expected, rtol=0.01, atol=1e-3), (hit, expected)
    fused = client.search(QUERY, k=2, plan="bm25+colbert(fused)")
    assert fused.hits and fused.round_trips == 1
