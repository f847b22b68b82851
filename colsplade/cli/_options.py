"""Options shared by several commands: the engine connection flags and the model flags.

Connection flags (:func:`connection_options`) are the same on the command group and on every command that
talks to an engine, so ``colsplade --url U search ...`` and ``colsplade search --url U ...`` mean the same;
a flag on the command beats the same flag on the group. They are collected into :class:`CliState`, whose
:meth:`CliState.settings` applies the precedence of :mod:`colsplade.config` (flags > environment > config
file > defaults).

Model flags (:func:`model_options`): ``--model`` (one model directory, ``COLSPLADE_MODEL`` when omitted),
or ``--splade-model`` + ``--colbert-model`` (a pair), and ``--variant`` (the ONNX file).

Only click and the light :mod:`colsplade.config` are imported here, so ``colsplade --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from colsplade._types import ENGINE_NAMES

__all__ = [
    "CONNECTION_FLAGS",
    "ENGINE_CHOICE",
    "CliState",
    "connection_options",
    "echo_json",
    "layout_options",
    "model_options",
    "model_or_default",
    "pass_state",
]

F = TypeVar("F", bound=Callable[..., Any])

ENGINE_CHOICE = click.Choice(list(ENGINE_NAMES))

#: Settings field -> the connection flag that sets it (see :func:`connection_options`).
CONNECTION_FLAGS = {
    "urls": "--url",
    "engine": "--engine",
    "username": "--username",
    "api_key": "--api-key",
    "ca_certs": "--ca-certs",
    "verify_certs": "--no-verify-certs",
    "client_cert": "--client-cert",
    "client_key": "--client-key",
    "request_timeout": "--timeout",
}


class CliState:
    """What the connection flags of the group and of the command collected, and the ``--config`` file.

    ``overrides`` holds :class:`colsplade.config.Settings` fields given as flags (``urls``, ``engine``, ...);
    ``local_engine`` is the engine of the local node a command starts when no URL and no engine is configured.
    """

    def __init__(self) -> None:
        self.overrides: dict[str, Any] = {}
        self.config_file: str | None = None
        self.local_engine: str | None = None

    def settings(self, **more: Any):
        """:class:`colsplade.config.Settings` from defaults < config file < environment < flags < ``more``."""
        from colsplade.config import load_settings

        settings = load_settings(
            self.config_file, **{**self.overrides, **{k: v for k, v in more.items() if v is not None}}
        )
        if self.local_engine and not settings.urls and settings.engine is None:
            settings = settings.replace(engine=self.local_engine)
        return settings


#: ``@pass_state`` hands a command the :class:`CliState` (created when the command runs on its own).
pass_state = click.make_pass_decorator(CliState, ensure=True)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _remember(key: str, value_for: Callable[[Any], Any] = lambda v: v) -> Callable[..., None]:
    """A click callback that records a given flag into the :class:`CliState` as Settings field ``key``."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        state = ctx.ensure_object(CliState)
        if value is None or value is False:
            return
        if key == "engine" and ctx.get_parameter_source(param.name or "") is ParameterSource.DEFAULT:
            state.local_engine = value  # the command's local default, not a choice of the user
            return
        state.overrides[key] = value_for(value)

    return callback


def connection_options(*, local_engine: str | None = None) -> Callable[[F], F]:
    """Add the engine connection flags: ``--url --engine --username --api-key --ca-certs --no-verify-certs
    --client-cert --client-key --timeout``.

    The values do not reach the command function; read them with ``state.settings()`` (:class:`CliState`,
    via :data:`pass_state`). ``local_engine``: the default of ``--engine`` for commands that start a local
    node when no URL is configured (``eval``, ``quickstart``); without it ``--engine`` has no default and the
    engine is detected from the URL.
    """
    if local_engine:
        engine_help = (
            "Engine; detected from the URL when omitted. With no --url / COLSPLADE_URL, the local node of "
            "this engine is used (started if needed)."
        )
    else:
        engine_help = "Engine [env COLSPLADE_ENGINE]; detected from the URL when omitted."
    options = [
        click.option(
            "--url",
            expose_value=False,
            callback=_remember("urls", lambda v: tuple(u.strip() for u in v.split(",") if u.strip())),
            help="Engine URL(s), comma-separated [env COLSPLADE_URL]. Default: the local node.",
        ),
        click.option(
            "--engine",
            type=ENGINE_CHOICE,
            default=local_engine,
            show_default=bool(local_engine),
            expose_value=False,
            callback=_remember("engine"),
            help=engine_help,
        ),
        click.option(
            "--username",
            expose_value=False,
            callback=_remember("username"),
            help="Basic-auth user [env COLSPLADE_USERNAME]; the password from COLSPLADE_PASSWORD.",
        ),
        click.option(
            "--api-key",
            expose_value=False,
            callback=_remember("api_key"),
            help="API key [env COLSPLADE_API_KEY]; prefer the env variable to keep it out of history.",
        ),
        click.option(
            "--ca-certs",
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=_remember("ca_certs"),
            help="CA bundle for TLS [env COLSPLADE_CA_CERTS].",
        ),
        click.option(
            "--no-verify-certs",
            is_flag=True,
            default=None,
            expose_value=False,
            callback=_remember("verify_certs", lambda _: False),
            help="Do not verify TLS certificates.",
        ),
        click.option(
            "--client-cert",
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=_remember("client_cert"),
            help="Client certificate (PEM) for certificate authentication [env COLSPLADE_CLIENT_CERT].",
        ),
        click.option(
            "--client-key",
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=_remember("client_key"),
            help="Key of --client-cert (PEM) [env COLSPLADE_CLIENT_KEY].",
        ),
        click.option(
            "--timeout",
            type=float,
            expose_value=False,
            callback=_remember("request_timeout"),
            help="Request timeout in seconds [env COLSPLADE_TIMEOUT].",
        ),
    ]

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def model_options(
    *,
    variant: str = "auto",
    pair: bool = True,
    required: bool = False,
    model_help: str | None = None,
    variant_help: str | None = None,
) -> Callable[[F], F]:
    """Add ``--model`` (and with ``pair`` ``--splade-model`` / ``--colbert-model``) and ``--variant``.

    The command receives ``model``, ``splade_model``, ``colbert_model`` and ``variant``; ``variant`` is the
    default ONNX variant of that command. Resolve them with :func:`model_or_default`.
    """
    model = model_help or (
        "Model directory [env COLSPLADE_MODEL]"
        + ("; or --splade-model with --colbert-model." if pair else ".")
    )
    options = [
        click.option(
            "--model",
            type=click.Path(exists=True, file_okay=False),
            required=required,
            help=model,
        )
    ]
    if pair:
        options += [
            click.option(
                "--splade-model",
                type=click.Path(exists=True, file_okay=False),
                help="A separate SPLADE model (with --colbert-model, instead of a joint --model).",
            ),
            click.option(
                "--colbert-model",
                type=click.Path(exists=True, file_okay=False),
                help="A separate ColBERT model (with --splade-model).",
            ),
        ]
    options.append(
        click.option(
            "--variant",
            default=variant,
            show_default=True,
            help=variant_help
            or "ONNX variant: fp32, int8, fp16, or auto (fp16 on CUDA when exported, else fp32).",
        )
    )

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def model_or_default(settings: Any, model: str | None, splade_model: str | None, colbert_model: str | None):
    """``--model``, else ``COLSPLADE_MODEL`` / the config file's ``model`` unless a pair is given."""
    if model is None and splade_model is None and colbert_model is None:
        return settings.model
    return model


LAYOUT_FLAGS = ("nested_vectors", "codes_storage", "store_compression", "element_type", "no_vector_index")


def layout_options(*, prefix: str = "") -> Callable[[F], F]:
    """The token-store layout flags of a new index (``index create``, ``ingest``), handed to the command
    as one ``layout`` dict of :class:`colsplade.mappings.FieldSpec` / :class:`colsplade.ingest.Layout`
    arguments (``element_type`` None: the index's own, float for a new one)."""
    options = [
        click.option(
            "--nested-vectors",
            is_flag=True,
            help=f"{prefix}also store nested token vectors (opt-in: token kNN candidates, in-engine rerank); "
            "the default is the compact token store only.",
        ),
        click.option(
            "--codes-storage",
            type=click.Choice(["source", "stored", "doc_values"]),
            default="source",
            show_default=True,
            help=f"{prefix}where the engine keeps the compact token blob.",
        ),
        click.option(
            "--store-compression",
            type=click.Choice(["default", "best_compression"]),
            default="default",
            show_default=True,
            help=f"{prefix}index codec: default (LZ4) or best_compression (DEFLATE: ~25 % smaller, slower hits).",
        ),
        click.option(
            "--element-type", type=click.Choice(["float", "byte", "bit"]), help=f"{prefix}nested vector type."
        ),
        click.option(
            "--no-vector-index", is_flag=True, help=f"{prefix}nested vectors for rerank only (no HNSW)."
        ),
    ]

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flags = {name: kwargs.pop(name) for name in LAYOUT_FLAGS}
            flags["index_vectors"] = not flags.pop("no_vector_index")
            return f(*args, layout=flags, **kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate
