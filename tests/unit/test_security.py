"""Pure parts of secured-cluster support: role builders, error typing, TLS problem extraction, certificates."""

from __future__ import annotations

import json
import socket
import ssl
import threading

import pytest
from click.testing import CliRunner

from colsplade.cli import main
from colsplade.config import Settings
from colsplade.engines import ingest_role, search_role
from colsplade.engines._client import _certificate_problem, refusal
from colsplade.exceptions import (
    EngineAuthenticationError,
    EngineAuthorizationError,
    EngineRefusedError,
    InvalidInputError,
)
from colsplade.local import make_certificates

#: What a read-only role must never hold (OpenSearch action names and Elasticsearch privileges).
WRITES = (
    "indices:data/write",
    "indices:admin/create",
    "indices:admin/delete",
    "indices:admin/mapping/put",
    "write",
    "create_index",
    "manage",
    "delete",
    "index",
    "all",
)


def _writes(action: str) -> bool:
    return action.startswith(WRITES) or action == "indices:admin/aliases"


def _actions(role: dict) -> list[str]:
    if "index_permissions" in role:
        return [a for p in role["index_permissions"] for a in p["allowed_actions"]] + role[
            "cluster_permissions"
        ]
    return [p for i in role["indices"] for p in i["privileges"]] + role["cluster"]


@pytest.mark.parametrize("engine", ["opensearch", "elasticsearch"])
def test_search_role_only_reads(engine: str) -> None:
    role = search_role(["docs*"], engine=engine)
    for action in _actions(role):
        assert not _writes(action), action
    assert json.loads(json.dumps(role)) == role


@pytest.mark.parametrize("engine", ["opensearch", "elasticsearch"])
def test_ingest_role_writes_its_patterns_and_only_reads_its_source(engine: str) -> None:
    role = ingest_role(["docs*"], source_patterns=["legacy"], engine=engine)
    groups = role.get("index_permissions") or role["indices"]
    own, source = groups
    own_actions = own.get("allowed_actions") or own["privileges"]
    source_actions = source.get("allowed_actions") or source["privileges"]
    assert (own.get("index_patterns") or own["names"]) == ["docs*"]
    assert any(_writes(a) for a in own_actions)
    assert not any(_writes(a) for a in source_actions)
    # never deletes an index (migrations keep the old version behind the alias)
    assert "indices:admin/delete" not in own_actions


def test_roles_refuse_empty_patterns() -> None:
    with pytest.raises(InvalidInputError, match="index pattern"):
        search_role([], engine="opensearch")
    with pytest.raises(InvalidInputError):
        ingest_role([" "], engine="elasticsearch")


def test_refusals_are_typed_by_status() -> None:
    body = {"error": {"root_cause": [{"type": "security_exception", "reason": "no permissions for [x]"}]}}
    assert type(refusal(401, body)) is EngineAuthenticationError
    denied = refusal(403, body)
    assert type(denied) is EngineAuthorizationError and "no permissions for [x]" in str(denied)
    assert "colsplade_ingest" in str(denied)  # says which role to grant
    block = {"error": {"type": "cluster_block_exception", "reason": "index read-only"}}
    assert type(refusal(403, block)) is EngineRefusedError  # a disk block is no missing privilege
    assert type(refusal(404, {"error": "nope"})) is EngineRefusedError
    assert isinstance(refusal(401, "Unauthorized"), EngineRefusedError)


def test_engine_roles_cli_prints_both_roles() -> None:
    result = CliRunner().invoke(main, ["engine", "roles", "--engine", "opensearch", "--index", "docs*"])
    assert result.exit_code == 0, result.output
    roles = json.loads(result.output)
    assert set(roles) == {"colsplade_ingest", "colsplade_search"}
    assert roles["colsplade_search"]["index_permissions"][0]["index_patterns"] == ["docs*"]


def test_settings_never_show_secrets() -> None:
    settings = Settings(urls=("https://es:9200",)).replace(username="u", password="hunter2-secret-pw")
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
    keyed = Settings(urls=("https://es:9200",)).replace(api_key="key-abcdef-secret")
    assert "abcdef" not in repr(keyed)
    with pytest.raises(InvalidInputError, match="client_cert"):
        Settings(client_key="key.pem")


def test_certificates_and_the_verification_problem(tmp_path) -> None:
    """A real TLS handshake against a server whose CA the client does not trust names the problem."""
    pytest.importorskip("cryptography")
    served = make_certificates(tmp_path / "served")
    other = make_certificates(tmp_path / "other")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(served.node_cert), str(served.node_key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with server_context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        for ca, trusted in ((served.ca_certs, True), (other.ca_certs, False)):
            client_context = ssl.create_default_context(cafile=str(ca))
            try:
                with (
                    socket.create_connection(("127.0.0.1", port)) as raw,
                    client_context.wrap_socket(raw, server_hostname="127.0.0.1"),
                ):
                    assert trusted
            except ssl.SSLCertVerificationError as exc:
                assert not trusted
                wrapped = ConnectionError("connection failed")
                wrapped.__cause__ = exc
                problem = _certificate_problem(wrapped)
                assert problem and "issuer" in problem
    finally:
        listener.close()
        thread.join(timeout=5)
    assert _certificate_problem(ConnectionError("refused")) is None
