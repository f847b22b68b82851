"""Which engine versions start here, how long they take, and which colsplade features each has.

    python benchmarks/engine_features.py [--out benchmarks/results/engine_features.json]

Starts each engine's local node with throw-away data (install time reported separately when the
distribution was not cached yet), probes the features colsplade relies on against the real node, and
writes JSON with the machine, versions and results. Nothing here is mocked: a probe that fails records
the engine's own error.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_report

from colsplade.engines import connect
from colsplade.exceptions import ColspladeError
from colsplade.local import DEFAULT_VERSIONS, install_distribution, start_node
from colsplade.mappings import FieldSpec, colsplade_properties, escape_impacts, index_settings
from colsplade.query import nested_knn_query, sparse_query

DIM = 16


def _probe(name: str, fn, results: dict) -> None:
    try:
        results[name] = {"ok": True, **(fn() or {})}
    except (ColspladeError, AssertionError, KeyError, IndexError) as exc:
        results[name] = {"ok": False, "error": str(exc)[:400]}


def probe_engine(engine: str, version: str) -> dict:
    out: dict = {"engine": engine, "version": version}
    t0 = time.monotonic()
    home = install_distribution(engine, version)
    out["install_seconds_if_not_cached"] = round(time.monotonic() - t0, 1)
    node = start_node(engine, version, name=f"bench-{uuid.uuid4().hex[:6]}", ephemeral=True)
    out["startup_seconds"] = node.startup_seconds
    out["home"] = str(home)
    try:
        client = connect(url=node.url, engine=engine)
        caps = client.capabilities()
        out["capabilities"] = {
            "rank_features": caps.rank_features,
            "sparse_vector": caps.sparse_vector,
            "painless": caps.painless,
            "knn": caps.knn,
            "modules": list(caps.modules),
            "plugins": list(caps.plugins),
        }
        features: dict = {}
        rng = np.random.default_rng(0)

        splade_type = caps.splade_type

        def fresh(spec: FieldSpec) -> str:
            name = f"probe-{uuid.uuid4().hex[:8]}"
            client.create_index(
                name,
                {
                    "settings": index_settings(engine, spec),
                    "mappings": {"properties": colsplade_properties(engine, spec)},
                },
            )
            return name

        def sparse(splade_type: str):
            spec = FieldSpec(
                nested_vectors=True, colbert_dim=DIM, splade_type=splade_type, index_vectors=False
            )
            idx = fresh(spec)
            client.index_document(idx, "d", {"splade": escape_impacts({"a.b": 1.5, "c": 0.5})}, refresh=True)
            hit = client.search(idx, {"query": sparse_query({"a.b": 2.0, "c": 1.0}, spec)})["hits"]["hits"][0]
            assert abs(hit["_score"] - 3.5) / 3.5 < 0.01, hit
            return {"score": hit["_score"], "expected": 3.5}

        _probe("rank_features+rank_feature_query", lambda: sparse("rank_features"), features)
        if engine == "elasticsearch":
            _probe("sparse_vector+term_query", lambda: sparse("sparse_vector"), features)

        def nested_knn(element_type: str, knn_engine: str = "lucene", index_vectors: bool = True):
            dim = DIM * 8 if element_type == "bit" else DIM
            spec = FieldSpec(
                nested_vectors=True,
                colbert_dim=dim,
                element_type=element_type,
                knn_engine=knn_engine,
                index_vectors=index_vectors,
                splade_type=splade_type,
            )
            idx = fresh(spec)
            if element_type == "float":
                vectors = rng.normal(size=(3, dim))
                vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).round(6).tolist()
            else:
                vectors = rng.integers(-127, 128, size=(3, DIM)).tolist()
            client.index_document(idx, "d", {"colbert": [{"v": v} for v in vectors]}, refresh=True)
            client.flush(idx)
            client.refresh(idx)
            result: dict = {"stored": True}
            if index_vectors:
                hits = client.search(idx, {"query": nested_knn_query(engine, vectors[1], spec, k=1)})["hits"][
                    "hits"
                ]
                assert hits and hits[0]["_id"] == "d"
                result["nested_knn"] = True
            return result

        for element_type in ("float", "byte", "bit"):
            _probe(
                f"nested_vector_{element_type}_stored_only",
                lambda et=element_type: nested_knn(et, index_vectors=False),
                features,
            )
        for element_type in ("float", "byte"):
            _probe(f"nested_vector_{element_type}_knn", lambda et=element_type: nested_knn(et), features)

        def painless_nested():
            spec = FieldSpec(
                nested_vectors=True, colbert_dim=DIM, index_vectors=False, splade_type=splade_type
            )
            idx = fresh(spec)
            v = rng.normal(size=(2, DIM))
            v = v / np.linalg.norm(v, axis=1, keepdims=True)
            client.index_document(idx, "d", {"colbert": [{"v": row.tolist()} for row in v]}, refresh=True)
            fn = "cosineSimilarity" if engine == "opensearch" else "dotProduct"
            body = {
                "query": {
                    "nested": {
                        "path": "colbert",
                        "score_mode": "max",
                        "query": {
                            "script_score": {
                                "query": {"match_all": {}},
                                "script": {
                                    "source": f"1.0 + {fn}(params.q, doc['colbert.v'])",
                                    "params": {"q": v[0].tolist()},
                                },
                            }
                        },
                    }
                }
            }
            score = client.search(idx, body)["hits"]["hits"][0]["_score"]
            assert abs(score - 2.0) < 1e-3, score
            return {"function": fn, "score": score}

        _probe("painless_vector_function_in_nested_script_score", painless_nested, features)
        # Last: on OpenSearch these need the k-NN native libraries (faiss), which may take the node down.
        native_probes = [("nested_vector_bit_knn", lambda: nested_knn("bit"))]
        if engine == "opensearch":
            native_probes.append(("nested_knn_float_faiss", lambda: nested_knn("float", knn_engine="faiss")))
        for name, fn in native_probes:
            if not node.is_running():
                features[name] = {
                    "ok": False,
                    "error": "not attempted: the node died during an earlier probe",
                }
                continue
            _probe(name, fn, features)
            if not node.is_running():
                features[name]["node_died"] = True
        out["features"] = features
        log = Path(node.log_file).read_text(errors="replace")
        out["native_library_errors_in_log"] = [
            line[:300]
            for line in log.splitlines()
            if "UnsatisfiedLinkError" in line or "opensearchknn" in line.lower()
        ][:5]
        client.close()
    finally:
        node.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results/engine_features.json")
    parser.add_argument("--elasticsearch-version", default=DEFAULT_VERSIONS["elasticsearch"])
    parser.add_argument("--opensearch-version", default=DEFAULT_VERSIONS["opensearch"])
    args = parser.parse_args()
    engines = [
        probe_engine("elasticsearch", args.elasticsearch_version),
        probe_engine("opensearch", args.opensearch_version),
    ]
    write_report(args.out, {"engines": engines})


if __name__ == "__main__":
    main()
