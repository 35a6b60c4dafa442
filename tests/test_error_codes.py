"""Every error skulens raises on purpose is a SkulensError with its own stable code, which the service maps to a
status by code and the CLI prints as ``error[CODE]``."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import skulens
from skulens.errors import SkulensError, error_codes
from skulens.extras import MissingExtraError, require_extra
from skulens.serve.errors import DEFAULT_STATUS, error_status
from skulens.training.loop import CheckpointError

#: Modules whose import needs an extra or a UI runtime; their error classes are loaded by the others.
SKIPPED_PREFIXES = ("skulens.ui", "skulens.engines.ray_engine")


def _import_every_module() -> None:
    for info in pkgutil.walk_packages(skulens.__path__, "skulens."):
        if not info.name.startswith(SKIPPED_PREFIXES) and not info.name.endswith("__main__"):
            importlib.import_module(info.name)


def _every_error_class() -> list[type[SkulensError]]:
    found, stack = [], [SkulensError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def test_checkpoint_and_missing_extra_errors_are_skulens_errors_with_codes():
    assert issubclass(CheckpointError, SkulensError) and issubclass(CheckpointError, ValueError)
    assert issubclass(MissingExtraError, SkulensError) and issubclass(MissingExtraError, ImportError)
    assert CheckpointError.code == "checkpoint" and MissingExtraError.code == "missing_extra"
    assert error_codes()["missing_extra"] is MissingExtraError and error_codes()["checkpoint"] is CheckpointError


def test_every_error_class_declares_its_own_unique_code():
    _import_every_module()
    classes = _every_error_class()
    assert len(classes) > 20
    undeclared = [cls.__qualname__ for cls in classes if "code" not in cls.__dict__]
    assert not undeclared, f"error classes without their own code: {undeclared}"
    by_code: dict[str, list[str]] = {}
    for cls in classes:
        by_code.setdefault(cls.code, []).append(f"{cls.__module__}.{cls.__qualname__}")
    assert {code: names for code, names in by_code.items() if len(names) > 1} == {}


def test_service_maps_a_missing_extra_by_its_code():
    with pytest.raises(MissingExtraError) as caught:
        require_extra("caption", "skulens_no_such_module", feature="caption metrics")
    assert error_status(caught.value) == (501, "extra_not_installed")
    assert error_status(CheckpointError("checkpoint x is damaged")) == (DEFAULT_STATUS, "checkpoint")
