"""A real secured node (HTTPS from a CA made at test time, users with passwords): TLS verification,
authentication, the two least-privilege roles, secrets kept out of every output, and query / field values
that look like DSL or scripts treated as data.

The same tests run on each engine of ``--colsplade-secure-engines`` (default ``opensearch``; e.g.
``opensearch,elasticsearch``): a local OpenSearch with its security plugin (users and roles through its
REST API), a local Elasticsearch with its security module and file realm (users and roles written into the
node's files, which it reloads within about a second), or the cluster ``COLSPLADE_TEST_SECURE_URL`` names.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import colsplade
from colsplade.cli import main
from colsplade.engines import connect, delete_user, ingest_role, search_role
from colsplade.exceptions import (
    EngineAuthenticationError,
    EngineAuthorizationError,
    EngineCertificateError,
)
from colsplade.ingest import FieldMapping, IterableSource, ingest, reindex
from colsplade.local import make_certificates
from colsplade.query import SearchClient

pytestmark = pytest.mark.integration

WORDS = ["cell", "gene", "protein", "virus", "immune", "cancer", "patient", "blood", "brain", "mouse"]
INJECTIONS = [
    '"}}, "script": {"source": "ctx._source.title = \'pwned\'"}, "x": {"',
    "doc['title'].value + params._source; System.exit(0)",
    '{"query": {"match_all": {}}, "size": 10000}',
    "cancer' OR 1=1 -- \\\" \\u0000 }]}",
]


def _docs(n: int, prefix: str = "d") -> list[dict]:
    rng = np.random.default_rng(7)
    return [
        {
            "_id": f"{prefix}{i}",
            "title": " ".join(rng.choice(WORDS, 2)),
            "text": " ".join(rng.choice(WORDS, 12)),
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def encoder(tiny_joint_model):
    from colsplade.encoders import load_encoder

    return load_encoder(tiny_joint_model, variant="int8")


@pytest.fixture
def team(secured_engine):
    """A fresh namespace of indices and its two users: ingest may write ``<ns>*``, search may read it."""
    ns = f"sec-{uuid.uuid4().hex[:8]}"
    secured_engine.add_role(f"{ns}-ingest", ingest_role([f"{ns}*"], engine=secured_engine.engine))
    secured_engine.add_role(f"{ns}-search", search_role([f"{ns}*"], engine=secured_engine.engine))
    users = {
        "ingest": secured_engine.add_user([f"{ns}-ingest"]),
        "search": secured_engine.add_user([f"{ns}-search"]),
    }
    yield ns, users
    with secured_engine.admin_client() as admin:
        for name in admin.request("GET", "/_cat/indices", params={"format": "json", "h": "index"}):
            if name["index"].startswith(ns):
                admin.delete_index(name["index"])


def _secrets(*settings) -> list[str]:
    return [s.password.reveal() for s in settings if s.password is not None]


def _assert_no_secret(secrets: list[str], *texts: str) -> None:
    for secret in secrets:
        assert len(secret) >= 12
        for text in texts:
            assert secret not in text


def test_https_ingest_then_search_with_least_privilege_users(secured_engine, team, encoder, caplog):
    caplog.set_level(logging.DEBUG)
    ns, users = team
    index = f"{ns}-docs"
    assert users["ingest"].verify_certs and users["ingest"].ca_certs
    with connect(users["ingest"]) as client:
        assert client.engine == secured_engine.engine
        summary = ingest(
            IterableSource(_docs(40)),
            client,
            index,
            encoder,
            fields=FieldMapping(id_field="_id", text_fields=("title", "text")),
            progress=False,
        )
    assert summary.indexed == 40 and summary.dead_lettered == 0
    searcher = SearchClient(index, encoder, settings=users["search"])
    result = searcher.search("cancer cells in the mouse brain", k=5)
    assert len(result.hits) == 5 and result.hits[0].score >= result.hits[-1].score
    hybrid = searcher.search("cancer gene", k=5, bm25_fields=["title", "text"])
    assert len(hybrid.hits) == 5
    searcher.close()
    _assert_no_secret(_secrets(*users.values()), caplog.text, json.dumps(summary.as_dict()), repr(users))


def test_wrong_ca_names_the_certificate_problem(secured_engine, tmp_path):
    other_ca = make_certificates(tmp_path / "other")
    wrong = secured_engine.admin.replace(ca_certs=str(other_ca.ca_certs))
    with pytest.raises(EngineCertificateError) as info:
        connect(wrong).health()
    message = str(info.value)
    assert "certificate" in message and "COLSPLADE_CA_CERTS" in message
    assert any(word in message for word in ("issuer", "self-signed", "self signed", "verify"))
    # No CA at all: the system store does not know the node's CA either.
    with pytest.raises(EngineCertificateError):
        connect(dataclasses.replace(secured_engine.admin, ca_certs=None)).health()
    _assert_no_secret(_secrets(secured_engine.admin), message, repr(info.value))
    with pytest.raises(Exception, match="does not exist"):
        connect(secured_engine.admin.replace(ca_certs=str(tmp_path / "missing.pem")))


def test_wrong_or_missing_credentials_fail_as_authentication(
    secured_engine, team, tiny_joint_model, caplog, tmp_path
):
    caplog.set_level(logging.DEBUG)
    ns, users = team
    wrong = users["ingest"].replace(password="not-the-password-" + uuid.uuid4().hex)
    for settings in (
        wrong,
        secured_engine.settings("nobody-" + uuid.uuid4().hex[:6], "whatever-password-1"),
        secured_engine.settings(),
    ):
        with pytest.raises(EngineAuthenticationError) as info:
            connect(dataclasses.replace(settings, engine=None)).health()
        assert info.value.status == 401 and "authentication failed" in str(info.value)
        _assert_no_secret(
            _secrets(settings, users["ingest"]), str(info.value), repr(info.value), repr(settings)
        )
    if wrong.username:
        assert wrong.username in str(info.value) or "no user" in str(info.value)
    # Through the CLI, with the password in the environment as the README says: exit code, message, no secret.
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps(d) for d in _docs(3)))
    env = {
        "COLSPLADE_URL": secured_engine.url,
        "COLSPLADE_CA_CERTS": secured_engine.ca_certs,
        "COLSPLADE_USERNAME": wrong.username,
        "COLSPLADE_PASSWORD": wrong.password.reveal(),
    }
    run = CliRunner().invoke(
        main,
        ["ingest", str(docs), "--index", f"{ns}-cli", "--model", str(tiny_joint_model), "--no-progress"],
        env=env,
    )
    assert run.exit_code == 9 and "authentication failed" in run.output, run.output
    _assert_no_secret([wrong.password.reveal()], run.output, caplog.text)


def test_revoked_user_is_refused_at_once(secured_engine):
    revoked = secured_engine.add_user([])
    with connect(revoked) as client:
        assert client.engine == secured_engine.engine
        if secured_engine.file_realm:
            # A file realm: the node refuses the user from its next reload of the users file (about a
            # second), which remove_user waits for; the connected client's next request is refused.
            secured_engine.remove_user(revoked)
        else:  # through the security REST API, as an operator revokes a job's user
            with secured_engine.admin_client() as admin:
                delete_user(admin, revoked.username)
        with pytest.raises(EngineAuthenticationError) as info:
            client.health()
    assert revoked.username in str(info.value)
    _assert_no_secret(_secrets(revoked), str(info.value), repr(info.value))


def test_search_role_cannot_write(secured_engine, team, encoder, tmp_path):
    ns, users = team
    fields = FieldMapping(id_field="_id", text_fields=("title", "text"))
    dead = tmp_path / "dead.jsonl"
    with connect(users["search"]) as client:
        # A new index: refused at its creation.
        with pytest.raises(EngineAuthorizationError) as info:
            ingest(IterableSource(_docs(5)), client, f"{ns}-new", encoder, fields=fields, progress=False)
        # refused at the index's existence check (HEAD, no indices:admin/get) or at its creation
        assert info.value.status == 403
        assert "indices:admin/create" in str(info.value) or f"HEAD /{ns}-new refused" in str(info.value)
    with secured_engine.admin_client() as admin:
        assert not admin.index_exists(f"{ns}-new")
    # An index that exists (made by the ingest user): the first bulk is refused, nothing is written and
    # no document is dead-lettered, since none of them is bad.
    with connect(users["ingest"]) as client:
        ingest(IterableSource(_docs(2)), client, f"{ns}-docs", encoder, fields=fields, progress=False)
    with connect(users["search"]) as client:
        with pytest.raises(EngineAuthorizationError) as info:
            ingest(
                IterableSource(_docs(30, prefix="w")),
                client,
                f"{ns}-docs",
                encoder,
                fields=fields,
                dead_letter=dead,
                progress=False,
            )
        assert "write" in str(info.value) or "indices:" in str(info.value)
        assert client.count(f"{ns}-docs") == 2
    assert not dead.exists() or dead.read_text() == ""


def test_ingest_role_cannot_read_another_index(secured_engine, team, encoder):
    _, users = team
    other = f"other-{uuid.uuid4().hex[:8]}"
    with secured_engine.admin_client() as admin:
        admin.index_document(other, "secret-doc", {"title": "payroll"}, refresh=True)
        try:
            with connect(users["ingest"]) as client:
                with pytest.raises(EngineAuthorizationError):
                    client.search(other, {"query": {"match_all": {}}})
                with pytest.raises(EngineAuthorizationError):
                    client.get_document(other, "secret-doc")
                with pytest.raises(EngineAuthorizationError):
                    client.delete_index(other)
            assert admin.count(other) == 1
        finally:
            admin.delete_index(other)


def test_ingest_role_reencodes_its_source_index_behind_an_alias(secured_engine, team, encoder):
    ns, _ = team
    source = f"legacy-{uuid.uuid4().hex[:8]}"
    role = ingest_role([f"{ns}*"], source_patterns=[source], engine=secured_engine.engine)
    secured_engine.add_role(f"{ns}-migrate", role)
    migrate = secured_engine.add_user([f"{ns}-migrate"])
    with secured_engine.admin_client() as admin:
        for doc in _docs(12):
            admin.index_document(source, doc.pop("_id"), doc)
        admin.refresh(source)
        try:
            with connect(migrate) as client:
                summary = reindex(client, source, encoder, alias=f"{ns}-search", progress=False)
                assert summary.indexed == 12 and summary.alias_switched
                assert client.count(f"{ns}-search") == 12
                with pytest.raises(EngineAuthorizationError):  # read-only on the source
                    client.index_document(source, "x", {"title": "y"})
        finally:
            admin.delete_index(source)


def test_client_certificate_authenticates_without_a_password(secured_engine):
    if secured_engine.node is None:
        pytest.skip("client certificates of an external cluster are not known here")
    if secured_engine.file_realm:
        pytest.skip(
            "Elasticsearch's PKI realm (client certificates) needs a Gold licence; the local node runs on "
            "Basic, where only the file and native realms authenticate"
        )
    from colsplade.local._secure import tls_files

    files = tls_files(secured_engine.node.home)
    settings = secured_engine.settings().replace(
        client_cert=str(files.admin_cert), client_key=str(files.admin_key)
    )
    with connect(settings) as client:
        assert client.health()["status"] in ("green", "yellow")


def test_quickstart_and_eval_run_on_the_secured_node(secured_engine, team, tiny_joint_model, tmp_path):
    ns, users = team
    settings = users["ingest"]
    env = {
        "COLSPLADE_URL": secured_engine.url,
        "COLSPLADE_CA_CERTS": secured_engine.ca_certs,
        "COLSPLADE_USERNAME": settings.username,
        "COLSPLADE_PASSWORD": settings.password.reveal(),
    }
    quick = CliRunner().invoke(
        main,
        ["quickstart", "--model", str(tiny_joint_model), "--index", f"{ns}-quick", "--no-progress"],
        env=env,
    )
    assert quick.exit_code == 0, quick.output
    assert "1. [" in quick.output
    evaluated = CliRunner().invoke(
        main,
        [
            "eval",
            "--dataset",
            str(Path(colsplade.__file__).parent / "data" / "scifact_sample"),
            "--model",
            str(tiny_joint_model),
            "--index",
            f"{ns}-quick",
            "--max-queries",
            "4",
            "--plan",
            "splade+colbert(client)",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        env=env,
    )
    assert evaluated.exit_code == 0, evaluated.output
    written = next(tmp_path.glob("eval-*.json")).read_text()
    assert json.loads(written)["queries"] == 4
    _assert_no_secret([settings.password.reveal()], quick.output, evaluated.output, written)


def test_dsl_and_script_text_is_data(secured_engine, team, encoder):
    ns, users = team
    index = f"{ns}-inject"
    docs = [{"_id": f"i{i}", "title": text, "text": "cancer " + text} for i, text in enumerate(INJECTIONS)]
    with connect(users["ingest"]) as client:
        summary = ingest(
            IterableSource(docs), client, index, encoder, fields=FieldMapping(id_field="_id"), progress=False
        )
        assert summary.indexed == len(docs)
    searcher = SearchClient(index, encoder, settings=users["search"])
    sent: list[dict] = []
    real_search, real_msearch = searcher.client.search, searcher.client.msearch

    def recording(index_name, body, params=None):
        sent.append(json.loads(json.dumps(body)))
        return real_search(index_name, body, params)

    def recording_many(index_name, bodies):  # the hybrid's sub-searches travel in one _msearch
        sent.extend(json.loads(json.dumps(body)) for body in bodies)
        return real_msearch(index_name, bodies)

    searcher.client.search = recording
    searcher.client.msearch = recording_many
    try:
        for text in INJECTIONS:
            result = searcher.search(text, k=10, bm25_fields=["title", "text"])
            assert 1 <= len(result.hits) <= len(docs)
    finally:
        searcher.close()
    places = [path for body in sent for path in _where(body, INJECTIONS)]
    # Each text reaches the engine only as the value of a match query's "query", never as a key, a script
    # source or a query of its own.
    assert len(places) >= len(INJECTIONS) and all(path[-1] == "query" for path in places), places
    assert not any("script" in key for body in sent for key in _keys(body))
    with connect(users["search"]) as client:
        for doc in docs:
            stored = client.get_document(index, doc["_id"])["_source"]
            assert stored["title"] == doc["title"]


def _keys(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value)


def _where(node, needles, path=()):
    """The paths of the dict keys whose string value holds one of ``needles``."""
    if isinstance(node, dict):
        for key, value in node.items():
            assert not any(n in str(key) for n in needles), key
            yield from _where(value, needles, (*path, key))
    elif isinstance(node, list):
        for value in node:
            yield from _where(value, needles, path)
    elif isinstance(node, str) and any(n in node for n in needles):
        yield path
