"""The elasticsearch Python client a team has, 8.x or 9.x, against the server majors it supports.

CI runs the whole suite with the client a fresh install resolves (9.x) on Elasticsearch 9, and the
engine-facing files again with the 8.x client on Elasticsearch 8 and 9 (``.ci/run``). What is left to test
here is the pair that cannot work: a 9.x client asks for the REST API of Elasticsearch 9, which an 8.x
server cannot give; colsplade must say what to install, not pass on a media-type error.
"""

from __future__ import annotations

import uuid

import elasticsearch
import pytest

from colsplade.engines import BulkAction, bulk_write, connect
from colsplade.exceptions import EngineRefusedError
from colsplade.local import PREVIOUS_VERSIONS, start_node

pytestmark = pytest.mark.integration

CLIENT_MAJOR = int(elasticsearch.__versionstr__.split(".")[0])


def test_the_installed_client_talks_to_the_server_it_supports(engine) -> None:
    if engine.engine != "elasticsearch":
        pytest.skip("opensearch-py talks to OpenSearch 2 and 3")
    server_major = engine.capabilities().version_tuple[0]  # the integ-test zip serves no GET /
    # the 8.x client talks to 8 and 9; the 9.x client to 9 only (the pair CI never builds is tested below)
    assert server_major >= CLIENT_MAJOR
    assert engine.health()["status"] in ("green", "yellow")
    # the official client's own APIs (msearch, the bulk helper) send its compatibility headers too
    index = f"client-{uuid.uuid4().hex[:8]}"
    engine.request("PUT", f"/{index}")
    try:
        [written] = bulk_write(engine, [BulkAction(index, "1", {"title": "one"})])
        assert written.ok, written
        engine.request("POST", f"/{index}/_refresh")
        responses = engine.msearch(index, [{"query": {"match_all": {}}}])
        assert [h["_id"] for h in responses[0]["hits"]["hits"]] == ["1"]
    finally:
        engine.request("DELETE", f"/{index}")


@pytest.mark.skipif(CLIENT_MAJOR < 9, reason="the 8.x client talks to Elasticsearch 8 (tested on 8.19 in CI)")
def test_a_9x_client_on_an_8x_server_says_which_client_to_install(tmp_path) -> None:
    node = start_node(
        "elasticsearch",
        PREVIOUS_VERSIONS["elasticsearch"],
        name=f"pytest-client-{uuid.uuid4().hex[:6]}",
        ephemeral=True,
    )
    try:
        with connect(url=node.url) as client, pytest.raises(EngineRefusedError) as info:
            client.health()
        message = str(info.value)
        assert "elasticsearch>=8.13,<9" in message and "Elasticsearch 9 only" in message, message
        assert info.value.status == 400 and info.value.error_type == "media_type_header_exception"
    finally:
        node.stop()
