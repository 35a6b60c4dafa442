"""Progress on stderr for long work (rich): a bar with count and ETA where the total is known, a spinner
with elapsed time for a step without one (e.g. fitting a head).

Bars and steps opened while another is open share its live display, so a step such as "training" shows
the bars of its sub-steps (embedding) beneath it, and every line keeps its elapsed time when done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

_display: Progress | None = None
_open = 0


class _Count(ProgressColumn):
    """``done/total`` for bars; nothing for open-ended steps."""

    def render(self, task: Task) -> Text:
        if task.fields.get("step"):
            return Text("")
        return Text(f"{int(task.completed):,}/{int(task.total or 0):,}", style="progress.download")


class _StepAwareBar(BarColumn):
    """A bar for bars; a blank for open-ended steps (the spinner shows they run)."""

    def render(self, task: Task):
        return Text("") if task.fields.get("step") else super().render(task)


class _Remaining(ProgressColumn):
    """``eta 0:01:23`` while a bar runs; nothing for open-ended or finished tasks."""

    def __init__(self) -> None:
        super().__init__()
        self._inner = TimeRemainingColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("step") or task.finished:
            return Text("")
        return Text.assemble("eta ", self._inner.render(task))


class _Bar:
    """The handle a bar or step yields: ``advance(n)`` moves a bar on."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


@contextmanager
def _shared() -> Iterator[Progress]:
    global _display, _open
    if _display is None:
        _display = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            _StepAwareBar(bar_width=30),
            _Count(),
            TimeElapsedColumn(),
            _Remaining(),
            console=Console(stderr=True),
        )
        _display.start()
    _open += 1
    try:
        yield _display
    finally:
        _open -= 1
        if _open == 0:
            _display.stop()
            _display = None


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[_Bar]:
    """Yields an object with ``advance(n)``; draws a bar (count, elapsed, ETA) on stderr only when
    enabled and total > 0."""
    if not enabled or total <= 0:
        yield _Bar(None, None)
        return
    with _shared() as progress:
        task = progress.add_task(description, total=total)
        try:
            yield _Bar(progress, task)
        finally:
            progress.stop_task(task)


@contextmanager
def step(description: str, enabled: bool = True) -> Iterator[_Bar]:
    """A step of unknown length: a spinner with elapsed time while it runs, a tick and its duration after."""
    if not enabled:
        yield _Bar(None, None)
        return
    with _shared() as progress:
        task = progress.add_task(description, total=None, step=True)
        try:
            yield _Bar(None, None)
        except BaseException:
            progress.update(task, description=f"{description} [red](failed)[/]")
            raise
        else:
            progress.update(task, total=1, completed=1)
        finally:
            progress.stop_task(task)
