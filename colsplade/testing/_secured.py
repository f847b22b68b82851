"""A secured engine for tests: where it is, its CA, an admin, and users made per test with chosen roles.

Roles and users go in through the engine's security REST API, except on a secured local Elasticsearch
node, whose users and roles live in files (its file realm: the integ-test zip cannot create the
``.security`` index the REST API writes to): there they are written into the node's files, and each call
returns once the node has reloaded them (about a second).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from colsplade._types import EngineName
from colsplade.config import Settings
from colsplade.engines import EngineClient, connect, delete_user, put_role, put_user
from colsplade.exceptions import InvalidInputError
from colsplade.local import LocalNode, delete_file_user, put_file_role, put_file_user

__all__ = ["SecuredEngine"]

#: Reuse a secured cluster that runs already (a Docker compose service, a team's staging cluster):
#: URL, CA file and an admin user allowed to manage security (the password from ``..._PASSWORD``).
ENV_PREFIX = "COLSPLADE_TEST_SECURE_"


@dataclass(frozen=True)
class SecuredEngine:
    """A real node with TLS and authentication, as the ``secured_engine`` fixture gives it.

    ``admin`` holds settings with every privilege (security administration included); :meth:`add_user`
    makes a user with some roles and returns the settings that log in as that user; :meth:`remove_user`
    revokes one.
    """

    engine: EngineName
    url: str
    ca_certs: str
    admin: Settings
    node: LocalNode | None = None

    @classmethod
    def from_node(cls, node: LocalNode) -> SecuredEngine:
        return cls(node.engine, node.url, str(node.ca_certs), node.settings("admin"), node)

    @classmethod
    def from_env(cls) -> SecuredEngine | None:
        """The cluster ``COLSPLADE_TEST_SECURE_URL`` / ``_CA_CERTS`` / ``_USERNAME`` / ``_PASSWORD`` name, if set."""
        url = os.environ.get(ENV_PREFIX + "URL")
        if not url:
            return None
        admin = Settings(urls=(url,)).replace(
            ca_certs=os.environ.get(ENV_PREFIX + "CA_CERTS"),
            username=os.environ.get(ENV_PREFIX + "USERNAME", "admin"),
            password=os.environ.get(ENV_PREFIX + "PASSWORD"),
        )
        with connect(admin) as client:
            engine = client.engine
        return cls(engine, url, str(admin.ca_certs or ""), admin.replace(engine=engine))

    def settings(self, username: str | None = None, password: str | None = None) -> Settings:
        """Settings for this cluster with its CA and the given credentials (none: anonymous)."""
        base = dataclasses.replace(self.admin, username=None, password=None)
        return base.replace(username=username, password=password)

    @contextlib.contextmanager
    def admin_client(self) -> Iterator[EngineClient]:
        with connect(self.admin) as client:
            yield client

    @property
    def file_realm(self) -> bool:
        """Whether users and roles live in files (a secured local Elasticsearch node), not behind the API."""
        return self.node is not None and self.node.engine == "elasticsearch"

    def add_role(self, name: str, body: dict[str, Any]) -> None:
        """Create or replace the role ``name`` (a body in the format of the engine's role API)."""
        if self.node is not None and self.file_realm:
            put_file_role(self.node, name, body)
            return
        with self.admin_client() as client:
            put_role(client, name, body)

    def add_user(self, roles: Sequence[str], username: str | None = None) -> Settings:
        """A new user holding ``roles``, with a random password; returns the settings that log in as it."""
        username = username or f"test-{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(18)
        if self.node is not None and self.file_realm:
            put_file_user(self.node, username, password, roles)
        else:
            with self.admin_client() as client:
                put_user(client, username, password, roles)
        return self.settings(username, password)

    def remove_user(self, user: Settings | str) -> None:
        """Revoke a user (its settings from :meth:`add_user`, or its name): the engine refuses its
        credentials once this returns. Through the REST API that holds at once; a file realm refuses them
        from its next reload of the users file, which this waits for."""
        username = user if isinstance(user, str) else user.username
        if not username:
            raise InvalidInputError("remove_user needs a user name")
        if self.node is not None and self.file_realm:
            password = None if isinstance(user, str) or user.password is None else user.password.reveal()
            delete_file_user(self.node, username, password=password)
            return
        with self.admin_client() as client:
            delete_user(client, username)
