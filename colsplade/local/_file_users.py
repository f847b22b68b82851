"""The users and roles of a running secured local Elasticsearch node, changed through its file realm.

The node keeps them in files of its own configuration directory (:mod:`colsplade.local._file_realm` writes
them) and re-reads those on its own (``resource.reload.interval.high``, 1 s on colsplade's node); the
functions here change the files and wait until the node did: :func:`put_file_user` until the user
authenticates and holds its roles' privileges (``_security/user/_has_privileges`` as that user),
:func:`delete_file_user` until the user is refused, :func:`put_file_role` (when it replaces a role in use)
two rounds of the file watcher.
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from colsplade.exceptions import EngineStartError, InvalidInputError
from colsplade.local._file_realm import (
    RELOAD_INTERVAL,
    ROLES_FILE,
    USERS_ROLES_FILE,
    check_name,
    format_roles_yml,
    hash_password,
    locked,
    parse_roles_yml,
    parse_users_roles,
    read_file,
    update_users,
    write_file,
)
from colsplade.local._http import json_request
from colsplade.local._node import LocalNode

logger = logging.getLogger(__name__)

__all__ = ["delete_file_user", "put_file_role", "put_file_user"]


def _config_dir(node: LocalNode) -> Path:
    config = node.extras.get("config_dir")
    if node.engine != "elasticsearch" or not node.secure or not config:
        raise InvalidInputError(
            f"the local {node.engine} node {node.name!r} has no file realm: only a secured local "
            "Elasticsearch node (start_node('elasticsearch', secure=True)) keeps its users in files"
        )
    return Path(config)


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
    defined = parse_roles_yml(read_file(_config_dir(node) / ROLES_FILE))
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
    :func:`~colsplade.mappings.search_role`) in the roles.yml of a secured local Elasticsearch node.

    A new role that no user holds yet returns at once (:func:`put_file_user` waits until a user holds
    its roles' privileges); a role that replaces another, or that users already hold, returns after two
    rounds of the node's file watcher.
    """
    config = _config_dir(node)
    check_name(name, "role")
    with locked(config):
        existing = read_file(config / ROLES_FILE)
        in_use = name in parse_roles_yml(existing) or any(
            name in roles for roles in parse_users_roles(read_file(config / USERS_ROLES_FILE)).values()
        )
        write_file(config / ROLES_FILE, format_roles_yml({name: body}, existing))
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
    check_name(username, "user")
    for role in roles:
        check_name(role, "role")
    hashed = hash_password(password)
    with locked(config):
        update_users(config, username, hashed, roles)
    logger.debug("file realm of %s: user %s with roles %s", node.name, username, list(roles))
    _wait(f"user {username!r} added", lambda: _holds_its_roles(node, username, password, roles), timeout)


def delete_file_user(
    node: LocalNode, username: str, *, password: str | None = None, timeout: float = 30.0
) -> None:
    """Remove the user ``username`` from the files of a secured local Elasticsearch node. With its
    ``password``, wait until the node refuses it (the node empties its credentials cache when it
    reloads the file); without, wait two rounds of the node's file watcher."""
    config = _config_dir(node)
    with locked(config):
        update_users(config, check_name(username, "user"), None, ())
    if password is None:
        _reload_rounds()
    else:
        _wait(f"user {username!r} removed", lambda: _authenticates(node, username, password) == 401, timeout)
