"""Fixtures shared by the integration tests (the engine fixtures come from colsplade's pytest plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_joint_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny random joint model directory for the whole session (dim 16, fp32 + int8 ONNX).

    Tests must not change it beyond what ingest itself adds to a model directory; a test that needs a
    pristine or an altered model copies it first (``shutil.copytree``).
    """
    pytest.importorskip("torch")
    from colsplade.testing import make_tiny_model_dir

    return make_tiny_model_dir("joint", tmp_path_factory.mktemp("tiny-joint") / "joint", variants=("int8",))
