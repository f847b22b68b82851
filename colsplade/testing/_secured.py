"""A secured engine for tests: where it is, its CA, an admin, and users made per test with chosen roles."""

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
from colsplade.engines import EngineClient, LocalNode, connect, put_role, put_user

__all__ = ["SecuredEngine"]

#: Reuse a secured cluster that runs already (a Docker compose service, a team's staging cluster):
#: URL, CA file and an admin user allowed to manage security (the password from ``..._PASSWORD``).
ENV_PREFIX = "COLSPLADE_TEST_SECURE_"


@dataclass(frozen=True)
class SecuredEngine:
    """A real node with TLS and authentication, as the ``secured_engine`` fixture gives it.

    ``admin`` holds settings with every privilege (security administration included); :meth:`add_user`
    makes a user with some roles and returns the settings that log in as that user.
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

    def add_role(self, name: str, body: dict[str, Any]) -> None:
        with self.admin_client() as client:
            put_role(client, name, body)

    def add_user(self, roles: Sequence[str], username: str | None = None) -> Settings:
        """A new user holding ``roles``, with a random password; returns the settings that log in as it."""
        username = username or f"test-{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(18)
        with self.admin_client() as client:
            put_user(client, username, password, roles)
        return self.settings(username, password)
