"""Capabilities probed from a node's modules: which analyser a BM25 index made by colsplade gets (pure)."""

from __future__ import annotations

import pytest

from colsplade.engines import Capabilities
from colsplade.exceptions import InvalidInputError


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
