"""The inference side must never import torch or transformers (backend code installs no [train] extra)."""

import subprocess
import sys

import pytest

INFERENCE_MODULES = [
    "colsplade",
    "colsplade.cli",
    "colsplade.cli._ingest",
    "colsplade.cli._search",
    "colsplade.cli._quickstart",
    "colsplade.config",
    "colsplade.encoders",
    "colsplade.engines",
    "colsplade.ingest",
    "colsplade.local",
    "colsplade.mappings",
    "colsplade.query",
    "colsplade.scoring",
    "colsplade.streams",
]


@pytest.mark.parametrize("module", INFERENCE_MODULES)
def test_no_torch_on_the_inference_side(module):
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules)\n"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"{module} imported {out}"
