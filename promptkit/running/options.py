"""How to run (not what) and what a run returns: :class:`RunOptions`, :class:`FinishedRun`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..datasets import Case
from ..results import CaseResult, RunInfo
from .shards import shard_of
from .storage import RunStore, Shard

if TYPE_CHECKING:
    from .budget import Budget
    from .local import LocalServer

__all__ = ["FinishedRun", "RunOptions"]


@dataclass
class RunOptions:
    """How to run (not what): the CLI's flags."""

    use_cache: bool = True
    resume: bool = False
    limit: int | None = None
    case_ids: frozenset[str] | None = None  # only these cases (of the first `limit`)
    shard: Shard | None = None  # (I, N): only shard I's cases (of the first `limit`)
    budget: Budget | None = None  # the requests and dollars this call may spend
    store_dir: Path | None = None
    cache_dir: Path | None = None  # the cache's folder, when not the run store's
    # Local servers the caller owns (by provider id): started on first need, never stopped
    # here, so a caller running many small evals (promptkit optimize) loads the model once.
    servers: dict[str, LocalServer] | None = None
    on_result: Callable[[CaseResult], None] | None = None
    on_start: Callable[[RunInfo, int, int], None] | None = None  # run, planned, already done
    on_local: Callable[[str, LocalServer], None] | None = None  # a local server is up
    batch_export: Path | None = None  # batch mode: write the requests here, send nothing
    batch_import: Path | None = None  # batch mode: the answers are this results file
    # batch mode: (provider id, batch id, status, requests done, total) at each poll
    on_batch: Callable[[str, str, str, int, int], None] | None = None

    def runs_case(self, case: Case) -> bool:
        """Whether ``case`` is one to run (of the first ``limit``): ``case_ids`` names it
        and it is in ``shard``."""
        return (self.case_ids is None or case.id in self.case_ids) and (
            self.shard is None or shard_of(case.id, self.shard[1]) == self.shard[0])


@dataclass
class FinishedRun:
    """A run that ended (finished, or interrupted and resumable), for reports.

    Holds no open database: :meth:`results` opens the run store while it streams.
    """

    run: RunInfo
    store_path: Path
    unreachable: dict[str, str] = field(default_factory=dict)  # provider id -> why
    engines: dict[str, str] = field(default_factory=dict)  # local provider id -> engine, model
    budget_reached: str | None = None  # why the budget stopped the run (it is interrupted)
    # provider id -> replica URL (no userinfo) -> answers it served (replicas.py)
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)

    def results(self, prompt_id: str | None = None, provider_id: str | None = None
                ) -> Iterator[CaseResult]:
        """The run's results in report order, streamed from the run store."""
        with RunStore(self.store_path) as store:
            yield from store.results(self.run.run_id, prompt_id, provider_id)
