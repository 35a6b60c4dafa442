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
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import pandas as pd

from skulens.catalog.schema import Catalog, RowIssue

#: A request to warm a model up with (the text of a product or review the size of a short title).
WARM_UP_TEXT = "warm up"

C = TypeVar("C")


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


def catalog_row_issues(catalog: Catalog) -> list[RowIssue]:
    """The catalog's own issues (found while it was read) that concern rows it kept, numbered by catalog row."""
    position = {row_id: i for i, row_id in enumerate(catalog.ids)}
    return [
        RowIssue(position[issue.id], issue.id, issue.column, issue.message)
        for issue in catalog.issues
        if issue.id is not None and issue.id in position
    ]
