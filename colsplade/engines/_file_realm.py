"""Users and roles of a secured local Elasticsearch node, kept in files: Elasticsearch's file realm.

``start_node("elasticsearch", secure=True)`` runs a node with ``xpack.security`` on, HTTPS from a CA made
here, and every user and role in three files of the node's own configuration directory (``ES_PATH_CONF``,
``<node dir>/config``), in Elasticsearch's formats:

* ``users``: ``username:hash`` lines; the hash is ``{PBKDF2}10000$salt$key`` (PBKDF2-HMAC-SHA512, what
  ``bin/elasticsearch-users`` writes with ``xpack.security.authc.password_hashing.algorithm: pbkdf2``);
* ``users_roles``: ``role:user1,user2`` lines;
* ``roles.yml``: one role per line, ``"name": {body}`` with the body in the format of the role API (JSON is
  YAML), so the bodies of :func:`~colsplade.engines.role_body`, ``ingest_role`` and ``search_role`` go in
  unchanged.

The node re-reads these files on its own (``resource.reload.interval.high``, 1 s on colsplade's node), and
the functions here wait until it did: :func:`put_file_user` until the user authenticates and holds its
roles' privileges (``_security/user/_has_privileges`` as that user), :func:`delete_file_user` until the
user is refused, :func:`put_file_role` (when it replaces a role in use) two rounds of the file watcher.

What a file realm cannot do here: the security REST API for native users and roles
(``PUT /_security/user``, ``/_security/role``), API keys, tokens and role mappings made through the API all
store their documents in the ``.security`` index, and the integ-test zip cannot create that index (its
mapping uses the ``pattern_capture`` filter of ``analysis-common``, a module Maven Central does not publish
for Elasticsearch). A client certificate (PKI realm) needs a Gold licence; the local node runs on Basic.
The node has no built-in users either (``elastic`` and the reserved realm are off): its users are the ones
in the files.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colsplade.exceptions import EngineStartError, InvalidInputError

if TYPE_CHECKING:
    from colsplade.engines._local import LocalNode

logger = logging.getLogger(__name__)

__all__ = [
    "delete_file_user",
    "format_roles_yml",
    "format_users",
    "format_users_roles",
    "hash_password",
    "parse_roles_yml",
    "parse_users",
    "parse_users_roles",
    "put_file_role",
    "put_file_user",
    "verify_password",
    "write_local_users",
]

USERS_FILE, USERS_ROLES_FILE, ROLES_FILE = "users", "users_roles", "roles.yml"
#: How often the node re-reads its security files (``resource.reload.interval.high``).
RELOAD_INTERVAL = "1s"
_PBKDF2_PREFIX = "{PBKDF2}"
_PBKDF2_ITERATIONS = 10_000
# Names go into ``name:...`` and ``role:user,user`` lines: no separator, no space, no comment mark.
_NAME = re.compile(r"[A-Za-z0-9_@.+\-]{1,507}")


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"invalid {what} name {name!r} for a file realm: 1 to 507 letters, digits or _ @ . + -"
        )
    return name


# ------------------------------------------------------------------------------------------ file formats


def hash_password(password: str, *, iterations: int = _PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """The ``users`` file hash of ``password``: ``{PBKDF2}<iterations>$<base64 salt>$<base64 key>``.

    PBKDF2-HMAC-SHA512 with a 32-byte salt and a 32-byte key, as Elasticsearch's own ``pbkdf2`` hasher
    writes it (it reads the iteration count, salt and key length from the hash).

    >>> hash_password("s3cret", salt=b"0" * 32).startswith("{PBKDF2}10000$MDAw")
    True
    """
    if not password:
        raise InvalidInputError("a file realm user needs a non-empty password")
    salt = secrets.token_bytes(32) if salt is None else salt
    if len(salt) < 8:
        raise InvalidInputError("a PBKDF2 salt has at least 8 bytes")
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, dklen=32)
    return f"{_PBKDF2_PREFIX}{iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``hashed`` (a ``{PBKDF2}`` hash of :func:`hash_password`) is the hash of ``password``."""
    if not hashed.startswith(_PBKDF2_PREFIX):
        return False
    try:
        iterations, salt, key = hashed[len(_PBKDF2_PREFIX) :].split("$")
        expected = base64.b64decode(key, validate=True)
        computed = hashlib.pbkdf2_hmac(
            "sha512",
            password.encode("utf-8"),
            base64.b64decode(salt, validate=True),
            int(iterations),
            len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed, expected)


def _lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            yield line.strip()


def parse_users(text: str) -> dict[str, str]:
    """``users`` file text as ``{username: hash}`` (comments and blank lines skipped)."""
    users = {}
    for line in _lines(text):
        name, sep, hashed = line.partition(":")
        if not sep or not name or not hashed:
            raise InvalidInputError(f"not a users file line (username:hash): {line[:40]!r}...")
        users[name] = hashed
    return users


def format_users(users: Mapping[str, str]) -> str:
    """``{username: hash}`` as ``users`` file text, one ``username:hash`` line per user, sorted.

    >>> format_users({"b": "{PBKDF2}1$x$y", "a": "$2a$10$abc"})
    'a:$2a$10$abc\\nb:{PBKDF2}1$x$y\\n'
    """
    lines = []
    for name, hashed in sorted(users.items()):
        _check_name(name, "user")
        if not hashed or any(c.isspace() for c in hashed):
            raise InvalidInputError(f"not a password hash for the user {name!r}")
        lines.append(f"{name}:{hashed}\n")
    return "".join(lines)


def parse_users_roles(text: str) -> dict[str, list[str]]:
    """``users_roles`` file text (``role:user1,user2`` lines) as ``{username: [roles]}``."""
    users: dict[str, list[str]] = {}
    for line in _lines(text):
        role, sep, members = line.partition(":")
        if not sep or not role.strip():
            raise InvalidInputError(f"not a users_roles line (role:user1,user2): {line[:40]!r}")
        for user in (m.strip() for m in members.split(",")):
            if user:
                users.setdefault(user, []).append(role.strip())
    return users


def format_users_roles(roles_of: Mapping[str, Sequence[str]]) -> str:
    """``{username: [roles]}`` as ``users_roles`` file text: one ``role:user1,user2`` line per role, sorted.

    >>> format_users_roles({"ann": ["search", "ingest"], "bob": ["search"], "eve": []})
    'ingest:ann\\nsearch:ann,bob\\n'
    """
    members: dict[str, set[str]] = {}
    for user, roles in roles_of.items():
        _check_name(user, "user")
        for role in roles:
            members.setdefault(_check_name(role, "role"), set()).add(user)
    return "".join(f"{role}:{','.join(sorted(users))}\n" for role, users in sorted(members.items()))


def _role_segments(text: str) -> list[tuple[str | None, str]]:
    """``roles.yml`` cut as Elasticsearch cuts it: a role starts at a line that begins with neither a space
    nor ``#``, and goes on over the indented lines below it. Returns ``(name or None, text)`` pairs; the
    name of a segment colsplade did not write is what precedes its first ``:`` (None for comments)."""
    segments: list[tuple[str | None, str]] = []
    current = -1  # the segment of the role being read
    for line in text.splitlines(keepends=True):
        if not line.strip() or line.startswith("#"):
            segments.append((None, line))
        elif line[0].isspace():
            if current < 0:  # indented text before any role: Elasticsearch skips it too
                segments.append((None, line))
            else:
                name, body = segments[current]
                segments[current] = (name, body + line)
        else:
            current = len(segments)
            key = line.split(":", 1)[0].strip()
            with contextlib.suppress(ValueError):
                key = json.loads(key) if key.startswith('"') else key.strip("'")
            segments.append((key, line))
    return segments


def parse_roles_yml(text: str) -> dict[str, dict[str, Any] | None]:
    """The roles of a ``roles.yml``: ``{name: body}`` for the one-line JSON roles :func:`format_roles_yml`
    writes, ``{name: None}`` for roles written otherwise (block YAML by hand), which are kept as they are."""
    roles: dict[str, dict[str, Any] | None] = {}
    for name, segment in _role_segments(text):
        if name is None:
            continue
        body: dict[str, Any] | None = None
        _, _, value = segment.partition(": ")
        if "\n" not in segment.strip():  # colsplade's one-line roles; a block of YAML stays unread
            with contextlib.suppress(ValueError):
                parsed = json.loads(value)
                body = parsed if isinstance(parsed, dict) else None
        roles[name] = body
    return roles


def format_roles_yml(roles: Mapping[str, Mapping[str, Any]], existing: str = "") -> str:
    """``existing`` roles.yml text with ``roles`` put in (replaced in place or added at the end), each as
    one line ``"name": {JSON body}``; comments and the other roles stay as they were.

    >>> print(format_roles_yml({"r": {"cluster": ["monitor"]}}, "# roles\\n"), end="")
    # roles
    "r": {"cluster": ["monitor"]}
    """
    pending = {_check_name(name, "role"): dict(body) for name, body in roles.items()}

    def line(name: str) -> str:
        return f"{json.dumps(name)}: {json.dumps(pending.pop(name), sort_keys=True)}\n"

    out = []
    for name, segment in _role_segments(existing):
        if name is not None and name in pending:
            out.append(line(name))
        else:
            out.append(segment if segment.endswith("\n") else segment + "\n")
    out.extend(line(name) for name in list(pending))
    return "".join(out)


# ------------------------------------------------------------------------------------- the node's files


def _config_dir(node: LocalNode) -> Path:
    config = node.extras.get("config_dir")
    if node.engine != "elasticsearch" or not node.secure or not config:
        raise InvalidInputError(
            f"the local {node.engine} node {node.name!r} has no file realm: only a secured local "
            "Elasticsearch node (start_node('elasticsearch', secure=True)) keeps its users in files"
        )
    return Path(config)


@contextlib.contextmanager
def _locked(config: Path) -> Iterator[None]:
    """One writer at a time (tests in several processes may add users to one node)."""
    with open(config / ".colsplade-realm.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _write(path: Path, text: str) -> None:
    """Replace ``path`` at once (the node never reads half a file), owner-only, owned like its directory
    (the JVM's user when colsplade runs as root), with a modification time the node sees as new."""
    before = path.stat().st_mtime_ns if path.exists() else None
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o600)
        owner = path.parent.stat()
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            os.chown(tmp, owner.st_uid, owner.st_gid)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # The node's file watcher compares length and modification time in milliseconds.
    after = path.stat().st_mtime_ns
    if before is not None and after // 1_000_000 <= before // 1_000_000:
        os.utime(path, ns=(after, before + 1_000_000))


def _update_users(config: Path, username: str, hashed: str | None, roles: Sequence[str]) -> None:
    users = parse_users(_read(config / USERS_FILE))
    roles_of = parse_users_roles(_read(config / USERS_ROLES_FILE))
    if hashed is None:
        users.pop(username, None)
        roles_of.pop(username, None)
    else:
        users[username] = hashed
        roles_of[username] = list(roles)
    # users_roles first: a user never logs in before its roles are in place.
    _write(config / USERS_ROLES_FILE, format_users_roles(roles_of))
    _write(config / USERS_FILE, format_users(users))


def write_local_users(
    config: Path, roles: Mapping[str, Mapping[str, Any]], users: Mapping[str, tuple[str, Sequence[str]]]
) -> None:
    """Put ``roles`` (``{name: body}``) and ``users`` (``{name: (password, roles)}``) into the files of the
    configuration directory ``config`` of a node that is not running yet (no wait)."""
    with _locked(config):
        _write(config / ROLES_FILE, format_roles_yml(roles, _read(config / ROLES_FILE)))
        for name, (password, user_roles) in users.items():
            _check_name(name, "user")
            _update_users(config, name, hash_password(password), user_roles)


def json_request(
    url: str,
    context: ssl.SSLContext,
    method: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """``(HTTP status, decoded answer)`` of one JSON request to a secured local node, before any client
    exists (status 0: no answer; an error status comes with the start of its body as text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")[:500]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, str(exc)


def _as_user(
    node: LocalNode, username: str, password: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """``(HTTP status, answer)`` of one request to the node as ``username`` (status 0: no answer)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    context = ssl.create_default_context(cafile=node.ca_certs)
    return json_request(f"{node.url}{path}", context, method, body, {"Authorization": f"Basic {token}"})


def _authenticates(node: LocalNode, username: str, password: str) -> int:
    """The HTTP status of ``GET /_security/_authenticate`` as ``username``: 200 or 401 (0: no answer)."""
    return _as_user(node, username, password, "GET", "/_security/_authenticate")[0]


def _privileges_request(bodies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A ``_has_privileges`` body asking for the cluster and index privileges of role ``bodies``.

    >>> _privileges_request([{"cluster": ["monitor"], "indices": [{"names": "a*", "privileges": ["read"]}]}])
    {'cluster': ['monitor'], 'index': [{'names': ['a*'], 'privileges': ['read']}]}
    """
    cluster = sorted({str(p) for body in bodies for p in body.get("cluster") or ()})
    index = []
    for body in bodies:
        for group in body.get("indices") or ():
            names = group.get("names") or []
            privileges = group.get("privileges") or []
            if names and privileges:
                names = [names] if isinstance(names, str) else list(names)
                index.append({"names": names, "privileges": list(privileges)})
    return {"cluster": cluster, "index": index}


def _holds_its_roles(node: LocalNode, username: str, password: str, roles: Sequence[str]) -> bool:
    """Whether ``username`` authenticates and holds the privileges of its roles defined in roles.yml
    (roles.yml and users are reloaded in the same round, but a round may fall between the two writes)."""
    defined = parse_roles_yml(_read(_config_dir(node) / ROLES_FILE))
    asked = _privileges_request([body for role in roles if (body := defined.get(role))])
    if not asked["cluster"] and not asked["index"]:
        return _authenticates(node, username, password) == 200
    status, answer = _as_user(node, username, password, "POST", "/_security/user/_has_privileges", asked)
    return status == 200 and bool(answer and answer.get("has_all_requested"))


def _wait(what: str, done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise EngineStartError(
                f"the node did not reload its security files within {timeout:.0f} s ({what}); is "
                f"resource.reload.interval.high set ({RELOAD_INTERVAL} on colsplade's node), and does "
                "its log name a file it could not parse?"
            )
        time.sleep(0.2)


def _reload_rounds(rounds: int = 2) -> None:
    time.sleep(rounds * float(RELOAD_INTERVAL.rstrip("s")) + 0.2)


def put_file_role(node: LocalNode, name: str, body: Mapping[str, Any]) -> None:
    """Create or replace the role ``name`` (a body in the format of the role API, e.g.
    :func:`~colsplade.engines.search_role`) in the roles.yml of a secured local Elasticsearch node.

    A new role that no user holds yet returns at once (:func:`put_file_user` waits until a user holds
    its roles' privileges); a role that replaces another, or that users already hold, returns after two
    rounds of the node's file watcher.
    """
    config = _config_dir(node)
    _check_name(name, "role")
    with _locked(config):
        existing = _read(config / ROLES_FILE)
        in_use = name in parse_roles_yml(existing) or any(
            name in roles for roles in parse_users_roles(_read(config / USERS_ROLES_FILE)).values()
        )
        _write(config / ROLES_FILE, format_roles_yml({name: body}, existing))
    logger.debug("file realm of %s: role %s", node.name, name)
    if in_use:
        _reload_rounds()


def put_file_user(
    node: LocalNode, username: str, password: str, roles: Sequence[str], *, timeout: float = 30.0
) -> None:
    """Create or replace the user ``username`` holding ``roles`` in the files of a secured local
    Elasticsearch node, and wait until the node accepts its password and grants it the privileges of
    those of its roles that roles.yml defines (built-in roles such as ``superuser`` are not checked)."""
    config = _config_dir(node)
    _check_name(username, "user")
    for role in roles:
        _check_name(role, "role")
    hashed = hash_password(password)
    with _locked(config):
        _update_users(config, username, hashed, roles)
    logger.debug("file realm of %s: user %s with roles %s", node.name, username, list(roles))
    _wait(f"user {username!r} added", lambda: _holds_its_roles(node, username, password, roles), timeout)


def delete_file_user(
    node: LocalNode, username: str, *, password: str | None = None, timeout: float = 30.0
) -> None:
    """Remove the user ``username`` from the files of a secured local Elasticsearch node. With its
    ``password``, wait until the node refuses it (the node empties its credentials cache when it
    reloads the file); without, wait two rounds of the node's file watcher."""
    config = _config_dir(node)
    with _locked(config):
        _update_users(config, _check_name(username, "user"), None, ())
    if password is None:
        _reload_rounds()
    else:
        _wait(f"user {username!r} removed", lambda: _authenticates(node, username, password) == 401, timeout)
