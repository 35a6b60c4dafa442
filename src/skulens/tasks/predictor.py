"""The contract every task's predictor keeps (PEP 544), and the small helpers the predictors share.

A predictor is ``fit(data) -> self``; ``predict(data) -> DataFrame`` with the ids kept and one ``issue``
column (a row that could not be read gets an empty prediction and its issue, never an invented one);
``predict_one(...)`` for one product held in memory; ``evaluate(data) -> dict`` of metrics; ``save(dir)`` /
``load(dir)`` of a model folder whose ``config.json`` holds the task and the predictor's config dataclass;
``encoder_identities()`` (encoder name -> name, version and weights hash); ``modalities`` (what it reads:
``image``, ``text``). The runtime serves any predictor through ``serve_batch`` + ``warm_up`` (``batched``
says whether requests go through a micro-batching worker), so it never switches on task names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, overload, runtime_checkable

import pandas as pd

from skulens.catalog.issues import row_issues
from skulens.catalog.schema import Catalog, RowIssue

#: A request to warm a model up with (the text of a product or review the size of a short title).
WARM_UP_TEXT = "warm up"

C = TypeVar("C")
T = TypeVar("T")


@runtime_checkable
class Predictor(Protocol):
    """What the CLI, the service, the UI and the contract tests rely on, for every task."""

    #: The task name written into ``config.json`` (``categorize``, ``reviews``, ``align``, ``caption``, ``rating``).
    task: ClassVar[str]
    #: Whether serving runs requests through a micro-batching worker (``serve_batch`` on a list of items).
    batched: ClassVar[bool]

    @property
    def modalities(self) -> frozenset[str]:
        """What the predictor reads: ``{"image"}``, ``{"text"}`` or both."""
        ...

    @property
    def config(self) -> Any:
        """The task's config dataclass (serialised into ``config.json``)."""
        ...

    def fit(self, data: Any) -> Predictor: ...

    def predict(self, data: Any) -> pd.DataFrame: ...

    def predict_one(self, *args: Any, **kwargs: Any) -> Any: ...

    def evaluate(self, data: Any) -> dict: ...

    def save(self, folder: str | Path) -> Path: ...

    @classmethod
    def load(cls, folder: str | Path) -> Predictor: ...

    def encoder_identities(self) -> dict[str, str]: ...

    def serve_batch(self, items: list) -> list:
        """One result per served item (the service's request payloads, already decoded)."""
        ...

    def warm_up(self) -> None:
        """One tiny prediction so the first real request does not pay for lazy initialisation."""
        ...


class ConfigField(Generic[T]):
    """A read-only attribute of a predictor that gives a field of its ``config`` dataclass: the field of the
    same name, or ``field``; ``convert`` turns it into the type the attribute promises (e.g. ``list``).

    ``head = ConfigField[str]()`` in a predictor's class body makes ``predictor.head`` read ``predictor.config.head``.
    """

    def __init__(self, convert: Any = None, field: str | None = None) -> None:
        self.convert = convert
        self.field = field

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.field = self.field or name

    @overload
    def __get__(self, instance: None, owner: type) -> ConfigField[T]: ...

    @overload
    def __get__(self, instance: object, owner: type) -> T: ...

    def __get__(self, instance: object | None, owner: type) -> T | ConfigField[T]:
        if instance is None:
            return self
        value = getattr(instance.config, self.field)
        return self.convert(value) if self.convert is not None else value

    def __set__(self, instance: object, value: Any) -> None:
        raise AttributeError(f"'{self.name}' is a setting in config; replace the config to change it")


class ExtractorEncoders:
    """``modalities`` and ``encoder_identities`` of a predictor that reads its ``encoders`` through a
    :class:`~skulens.tasks.features.FeatureExtractor` kept as ``extractor``."""

    extractor: Any
    encoders: Any

    @property
    def modalities(self) -> frozenset[str]:
        """``image`` and/or ``text``: what this model's encoders read."""
        kinds = {self.extractor.encoder(name).modality for name in self.encoders}
        return frozenset("image" if kind == "image" else "text" for kind in kinds)

    def encoder_identities(self) -> dict[str, str]:
        """Encoder name -> identity (name, version and weights hash)."""
        return self.extractor.identities()


def config_dict(config: Any) -> dict:
    """A config dataclass as JSON-ready values (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}


def config_from(cls: type[C], saved: dict, **overrides: Any) -> C:
    """A config dataclass from a saved ``config.json`` (keys it does not know are ignored; missing ones take
    their defaults, so folders written before a field existed still load)."""
    known = {f.name for f in fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known}
    values.update(overrides)
    return cls(**values)


def row_issue_texts(n_rows: int, issues: Iterable[RowIssue]) -> list[str]:
    """Per row of a catalog, its issues joined (``""`` when the row had none)."""
    texts: list[list[str]] = [[] for _ in range(n_rows)]
    for issue in issues:
        if 0 <= issue.row < n_rows and issue.message not in texts[issue.row]:
            texts[issue.row].append(issue.message)
    return ["; ".join(t) for t in texts]


def with_issues(ids: Sequence[str], columns: dict[str, Sequence], issues: Sequence[str]) -> pd.DataFrame:
    """The predictions frame: ``id``, the prediction ``columns``, then ``issue``."""
    frame = pd.DataFrame({"id": list(ids), **{k: list(v) for k, v in columns.items()}})
    frame["issue"] = list(issues)
    return frame


def catalog_row_issues(catalog: Catalog, found: Iterable[RowIssue] = ()) -> list[RowIssue]:
    """The catalog's own issues for the rows it kept, plus ``found`` (issues found later, e.g. while
    embedding), renumbered by catalog row (issues carry source-row numbers; skipped rows have none)."""
    position = {source: i for i, source in enumerate(catalog.source_rows or [])}
    return [
        RowIssue(position[issue.row], issue.id, issue.column, issue.message)
        for issue in row_issues(catalog, found)
        if issue.column != "id" and issue.row in position
    ]
