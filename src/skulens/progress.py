"""Progress on stderr for long work (rich): a bar with count and ETA where the total is known, a spinner
with elapsed time for a step without one (e.g. fitting a head).

Bars and steps opened while another is open share its live display, so a step such as "training" shows
the bars of its sub-steps (embedding) beneath it, and every line keeps its elapsed time when done.

When stderr is not a terminal (a redirected log, CI), a live display cannot redraw: each bar and step is
written as whole plain lines instead (when it starts, every :data:`PLAIN_EVERY` seconds while a bar runs,
and when it ends, with its count and elapsed time), never cut to a guessed width.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

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
#: Seconds between the plain progress lines of a running bar (logs, not terminals).
PLAIN_EVERY = 30.0


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


def _elapsed(started: float) -> str:
    return str(timedelta(seconds=int(time.monotonic() - started)))


class _PlainBar(_Bar):
    """A bar written as whole lines on a console that is not a terminal: ``description done/total (share)``
    at most every :data:`PLAIN_EVERY` seconds, and a final line with the count and elapsed time."""

    def __init__(self, console: Console, description: str, total: int) -> None:
        super().__init__(None, None)
        self._console, self._description, self._total = console, description, total
        self.done, self.started = 0, time.monotonic()
        self._last = self.started

    def _count(self) -> str:
        return f"{self.done:,}/{self._total:,}"

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= PLAIN_EVERY and self.done < self._total:
            self._last = now
            rate = self.done / (now - self.started)
            eta = str(timedelta(seconds=int((self._total - self.done) / rate))) if rate > 0 else "?"
            share = self.done / self._total
            self._console.print(
                f"  {self._description} {self._count()} ({share:.0%}), {_elapsed(self.started)} elapsed, eta {eta}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def finish(self, failed: bool) -> None:
        mark = "✗" if failed else "✓"
        self._console.print(
            f"{mark} {self._description} {self._count()}{' (failed)' if failed else ''} in {_elapsed(self.started)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _plain_console() -> Console | None:
    """The stderr console when it is not a terminal (write plain lines), else None (draw live bars)."""
    console = Console(stderr=True)
    return None if console.is_terminal else console


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[_Bar]:
    """Yields an object with ``advance(n)``; draws a bar (count, elapsed, ETA) on stderr only when
    enabled and total > 0 (on a non-terminal: whole lines, see the module note)."""
    if not enabled or total <= 0:
        yield _Bar(None, None)
        return
    plain = _plain_console()
    if plain is not None:
        bar = _PlainBar(plain, description, total)
        try:
            yield bar
        except BaseException:
            bar.finish(failed=True)
            raise
        bar.finish(failed=False)
        return
    with _shared() as progress:
        task = progress.add_task(description, total=total)
        try:
            yield _Bar(progress, task)
        finally:
            progress.stop_task(task)


@contextmanager
def step(description: str, enabled: bool = True) -> Iterator[_Bar]:
    """A step of unknown length: a spinner with elapsed time while it runs, a tick and its duration after
    (on a non-terminal: a line when it starts and one when it ends)."""
    if not enabled:
        yield _Bar(None, None)
        return
    plain = _plain_console()
    if plain is not None:
        started = time.monotonic()
        plain.print(f"… {description}", markup=False, highlight=False, soft_wrap=True)
        try:
            yield _Bar(None, None)
        except BaseException:
            plain.print(f"✗ {description} (failed) after {_elapsed(started)}", markup=False, highlight=False, soft_wrap=True)
            raise
        plain.print(f"✓ {description} in {_elapsed(started)}", markup=False, highlight=False, soft_wrap=True)
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
