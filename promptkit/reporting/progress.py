"""Progress of a running eval: a rich bar on a terminal, plain lines elsewhere (CI).

The runner calls :meth:`EvalProgress.result` once per finished result; this module
decides what a person sees. Plain mode prints a line every 10% or every 10 s,
whichever comes first, so CI logs stay short but show the run is alive.
"""

from __future__ import annotations

import time
from typing import Literal

from rich.console import Console

from ..results import CaseResult, RunInfo

Mode = Literal["bar", "plain", "quiet"]


class EvalProgress:
    """Counts results and shows them.

    Args:
        console: Where to print (stderr, so stdout stays for data).
        mode: ``bar``, ``plain`` or ``quiet``; ``None`` picks ``bar`` on a terminal.
    """

    def __init__(self, console: Console, mode: Mode | None = None):
        self.console = console
        self.mode: Mode = mode or ("bar" if console.is_terminal else "plain")
        self.total = 0
        self.done = 0
        self.errors = 0
        self.failed = 0
        self.cached = 0
        self._bar = None
        self._task = None
        self._last_line = 0.0
        self._next_fraction = 0.1

    def start(self, run: RunInfo, total: int, already: int = 0) -> None:
        self.total = total
        self.done = already
        self._started = self._last_line = time.monotonic()
        if self.mode == "quiet":
            return
        resumed = f", {already} already done" if already else ""
        self.console.print(f"run {run.run_id}: {total} results to produce{resumed}",
                           highlight=False)
        if self.mode == "bar":
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=True)
            self._task = self._bar.add_task("eval", total=total, completed=already,
                                            status="")
            self._bar.start()

    def result(self, result: CaseResult) -> None:
        self.done += 1
        self.errors += result.error is not None
        self.failed += result.error is None and not result.passed
        self.cached += result.cached
        if self._bar is not None:
            self._bar.update(self._task, advance=1, status=self._status())
        elif self.mode == "plain":
            now = time.monotonic()
            fraction = self.done / self.total if self.total else 1.0
            if fraction >= self._next_fraction or now - self._last_line >= 10:
                while self._next_fraction <= fraction:
                    self._next_fraction += 0.1
                self._last_line = now
                self.console.print(f"progress {self.done}/{self.total} ({fraction:.0%}) "
                                   f"{self._status()}", highlight=False)

    def _status(self) -> str:
        parts = [f"failed {self.failed}", f"errors {self.errors}"]
        if self.cached:
            parts.append(f"cached {self.cached}")
        return ", ".join(parts)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.mode != "quiet" and hasattr(self, "_started"):  # nothing to say otherwise
            elapsed = time.monotonic() - self._started
            self.console.print(f"done: {self.done} results in {elapsed:.1f}s, "
                               f"{self._status()}", highlight=False)
