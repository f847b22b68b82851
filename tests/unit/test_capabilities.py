"""Capabilities probed from a node's modules, plugins and attributes: which analyser a BM25 index made by
colsplade gets, and which k-NN fields a node can index (pure)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest

from colsplade.config import Settings
from colsplade.engines import Capabilities, connect, spec_for
from colsplade.exceptions import InvalidInputError
from colsplade.mappings import FieldSpec


def _caps(*modules: str) -> Capabilities:
    return Capabilities(
        engine="opensearch",
        version="2.19.1",
        rank_features=True,
        sparse_vector=False,
        painless=True,
        knn=True,
        modules=modules,
    )


def test_auto_is_english_where_the_language_analysers_are():
    full = _caps("analysis-common", "lang-painless", "mapper-extras")
    assert full.language_analyzers and full.resolve_analyzer() == "english"
    assert full.resolve_analyzer("french") == "french"  # any analyser the module brings
    assert full.resolve_analyzer("standard") == "standard"


def test_a_node_without_analysis_common_gets_standard_and_refuses_english():
    bare = _caps("mapper-extras")
    assert not bare.language_analyzers and bare.resolve_analyzer() == "standard"
    assert bare.resolve_analyzer("whitespace") == "whitespace"
    with pytest.raises(InvalidInputError, match=r"no 'english' analyser .*analysis-common"):
        bare.resolve_analyzer("english")


def _probed(attributes: dict[str, str] | None) -> Capabilities:
    """The capabilities a client reads from a ``_nodes/_local/plugins`` answer (no engine needed)."""
    client = connect(Settings(urls=("http://127.0.0.1:9",), engine="opensearch"))
    node: dict[str, Any] = {
        "version": "3.5.0",
        "modules": [{"name": "mapper-extras"}],
        "plugins": [{"name": "opensearch-knn"}],
    }
    if attributes is not None:
        node["attributes"] = attributes
    client.request = lambda *args, **kwargs: {"nodes": {"n1": node}}  # type: ignore[method-assign]
    return client.capabilities()


def test_a_node_says_when_its_knn_plugin_lacks_the_native_libraries():
    # colsplade's local OpenSearch from Maven Central marks itself; any other node is taken as whole
    assert not _probed({"colsplade_knn_native": "false"}).knn_native
    assert _probed({"zone": "a"}).knn_native
    assert _probed(None).knn_native


@pytest.mark.parametrize(
    "spec",
    [
        FieldSpec(nested_vectors=True, colbert_dim=64, element_type="bit"),
        FieldSpec(nested_vectors=True, colbert_dim=16, knn_engine="faiss"),
    ],
)
def test_native_knn_fields_are_refused_where_the_node_has_no_native_libraries(spec: FieldSpec):
    without = dataclasses.replace(_caps("mapper-extras"), knn_native=False)
    client = SimpleNamespace(engine="opensearch", capabilities=lambda: without)
    with pytest.raises(InvalidInputError, match="no native libraries"):
        spec_for(client, spec)  # type: ignore[arg-type]
    whole = SimpleNamespace(engine="opensearch", capabilities=lambda: _caps("mapper-extras"))
    assert spec_for(whole, spec) == spec  # type: ignore[arg-type]
