"""``colsplade export``: a thin shell over :func:`colsplade.onnx_export.export_model_dir`.

onnx and torch are imported only when the command runs, so ``colsplade --help`` works without ``[train]``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

__all__ = ["export_and_report", "export_command"]


@click.command("export")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--variants",
    default="int8",
    show_default=True,
    help="Comma-separated variants besides fp32: int8, fp16 (empty for fp32 only).",
)
@click.option(
    "--tolerance", default=1e-4, show_default=True, type=float, help="Max absolute fp32 difference to torch."
)
@click.option(
    "--min-kendall-tau",
    default=0.8,
    show_default=True,
    type=float,
    help="Min mean Kendall tau of int8 / fp16 rankings against torch fp32.",
)
@click.option("--opset", default=17, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export_command(
    model_dir: str, variants: str, tolerance: float, min_kendall_tau: float, opset: int, as_json: bool
) -> None:
    """Export MODEL_DIR to ONNX (onnx/model.onnx + variants) and check each file against torch.

    Exits with status 1 when a check fails.
    """
    wanted = [v.strip() for v in variants.split(",") if v.strip()]
    export_and_report(
        model_dir,
        variants=wanted,
        tolerance=tolerance,
        min_kendall_tau=min_kendall_tau,
        opset=opset,
        as_json=as_json,
    )


def export_and_report(path: Any, *, as_json: bool = False, **options: Any) -> None:
    """Export with the parity check (``options`` go to ``export_model_dir``), print the report, and exit
    with status 1 when a check failed. Other colsplade errors reach the command group's exit-code table.
    """
    from colsplade.onnx_export import ParityError, export_model_dir

    try:
        report = export_model_dir(path, **options)
    except ParityError as exc:
        report = exc.report
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.summary())
    if not report.ok:
        sys.exit(1)
