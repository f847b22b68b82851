"""The file realm of a secured local Elasticsearch node, without a node: the formats of ``users``,
``users_roles`` and ``roles.yml``, the password hash, and writing a node's configuration directory."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from colsplade.engines import ROLE_NAMES, put_role, put_user, search_role
from colsplade.exceptions import EngineRefusedError, InvalidInputError
from colsplade.local._file_realm import (
    format_roles_yml,
    format_users,
    format_users_roles,
    hash_password,
    parse_roles_yml,
    parse_users,
    parse_users_roles,
    verify_password,
    write_local_users,
)
from colsplade.local._secure import (
    bootstrap_file_realm,
    elasticsearch_security_settings,
    local_users,
    node_config_dir,
)


def test_hash_is_elasticsearch_pbkdf2_and_verifies() -> None:
    hashed = hash_password("correct horse")
    prefix, iterations_salt, key = hashed.split("$", 2)[0], hashed.split("$")[1], hashed.split("$")[2]
    assert prefix == "{PBKDF2}10000"
    salt, raw_key = base64.b64decode(iterations_salt), base64.b64decode(key)
    assert len(salt) == 32 and len(raw_key) == 32  # Elasticsearch reads the key length from the hash
    assert raw_key == hashlib.pbkdf2_hmac("sha512", b"correct horse", salt, 10_000, 32)
    assert verify_password("correct horse", hashed)
    assert not verify_password("correct horse!", hashed)
    assert not verify_password("correct horse", "$2a$10$notpbkdf2")
    assert hash_password("x", salt=b"s" * 32) == hash_password("x", salt=b"s" * 32)
    assert hash_password("x") != hash_password("x")  # a fresh salt each time
    with pytest.raises(InvalidInputError):
        hash_password("")


def test_users_and_users_roles_round_trip() -> None:
    users = {"colsplade-search": hash_password("a"), "admin": hash_password("b")}
    text = format_users(users)
    assert text.splitlines()[0].startswith("admin:{PBKDF2}10000$")
    assert parse_users("# comment\n\n" + text) == users
    roles = {
        "admin": ["superuser"],
        "ann": ["colsplade_search", "colsplade_ingest"],
        "bob": ["colsplade_search"],
    }
    text = format_users_roles(roles)
    assert text == "colsplade_ingest:ann\ncolsplade_search:ann,bob\nsuperuser:admin\n"
    back = parse_users_roles(text)
    assert {user: sorted(r) for user, r in back.items()} == {user: sorted(r) for user, r in roles.items()}
    assert parse_users_roles("r1: ann , bob\n") == {"ann": ["r1"], "bob": ["r1"]}


@pytest.mark.parametrize("name", ["", "has space", "a:b", "a,b", "#x", "x\ny", "é"])
def test_names_that_would_break_a_line_are_refused(name: str) -> None:
    with pytest.raises(InvalidInputError, match="name"):
        format_users({name: hash_password("p")})
    with pytest.raises(InvalidInputError, match="name"):
        format_users_roles({"ann": [name]} if name else {"ann": [""]})


def test_roles_yml_puts_one_json_line_per_role_and_keeps_the_rest() -> None:
    existing = (
        "# The default roles file is empty\n"
        "hand_made:\n"
        "  cluster: [monitor]\n"
        "  indices:\n"
        "    - names: ['logs*']\n"
        "      privileges: [read]\n"
        '"old": {"cluster": ["all"]}\n'
    )
    body = search_role(["sec-1*"], engine="elasticsearch")
    text = format_roles_yml({"old": {"cluster": ["monitor"]}, "sec-1-search": body}, existing)
    lines = text.splitlines()
    assert lines[0] == "# The default roles file is empty"
    assert "hand_made:" in lines and "      privileges: [read]" in lines  # untouched
    assert '"old": {"cluster": ["monitor"]}' in lines  # replaced in place
    assert lines[-1].startswith('"sec-1-search": {')
    roles = parse_roles_yml(text)
    assert roles["hand_made"] is None  # kept as written, not read
    assert roles["old"] == {"cluster": ["monitor"]}
    assert roles["sec-1-search"] == body
    assert list(roles) == ["hand_made", "old", "sec-1-search"]
    # JSON is YAML: what Elasticsearch parses is the same body
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(text)["sec-1-search"] == body


def test_write_local_users_and_bootstrap(tmp_path) -> None:
    home, node_dir = tmp_path / "home", tmp_path / "node"
    (home / "config" / "colsplade-tls").mkdir(parents=True)
    (home / "config" / "elasticsearch.yml").write_text(elasticsearch_security_settings())
    (home / "config" / "colsplade-tls" / "root-ca.pem").write_text("ca")
    (home / "config" / "roles.yml").write_text("# roles\n")
    (home / "config" / "users").write_text("")
    config = node_config_dir(home, node_dir)
    assert (config / "colsplade-tls" / "root-ca.pem").read_text() == "ca"
    credentials = bootstrap_file_realm(config, node_dir / "credentials.json")
    assert set(credentials) == {"admin", "colsplade-ingest", "colsplade-search"}
    assert oct((node_dir / "credentials.json").stat().st_mode & 0o777) == "0o600"
    users = parse_users((config / "users").read_text())
    assert all(verify_password(credentials[u], users[u]) for u in credentials)
    assert oct((config / "users").stat().st_mode & 0o777) == "0o600"
    roles_of = parse_users_roles((config / "users_roles").read_text())
    assert roles_of == {user: list(roles) for user, roles in local_users("elasticsearch").items()}
    assert roles_of["admin"] == ["superuser"]
    assert set(parse_roles_yml((config / "roles.yml").read_text())) == set(ROLE_NAMES)
    # A restart keeps the passwords and the users tests added; the distribution's files are refreshed.
    write_local_users(config, {}, {"test-1": ("pw-123456", ["colsplade_search"])})
    (home / "config" / "users").write_text("someone:else\n")
    config = node_config_dir(home, node_dir)
    assert bootstrap_file_realm(config, node_dir / "credentials.json") == credentials
    assert set(parse_users((config / "users").read_text())) == {*credentials, "test-1"}
    assert json.loads((node_dir / "credentials.json").read_text()) == credentials


def test_security_settings_keep_to_the_file_realm() -> None:
    settings = elasticsearch_security_settings()
    assert "xpack.security.enabled: true" in settings
    assert "xpack.security.http.ssl.enabled: true" in settings
    assert "xpack.security.authc.realms.native.native1.enabled: false" in settings
    assert "xpack.security.authc.reserved_realm.enabled: false" in settings
    assert "resource.reload.interval.high: 1s" in settings


class _RefusingClient:
    """An Elasticsearch whose security REST API fails as the integ-test zip's does."""

    engine = "elasticsearch"

    def request(self, method, path, body=None, params=None):
        raise EngineRefusedError(
            400, "illegal_argument_exception", "Unknown filter type [pattern_capture] for [email]"
        )


def test_the_rest_api_refusal_names_the_file_realm() -> None:
    client = _RefusingClient()
    with pytest.raises(EngineRefusedError, match="put_file_role") as info:
        put_role(client, "r", search_role(["x*"], engine="elasticsearch"))
    assert info.value.status == 400 and ".security index" in str(info.value)
    with pytest.raises(EngineRefusedError, match="put_file_user") as info:
        put_user(client, "u", "password-123456", ["r"])
    assert "password-123456" not in str(info.value)
