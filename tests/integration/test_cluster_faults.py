"""Node loss on a real 3-node cluster (3 primary shards, 1 replica), both engines: SIGKILL mid-ingest and
during a stream of queries, then a restart. Slow (the ``cluster`` fixture starts three JVMs per engine)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from colsplade.config import Settings
from colsplade.engines import EngineClient, connect
from colsplade.exceptions import ColspladeError, PartialResultError
from colsplade.ingest import Batching, CodecOptions, FieldMapping, Layout, RetryPolicy, ingest
from colsplade.local import LocalCluster
from colsplade.query import SearchClient
from colsplade.testing import TINY_WORDS

WORDS = [w for w in TINY_WORDS if len(w) > 3]
#: the stream's client: a request to a dead node is retried on another; nothing may take longer than this
REQUEST_TIMEOUT, MAX_RETRIES = 5.0, 2
QUERY_BOUND_S = REQUEST_TIMEOUT * (MAX_RETRIES + 1) + 2.0


@pytest.fixture(scope="module")
def encoder(tiny_joint_model):
    from colsplade.encoders import load_encoder

    return load_encoder(tiny_joint_model, variant="int8")


def _docs(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"_id": f"d{i}", "title": " ".join(rng.choice(WORDS, 3)), "text": " ".join(rng.choice(WORDS, 24))}
        for i in range(n)
    ]


def _client(cluster: LocalCluster) -> EngineClient:
    settings = Settings(
        urls=tuple(cluster.urls),
        engine=cluster.engine,
        request_timeout=REQUEST_TIMEOUT,
        max_retries=MAX_RETRIES,
    )
    return connect(settings)


def _ingest(client, index, encoder, docs, *, replicas=1, on_batch=None):
    return ingest(
        docs,
        client,
        index,
        encoder,
        fields=FieldMapping(id_field="_id", text_fields=("title", "text")),
        layout=Layout(shards=3, replicas=replicas),
        batching=Batching(encode_batch_size=16, bulk_docs=40),
        codec=CodecOptions(sample_tokens=2000),
        retry=RetryPolicy(max_retries=30, initial_backoff=0.2, max_backoff=2.0, max_elapsed=120),
        progress=False,
        on_batch=on_batch,
    )


def _all_ids(client, index) -> list[str]:
    client.refresh(index)
    body = {"size": 10000, "_source": False, "query": {"match_all": {}}}
    return [h["_id"] for h in client.search(index, body)["hits"]["hits"]]


def _primary_holder(client, cluster: LocalCluster, index: str, shard: int = 0) -> int:
    """The cluster's index of the node holding the primary of ``shard``."""
    rows = client.request("GET", f"/_cat/shards/{index}", params={"format": "json"})
    node = next(r["node"] for r in rows if int(r["shard"]) == shard and r["prirep"] == "p")
    return cluster.node_names.index(node.removeprefix(f"colsplade-{cluster.engine}-"))


def _restart_green(cluster: LocalCluster, victim: int) -> None:
    cluster.restart(victim)
    health = cluster.wait_for("green", timeout=180, nodes=3)
    assert health["status"] == "green" and health["number_of_nodes"] == 3


def test_node_killed_mid_ingest(cluster, encoder):
    client = _client(cluster)
    index = "faults-ingest"
    docs = _docs(600, seed=1)
    # the index exists before the ingest starts, so the node holding a primary is known
    _ingest(client, index, encoder, docs[:40])
    victim = _primary_holder(client, cluster, index)
    killer: list[threading.Thread] = []

    def kill_mid_run(summary) -> None:
        # from another thread, so the kill lands while the next bulk requests are in flight
        if not killer and summary.indexed >= 150:
            killer.append(threading.Thread(target=cluster.kill, args=(victim,)))
            killer[0].start()

    try:
        summary = _ingest(client, index, encoder, docs, on_batch=kill_mid_run)
        assert killer, "the node was never killed: the ingest ended before 150 documents"
        killer[0].join()
        assert cluster.node(victim) is None
        assert summary.indexed == len(docs) and summary.dead_lettered == 0, summary
        ids = _all_ids(client, index)
        # every document exactly once: each id found, no other, and the engine counts no more
        assert sorted(ids) == sorted(d["_id"] for d in docs)
        assert client.count(index) == len(docs)
    finally:
        _restart_green(cluster, victim)
    assert client.count(index) == len(docs)
    assert sorted(_all_ids(client, index)) == sorted(d["_id"] for d in docs)
    client.delete_index(index)
    client.close()


def _stream(search: SearchClient, queries: list[str], stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        for query in queries:
            t0 = time.monotonic()
            try:
                outcome: object = search.search(query, k=10)
            except Exception as exc:  # judged by the test: must be one of colsplade's typed errors
                outcome = exc
            out.append((query, outcome, time.monotonic() - t0, time.monotonic()))


def test_node_killed_during_queries(cluster, encoder):
    client = _client(cluster)
    replicated, bare = "faults-query", "faults-query-bare"
    docs = _docs(240, seed=2)
    _ingest(client, replicated, encoder, docs, replicas=1)
    _ingest(client, bare, encoder, docs, replicas=0)
    rng = np.random.default_rng(3)
    queries = [" ".join(rng.choice(WORDS, 3)) for _ in range(12)]
    # the window holds every document, so the order is MaxSim's alone, the same on any shard copy
    search = SearchClient(replicated, encoder, client=client, window=300)
    on_bare = SearchClient(bare, encoder, client=client, window=300)
    full = {q: search.search(q, k=10) for q in queries}
    baseline = {q: r.ids() for q, r in full.items()}
    assert baseline == {q: on_bare.search(q, k=10).ids() for q in queries}
    assert all(len(ids) == 10 and not full[q].partial for q, ids in baseline.items())
    victim = _primary_holder(client, cluster, replicated)
    stop, outcomes = threading.Event(), []
    streamer = threading.Thread(target=_stream, args=(search, queries, stop, outcomes))
    streamer.start()
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        cluster.kill(victim)
        time.sleep(3.0)
        # the replicas of the lost primaries are promoted (the index without replicas stays red)
        cluster.wait_for("yellow", timeout=60, nodes=2, index=replicated)
        time.sleep(1.0)
        stop.set()
        streamer.join(timeout=QUERY_BOUND_S + 10)
        assert not streamer.is_alive(), "a query hung past the client's timeout"
        after_kill = [o for o in outcomes if o[3] > killed_at]
        assert len(after_kill) >= len(queries), f"only {len(after_kill)} queries ran after the kill"
        for query, outcome, seconds, _ in outcomes:
            assert seconds <= QUERY_BOUND_S, f"{query!r} took {seconds:.1f} s"
            if isinstance(outcome, Exception):
                assert isinstance(outcome, ColspladeError), repr(outcome)
            elif outcome.partial:
                assert outcome.shards.failed or outcome.shards.successful < outcome.shards.total
            else:
                assert outcome.ids() == baseline[query], query
        # replicas promoted: every answer complete again, the same ids in the same order
        for query in queries:
            result = search.search(query, k=10)
            assert not result.partial and result.shards.failed == 0, result.shards
            assert result.shards.successful == result.shards.total == 3
            assert result.ids() == baseline[query], query
        # without replicas the dead node's primary is gone: the answer is flagged, never complete.
        # Elasticsearch counts the lost shard as failed; OpenSearch 2.19 only leaves it out of
        # "successful" (failed stays 0, no failure listed), which colsplade flags all the same.
        lost = on_bare.search(queries[0], k=10)
        assert lost.partial and lost.shards.successful == 2 and lost.shards.total == 3, lost.shards
        if cluster.engine == "elasticsearch":
            assert lost.shards.failed == 1 and lost.shards.failures, lost.shards
        assert lost.candidates < full[queries[0]].candidates
        with pytest.raises(PartialResultError) as raised:
            on_bare.search(queries[0], k=10, strict=True)
        assert raised.value.total == 3 and raised.value.successful == 2
    finally:
        stop.set()
        streamer.join(timeout=QUERY_BOUND_S + 10)
        _restart_green(cluster, victim)
    for index in (replicated, bare):
        assert client.count(index) == len(docs)
    for query in queries:
        for client_of in (search, on_bare):
            result = client_of.search(query, k=10, strict=True)
            assert not result.partial and result.ids() == baseline[query]
    for index in (replicated, bare):
        client.delete_index(index)
    client.close()


def test_cli_creates_a_sharded_index_through_several_urls(cluster):
    from click.testing import CliRunner

    from colsplade.cli import main

    # a URL where nothing listens first: the engine is still detected, the index still created
    urls = ",".join(["http://127.0.0.1:9", *cluster.urls])
    args = ["--url", urls, "index", "create", "faults-cli", "--dim", "16", "--shards", "3", "--replicas", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"created faults-cli on {cluster.engine}" in result.output
    client = _client(cluster)
    settings = client.get_settings("faults-cli")
    assert (settings["index.number_of_shards"], settings["index.number_of_replicas"]) == ("3", "1")
    assert cluster.wait_for("green", timeout=60, index="faults-cli")["active_shards"] == 6
    client.delete_index("faults-cli")
    client.close()
