"""What :func:`promptkit.evaluate` and :func:`promptkit.load_report` return: a run,
summarized (:class:`EvalReport`), with the exit code the command line gives."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .comparing.comparison import Comparison, gate_failures
from .errors import ExitCode
from .reporting.outputs import write_output
from .reporting.summary import Summary
from .results import CaseResult, RunInfo
from .running.storage import RunStore

__all__ = ["EvalReport"]


@dataclass
class EvalReport:
    """A run, summarized: what :func:`evaluate` and :func:`load_report` return.

    Nothing is held open: :meth:`results` opens the run store while it streams. The
    report is also a context manager, for symmetry with code that expects one.

    Attributes:
        run: The stored run (id, status, the resolved spec it ran).
        store_path: The run store (``runs.db``) holding its results.
        summary: The leaderboard: one row per prompt × provider.
        comparison: The comparison with the baseline, when one was given.
        title: A heading for presenters (the spec's description and the run id).
        unreachable: Provider id → why it could not be reached.
        engines: Local provider id → the engine and model that served it.
        warnings: Things a presenter should show (deprecated keys, token counts that fell
            back to cl100k_base, a few-shot budget no example fits): promptkit's own
            warnings given during this call, collected instead of printed.
        written: The output files written.
        budget_reached: Why the budget stopped the run (then it is ``interrupted``).
    """

    run: RunInfo
    store_path: Path
    summary: Summary
    comparison: Comparison | None = None
    title: str = ""
    unreachable: dict[str, str] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    fail_on_regression: bool = False
    max_drop: float | None = None
    budget_reached: str | None = None

    @property
    def rows(self) -> list[Any]:
        """The leaderboard rows: pass rate, interval, score, metrics, latency, cost, ..."""
        return self.summary.rows

    def results(self, prompt_id: str | None = None, provider_id: str | None = None
                ) -> Iterator[CaseResult]:
        """Every result of the run (optionally of one prompt and/or provider), streamed."""
        with RunStore(self.store_path) as store:
            yield from store.results(self.run.run_id, prompt_id, provider_id)

    def write(self, path: str | Path) -> None:
        """Write an output file (``.json``, ``.jsonl``, ``.csv``, ``.xml``, ``.html``)."""
        write_output(path, self.summary, self.results(), self.run, self.comparison)
        self.written.append(str(path))

    def failed_providers(self) -> list[str]:
        """Providers that answered no request: their rows say nothing about quality."""
        answered: dict[str, bool] = {}
        for row in self.summary.rows:
            ok = (row.errors - row.input_errors < row.cases - row.input_errors
                  or row.input_errors == row.cases)
            answered[row.provider_id] = answered.get(row.provider_id, False) or ok
        return [provider for provider, ok in answered.items() if not ok]

    def broken_rows(self) -> list[str]:
        """Rows every case of which failed to render its prompt or assertions: the
        eval's input is wrong (found at run time, for cases past the first)."""
        return [f"every case of {row.label} failed before scoring: {row.first_input_error}"
                for row in self.summary.rows if row.cases and row.input_errors == row.cases]

    def failed_checks(self) -> list[str]:
        """The gates that failed, one line each: threshold, regression, max-drop, and a
        comparison a gate cannot vouch for."""
        failed = []
        below = [row for row in self.summary.rows if row.meets_threshold is False]
        if below:
            failed.append("threshold: " + ", ".join(
                f"{row.label} {row.pass_rate:.1%} < {row.threshold:.0%}" for row in below))
        if self.comparison is not None:
            failed += gate_failures(self.comparison, fail_on_regression=self.fail_on_regression,
                                    max_drop=self.max_drop)
        return failed

    @property
    def exit_code(self) -> int:
        """What ``promptkit eval`` exits with: 2 when every case of a row failed on its
        own input; 3 when the run did not complete (a stored run interrupted, failed or
        still running, its budget reached, a provider unreachable or answering nothing);
        1 when a gate failed (:meth:`failed_checks`); else 0."""
        if self.broken_rows():
            return ExitCode.INVALID_INPUT
        if self.run.status != "finished" or self.unreachable or self.failed_providers():
            return ExitCode.RUN_INCOMPLETE
        return ExitCode.FAILED if self.failed_checks() else ExitCode.OK

    def close(self) -> None:
        """Nothing to release: the report holds no open file or database."""

    def __enter__(self) -> EvalReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
