"""The exception tree: one root, every class documented in the module's tree, public at the top level."""

from __future__ import annotations

import pickle

import pytest

import colsplade
from colsplade import exceptions
from colsplade.exceptions import (
    ColspladeError,
    InvalidInputError,
    MappingConflictError,
    ModelVersionMismatchError,
    ParityError,
)

CLASSES = [getattr(exceptions, name) for name in exceptions.__all__]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_in_the_tree_and_its_documentation(cls: type) -> None:
    assert issubclass(cls, ColspladeError)
    assert f"``{cls.__name__}``" in (exceptions.__doc__ or ""), (
        f"{cls.__name__} is not in the documented tree"
    )
    assert cls.__doc__, f"{cls.__name__} has no docstring"


def test_branches() -> None:
    assert issubclass(MappingConflictError, InvalidInputError) and issubclass(
        MappingConflictError, ValueError
    )
    assert not issubclass(ParityError, InvalidInputError | ModelVersionMismatchError)


def test_top_level_names() -> None:
    assert colsplade.ParityError is ParityError
    assert colsplade.MappingConflictError is MappingConflictError


def test_parity_error_keeps_its_report_and_pickles() -> None:
    report = {"ok": False}
    error = ParityError("int8 kendall tau 0.5 < 0.8", report)
    assert error.report is report and str(error) == "int8 kendall tau 0.5 < 0.8"
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, ParityError) and str(again) == str(error)


def test_onnx_export_raises_the_tree_class() -> None:
    pytest.importorskip("torch")
    from colsplade import onnx_export

    assert onnx_export.ParityError is ParityError
