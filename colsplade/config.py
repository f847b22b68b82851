"""Typed connection and project settings, the same for every command and for library use.

Precedence, lowest first: defaults < config file < environment < explicit arguments (CLI flags).

- config file: ``--config PATH``, else ``$COLSPLADE_CONFIG``, else ``./colsplade.toml`` if present
  (TOML; keys as the :class:`Settings` fields, e.g. ``url = "https://es:9200"``, ``api_key = "..."``);
- environment: ``COLSPLADE_URL`` (comma-separated for several nodes), ``COLSPLADE_ENGINE``,
  ``COLSPLADE_USERNAME``, ``COLSPLADE_PASSWORD``, ``COLSPLADE_API_KEY``, ``COLSPLADE_CA_CERTS``,
  ``COLSPLADE_VERIFY_CERTS``, ``COLSPLADE_TIMEOUT``, ``COLSPLADE_MAX_RETRIES``, ``COLSPLADE_INDEX``,
  ``COLSPLADE_MODEL``, ``COLSPLADE_ENGINE_VERSION``.

Secrets (password, API key) are :class:`Secret` values: their ``repr`` and ``str`` are masked, and URLs are
shown through :func:`redact_url`, so neither reaches a log line or an error message.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from colsplade._types import ENGINE_NAMES, EngineName
from colsplade.exceptions import InvalidInputError

__all__ = ["Secret", "Settings", "load_settings", "redact_url"]


class Secret:
    """A string that does not print itself.

    >>> s = Secret("hunter2")
    >>> s, str(s), s.reveal()
    (Secret('***'), '***', 'hunter2')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (user names are kept, they help debugging).

    >>> redact_url("https://elastic:changeme@es.example:9200/x")
    'https://elastic:***@es.example:9200/x'
    >>> redact_url("http://127.0.0.1:9200")
    'http://127.0.0.1:9200'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _parse_bool(value: str | bool, name: str) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise InvalidInputError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Where the engine is and how to talk to it; what index and model to use.

    ``urls`` empty means: use the local node colsplade manages (``colsplade engine up``).
    """

    urls: tuple[str, ...] = ()
    engine: EngineName | None = None
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    api_key: Secret | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    #: Client certificate (PEM) for clusters that authenticate by TLS certificate; its key in ``client_key``
    #: (or in the same file).
    client_cert: str | None = None
    client_key: str | None = None
    request_timeout: float = 30.0
    max_retries: int = 3
    index: str = "colsplade"
    model: str | None = None
    engine_version: str | None = None

    def __post_init__(self) -> None:
        if self.engine is not None and self.engine not in ENGINE_NAMES:
            raise InvalidInputError(
                f"unknown engine {self.engine!r}; choose one of: {', '.join(ENGINE_NAMES)}"
            )
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidInputError(
                    f"invalid engine URL {redact_url(url)!r}; expected http(s)://host:port, e.g. http://127.0.0.1:9200"
                )
        if self.request_timeout <= 0:
            raise InvalidInputError(f"request_timeout must be > 0 seconds, got {self.request_timeout}")
        if self.max_retries < 0:
            raise InvalidInputError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.password is not None and self.api_key is not None:
            raise InvalidInputError("give either a username/password or an API key, not both")
        if self.client_key and not self.client_cert:
            raise InvalidInputError("client_key needs client_cert (the certificate it belongs to)")

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "urls":
                value = tuple(self.redacted_urls)
            elif isinstance(value, Secret):
                value = str(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def redacted_urls(self) -> list[str]:
        return [redact_url(u) for u in self.urls]

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (``None`` values are ignored, so CLI defaults do not override)."""
        return dataclasses.replace(self, **_coerce({k: v for k, v in changes.items() if v is not None}))


_FIELDS = {f.name for f in dataclasses.fields(Settings)}

_ENV = {
    "COLSPLADE_URL": "urls",
    "COLSPLADE_ENGINE": "engine",
    "COLSPLADE_USERNAME": "username",
    "COLSPLADE_PASSWORD": "password",
    "COLSPLADE_API_KEY": "api_key",
    "COLSPLADE_CA_CERTS": "ca_certs",
    "COLSPLADE_VERIFY_CERTS": "verify_certs",
    "COLSPLADE_CLIENT_CERT": "client_cert",
    "COLSPLADE_CLIENT_KEY": "client_key",
    "COLSPLADE_TIMEOUT": "request_timeout",
    "COLSPLADE_MAX_RETRIES": "max_retries",
    "COLSPLADE_INDEX": "index",
    "COLSPLADE_MODEL": "model",
    "COLSPLADE_ENGINE_VERSION": "engine_version",
}


def _coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "url":
            key = "urls"
        if key not in _FIELDS:
            raise InvalidInputError(f"unknown setting {key!r}; known settings: {', '.join(sorted(_FIELDS))}")
        if key == "urls":
            if isinstance(value, str):
                value = tuple(u.strip() for u in value.split(",") if u.strip())
            else:
                value = tuple(value)
        elif key in ("password", "api_key") and not isinstance(value, Secret):
            value = Secret(str(value))
        elif key == "verify_certs":
            value = _parse_bool(value, key)
        elif key == "request_timeout":
            try:
                value = float(value)
            except ValueError:
                raise InvalidInputError(
                    f"request_timeout must be a number of seconds, got {value!r}"
                ) from None
        elif key == "max_retries":
            try:
                value = int(value)
            except ValueError:
                raise InvalidInputError(f"max_retries must be an integer, got {value!r}") from None
        elif key in ("ca_certs", "client_cert", "client_key") and value:
            value = str(Path(value).expanduser())
        out[key] = value
    return out


def _read_file(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.10 only
        try:
            import tomli as tomllib
        except ImportError:
            raise InvalidInputError(
                "reading a TOML config file on Python 3.10 needs: pip install tomli"
            ) from None
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidInputError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"config file {path} is not valid TOML: {exc}") from None
    # Allow the settings at top level or under a [colsplade] table.
    return dict(data.get("colsplade", data))


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from defaults, config file, environment and ``overrides`` (highest), in that order.

    ``None`` overrides are ignored, so optional CLI flags can be passed straight through.

    >>> load_settings(environ={"COLSPLADE_URL": "http://a:9200,http://b:9200"}, index="docs").urls
    ('http://a:9200', 'http://b:9200')
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or env.get("COLSPLADE_CONFIG")
    if path is None and Path("colsplade.toml").is_file():
        path = "colsplade.toml"
    if path:
        values.update(_coerce(_read_file(Path(path).expanduser())))
    values.update(_coerce({field_name: env[var] for var, field_name in _ENV.items() if env.get(var)}))
    values.update(_coerce({k: v for k, v in overrides.items() if v is not None}))
    return Settings(**values)
