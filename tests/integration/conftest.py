"""Fixtures shared by the integration tests (the engine fixtures come from colsplade's pytest plugin)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_joint_model_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random joint model, built once per session (dim 16, fp32 + int8 ONNX); never written to.

    Tests use :func:`tiny_joint_model`, a copy of it.
    """
    pytest.importorskip("torch")
    from colsplade.testing import make_tiny_model_dir

    return make_tiny_model_dir("joint", tmp_path_factory.mktemp("tiny-joint") / "joint", variants=("int8",))


@pytest.fixture(scope="module")
def tiny_joint_model(tiny_joint_model_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny joint model directory for one test module: a copy of the session's build (milliseconds).

    Ingest may add to a model directory (a fitted ColBERT codec, say), so each module starts from the
    same pristine model whatever ran before it; a test that changes the model copies it first.
    """
    return Path(shutil.copytree(tiny_joint_model_build, tmp_path_factory.mktemp("tiny-joint-copy") / "joint"))
