"""Users and roles of a secured local Elasticsearch node, kept in files: Elasticsearch's file realm.

``start_node("elasticsearch", secure=True)`` runs a node with ``xpack.security`` on, HTTPS from a CA made
here, and every user and role in three files of the node's own configuration directory (``ES_PATH_CONF``,
``<node dir>/config``), in Elasticsearch's formats:

* ``users``: ``username:hash`` lines; the hash is ``{PBKDF2}10000$salt$key`` (PBKDF2-HMAC-SHA512, what
  ``bin/elasticsearch-users`` writes with ``xpack.security.authc.password_hashing.algorithm: pbkdf2``);
* ``users_roles``: ``role:user1,user2`` lines;
* ``roles.yml``: one role per line, ``"name": {body}`` with the body in the format of the role API (JSON is
  YAML), so the bodies of :func:`~colsplade.mappings.role_body`, ``ingest_role`` and ``search_role`` go in
  unchanged.

This module reads and writes those files (pure formats, then the locked, atomic writes); the node re-reads
them on its own (``resource.reload.interval.high``, 1 s on colsplade's node), and
:mod:`colsplade.local._file_users` (``put_file_user``, ``put_file_role``, ``delete_file_user``) changes
them on a running node and waits until it did.

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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from colsplade.exceptions import InvalidInputError
from colsplade.local._system import own_like_directory

logger = logging.getLogger(__name__)

__all__ = [
    "RELOAD_INTERVAL",
    "ROLES_FILE",
    "USERS_FILE",
    "USERS_ROLES_FILE",
    "check_name",
    "format_roles_yml",
    "format_users",
    "format_users_roles",
    "hash_password",
    "parse_roles_yml",
    "parse_users",
    "parse_users_roles",
    "read_file",
    "update_users",
    "verify_password",
    "write_file",
    "write_local_users",
]

USERS_FILE, USERS_ROLES_FILE, ROLES_FILE = "users", "users_roles", "roles.yml"
#: How often the node re-reads its security files (``resource.reload.interval.high``).
RELOAD_INTERVAL = "1s"
_PBKDF2_PREFIX = "{PBKDF2}"
_PBKDF2_ITERATIONS = 10_000
# Names go into ``name:...`` and ``role:user,user`` lines: no separator, no space, no comment mark.
_NAME = re.compile(r"[A-Za-z0-9_@.+\-]{1,507}")


def check_name(name: str, what: str) -> str:
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
        check_name(name, "user")
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
        check_name(user, "user")
        for role in roles:
            members.setdefault(check_name(role, "role"), set()).add(user)
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
    pending = {check_name(name, "role"): dict(body) for name, body in roles.items()}

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


# ------------------------------------------------------------------------ the files of a node's config


@contextlib.contextmanager
def locked(config: Path) -> Iterator[None]:
    """One writer at a time (tests in several processes may add users to one node)."""
    with open(config / ".colsplade-realm.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_file(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def write_file(path: Path, text: str) -> None:
    """Replace ``path`` at once (the node never reads half a file), owner-only, owned like its directory
    (the JVM's user when colsplade runs as root), with a modification time the node sees as new."""
    before = path.stat().st_mtime_ns if path.exists() else None
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o600)
        own_like_directory(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # The node's file watcher compares length and modification time in milliseconds.
    after = path.stat().st_mtime_ns
    if before is not None and after // 1_000_000 <= before // 1_000_000:
        os.utime(path, ns=(after, before + 1_000_000))


def update_users(config: Path, username: str, hashed: str | None, roles: Sequence[str]) -> None:
    users = parse_users(read_file(config / USERS_FILE))
    roles_of = parse_users_roles(read_file(config / USERS_ROLES_FILE))
    if hashed is None:
        users.pop(username, None)
        roles_of.pop(username, None)
    else:
        users[username] = hashed
        roles_of[username] = list(roles)
    # users_roles first: a user never logs in before its roles are in place.
    write_file(config / USERS_ROLES_FILE, format_users_roles(roles_of))
    write_file(config / USERS_FILE, format_users(users))


def write_local_users(
    config: Path, roles: Mapping[str, Mapping[str, Any]], users: Mapping[str, tuple[str, Sequence[str]]]
) -> None:
    """Put ``roles`` (``{name: body}``) and ``users`` (``{name: (password, roles)}``) into the files of the
    configuration directory ``config`` of a node that is not running yet (no wait)."""
    with locked(config):
        write_file(config / ROLES_FILE, format_roles_yml(roles, read_file(config / ROLES_FILE)))
        for name, (password, user_roles) in users.items():
            check_name(name, "user")
            update_users(config, name, hash_password(password), user_roles)
