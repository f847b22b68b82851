"""The ``colsplade`` command line: a thin click shell over the public functions.

Each command lives in its own module of this package, maps its flags onto one documented function and
imports heavy code (torch, onnxruntime, the engine clients) only when it runs, so ``colsplade --help`` stays
fast. The commands are registered explicitly in :data:`COMMANDS`.

Connection flags (``--url``, ``--engine``, ``--username``, ``--api-key``, ``--ca-certs``,
``--no-verify-certs``, ``--timeout``) are accepted by the command group and by every command that talks to
an engine, with the same meaning (a flag on the command beats the same flag on the group); they follow the
precedence of :mod:`colsplade.config` (flags > environment > config file). ``--config`` (the colsplade.toml
to read) and ``-v`` belong to the group. See :mod:`colsplade.cli._options`.

Exit status: :data:`EXIT_CODES` is the one table from outcome to exit status. The command group applies it
to every colsplade error (:class:`colsplade.exceptions.ColspladeError`), printing one ``error: ...`` line on
stderr instead of a traceback; ``colsplade --help`` prints it.

====  =======================================================================================================
code  meaning
====  =======================================================================================================
0     success
1     another colsplade error; a failed check (``export`` parity); a declined prompt
2     invalid input or usage: flags, arguments, documents, files, model directories (``InvalidInputError``,
      and click's usage errors)
3     partial success: ``ingest`` dead-lettered some documents, indexed the rest
4     engine unreachable: no answer at the URL (``EngineUnreachableError``)
5     engine refused the request: it answered with an error status (``EngineRefusedError``)
6     a local engine node could not be fetched or started (``EngineStartError``)
7     the index was encoded by another model version or token codec (``ModelVersionMismatchError``)
8     an optional dependency is missing; the message names the extra (``MissingExtraError``)
9     not authenticated or not authorized: HTTP 401 / 403 (``EngineAuthenticationError``,
      ``EngineAuthorizationError``): fix the credentials or the user's roles, not the request
====  =======================================================================================================

Anything else is a bug: Python's traceback and status 1.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

import click

from colsplade.cli._datasets import datasets_group
from colsplade.cli._encode import encode_command
from colsplade.cli._engine import engine_group
from colsplade.cli._eval import compare_command, eval_command
from colsplade.cli._export import export_command
from colsplade.cli._index import index_group
from colsplade.cli._ingest import ingest_command
from colsplade.cli._models import import_model_command, init_model_command
from colsplade.cli._options import CliState, connection_options
from colsplade.cli._quickstart import quickstart_command
from colsplade.cli._search import search_command
from colsplade.cli._train import train_command
from colsplade.cli._upgrade import upgrade_command
from colsplade.exceptions import (
    ColspladeError,
    EngineAuthenticationError,
    EngineAuthorizationError,
    EngineRefusedError,
    EngineStartError,
    EngineUnreachableError,
    InvalidInputError,
    MissingExtraError,
    ModelVersionMismatchError,
)

__all__ = ["COMMANDS", "EXIT_CODES", "ExitCode", "exit_code_for", "main"]


@dataclass(frozen=True)
class ExitCode:
    """One row of the exit-status table: the ``code``, what it means, and the errors that end in it."""

    code: int
    meaning: str
    errors: tuple[type[ColspladeError], ...] = ()


#: The one mapping from outcome to exit status (documented above and in ``colsplade --help``).
EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(0, "success"),
    ExitCode(
        1, "another colsplade error; a failed check (export parity); a declined prompt", (ColspladeError,)
    ),
    ExitCode(
        2, "invalid input or usage: flags, arguments, documents, files, model dirs", (InvalidInputError,)
    ),
    ExitCode(3, "partial success: ingest dead-lettered some documents, indexed the rest"),
    ExitCode(
        4, "engine unreachable: no answer at the URL (refused, DNS, TLS, timeout)", (EngineUnreachableError,)
    ),
    ExitCode(5, "engine refused the request: it answered with an error status", (EngineRefusedError,)),
    ExitCode(6, "a local engine node could not be fetched or started", (EngineStartError,)),
    ExitCode(
        7, "the index was encoded by another model version or token codec", (ModelVersionMismatchError,)
    ),
    ExitCode(8, "an optional dependency is missing (the message names the extra)", (MissingExtraError,)),
    ExitCode(
        9,
        "not authenticated or not authorized (HTTP 401 / 403): credentials or the user's roles",
        (EngineAuthenticationError, EngineAuthorizationError),
    ),
)

_CODE_OF = {error: row.code for row in EXIT_CODES for error in row.errors}


def exit_code_for(error: BaseException) -> int:
    """The exit status of ``error``: the row of its most specific class in :data:`EXIT_CODES` (else 1)."""
    for cls in type(error).__mro__:
        if cls in _CODE_OF:
            return _CODE_OF[cls]
    return 1


def _epilog() -> str:
    rows = "\n".join(f"  {row.code}  {row.meaning}" for row in EXIT_CODES)
    return f"Exit status:\n\n\b\n{rows}"


class _Group(click.Group):
    """Turns colsplade's own errors into one ``error: ...`` line and the exit status of :data:`EXIT_CODES`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ColspladeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exit_code_for(exc))


@click.group(
    cls=_Group,
    epilog=_epilog(),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@connection_options()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML config file [env COLSPLADE_CONFIG].",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="colsplade")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, verbose: int) -> None:
    """Two-stage neural search for Elasticsearch and OpenSearch: SPLADE retrieval, ColBERT rerank."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(CliState).config_file = config_file


#: Every command of ``colsplade``, registered in this order (``--help`` lists them alphabetically).
COMMANDS: list[click.Command] = [
    engine_group,
    index_group,
    ingest_command,
    search_command,
    encode_command,
    export_command,
    init_model_command,
    import_model_command,
    train_command,
    eval_command,
    compare_command,
    quickstart_command,
    datasets_group,
    upgrade_command,
]

for _command in COMMANDS:
    main.add_command(_command)
del _command
