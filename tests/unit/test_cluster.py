"""Cluster pieces that need no engine: shard counts of an answer, partial flags, discovery settings."""

from __future__ import annotations

import pickle

from click.testing import CliRunner

from colsplade.cli import main
from colsplade.exceptions import EngineError, PartialResultError
from colsplade.local import cluster_heap
from colsplade.local._cluster import _discovery_settings
from colsplade.query import SearchResult, ShardStats

ES_LOST_SHARD = {
    "timed_out": False,
    "_shards": {
        "total": 3,
        "successful": 2,
        "skipped": 0,
        "failed": 1,
        "failures": [
            {
                "shard": 2,
                "index": "r0",
                "node": None,
                "reason": {"type": "no_shard_available_action_exception"},
            }
        ],
    },
}
# what OpenSearch 2.19 answers for a primary that is unassigned: left out of "successful", never "failed"
OS_LOST_SHARD = {"timed_out": False, "_shards": {"total": 3, "successful": 2, "skipped": 0, "failed": 0}}
COMPLETE = {"timed_out": False, "_shards": {"total": 3, "successful": 3, "skipped": 1, "failed": 0}}


def test_shard_counts_flag_every_kind_of_partial_answer():
    es, os_, full = (ShardStats.from_answer(a) for a in (ES_LOST_SHARD, OS_LOST_SHARD, COMPLETE))
    assert es.partial and es.failed == 1 and es.failures == ("r0[2]: no_shard_available_action_exception",)
    assert os_.partial and os_.failed == 0 and not os_.failures
    assert not full.partial and full.skipped == 1
    timed_out = ShardStats.from_answer({**COMPLETE, "timed_out": True})
    assert timed_out.partial
    assert ShardStats.from_answer({"hits": {}}) is None


def test_worst_of_several_round_trips():
    es, full = ShardStats.from_answer(ES_LOST_SHARD), ShardStats.from_answer(COMPLETE)
    assert full.worst(None) is full and full.worst(full) is full
    assert full.worst(es) is es and es.worst(full) is es
    both = es.worst(ShardStats.from_answer(OS_LOST_SHARD))
    assert both.partial and both.successful == 2 and both.failed == 1


def test_search_result_without_shard_counts_is_not_partial():
    result = SearchResult(query="q", hits=[], rerank="none", window=10, candidates=0, timings_ms={})
    assert not result.partial and result.shards is None
    result.shards = ShardStats.from_answer(OS_LOST_SHARD)
    assert result.partial


def test_partial_result_error_is_typed_and_pickles():
    shards = ShardStats.from_answer(ES_LOST_SHARD)
    error = PartialResultError("docs", shards.total, shards.successful, shards.failures, shards)
    assert isinstance(error, EngineError)
    assert "from 2 of 3 shards" in str(error) and "r0[2]" in str(error)
    again = pickle.loads(pickle.dumps(error))
    assert (again.total, again.successful, again.shards, str(again)) == (3, 2, shards, str(error))


def test_discovery_settings_seed_every_node_on_loopback():
    names = ["a-0", "a-1", "a-2"]
    es = _discovery_settings("elasticsearch", "colsplade-a", names, [9300, 9301, 9302], 1)
    assert es["discovery.type"] is None  # the single-node default is dropped
    assert es["discovery.seed_hosts"] == "127.0.0.1:9300,127.0.0.1:9301,127.0.0.1:9302"
    assert es["transport.port"] == "9301" and es["node.name"] == "a-1"
    assert es["cluster.initial_master_nodes"] == "a-0,a-1,a-2"
    os_ = _discovery_settings("opensearch", "colsplade-a", names, [9300, 9301, 9302], 0)
    assert os_["cluster.initial_cluster_manager_nodes"] == "a-0,a-1,a-2"
    assert "cluster.initial_master_nodes" not in os_


def test_cluster_heap_fits_the_machine():
    assert cluster_heap(3, 23 * 1024**3) == "512m"
    assert cluster_heap(5, 2 * 1024**3) == "256m"
    assert cluster_heap(1, 256 * 1024**3) == "1g"


def test_engine_up_refuses_a_port_for_a_cluster():
    result = CliRunner().invoke(main, ["engine", "up", "--nodes", "3", "--port", "9200"])
    assert result.exit_code == 2 and "--port is for one node" in result.output
