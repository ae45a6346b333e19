"""Progress bars for transfers, in a terminal or a Jupyter notebook (rich).

:class:`ProgressBars` is a progress callback: give it to ``client.upload``,
``client.download``, or a push/pull, and it shows a bar per active file and a total with
rate and ETA::

    with aetiket.ProgressBars() as bars:
        await client.upload("raw.h5", scope="lab1", file_uid=uid, progress=bars)

In a notebook cell the same code renders a live widget (rich detects Jupyter).
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .transfer.progress import Progress as Event

__all__ = ("ProgressBars",)


class ProgressBars:
    """A rich display fed by transfer progress events (one bar per name, and a total)."""

    def __init__(
        self, *, total: int | None = None, console: Console | None = None, transient: bool = False
    ) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}", justify="left"),
            BarColumn(bar_width=None),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=transient,
            expand=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._done: dict[str, int] = {}
        self._total_task: TaskID | None = None
        self._expected = total

    def __enter__(self) -> ProgressBars:
        self._progress.start()
        if self._expected is not None:
            self._total_task = self._progress.add_task("total", total=self._expected)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def add_total(self, size: int) -> None:
        """Grow the expected total (bulk jobs learn it as they go)."""
        self._expected = (self._expected or 0) + size
        if self._total_task is None:
            self._total_task = self._progress.add_task("total", total=self._expected)
        else:
            self._progress.update(self._total_task, total=self._expected)

    def __call__(self, event: Event) -> None:
        task = self._tasks.get(event.name)
        if task is None:
            label = event.name if len(event.name) <= 40 else "…" + event.name[-39:]
            task = self._tasks[event.name] = self._progress.add_task(label, total=event.total)
        self._progress.update(task, completed=event.done, total=event.total)
        if self._total_task is not None:
            before = self._done.get(event.name, 0)
            self._done[event.name] = event.done
            self._progress.advance(self._total_task, event.done - before)
        if event.finished:
            self._progress.remove_task(task)
            del self._tasks[event.name]
