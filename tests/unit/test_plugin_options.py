"""The pytest plugin's engine list: ENGINE or ENGINE:VERSION entries, refused with the reason otherwise."""

from __future__ import annotations

import pytest

from colsplade.testing.plugin import parse_engine_versions


def test_engine_entries_keep_their_order_and_versions() -> None:
    assert parse_engine_versions("opensearch:2.19.1, elasticsearch,,opensearch:2.19.1") == [
        ("opensearch", "2.19.1"),
        ("elasticsearch", None),
    ]


@pytest.mark.parametrize(
    ("text", "match"), [("solr", "unknown engine"), ("elasticsearch:9.x", "MAJOR.MINOR")]
)
def test_bad_engine_entries_are_refused(text: str, match: str) -> None:
    with pytest.raises(pytest.UsageError, match=match):
        parse_engine_versions(text)
