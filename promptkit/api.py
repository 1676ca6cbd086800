"""promptkit as a library call: run an eval, read a stored run, estimate one. Prints nothing.

:func:`evaluate` runs an eval spec and returns an :class:`EvalReport`: its leaderboard rows,
its results (streamed from the run store), the comparison with a baseline, the warnings a
presenter should show, and the exit code the command line would give. :func:`load_report`
reads a stored run the same way, and :func:`estimate` counts what a run would send. The
command line, ``promptkit runs show`` and the pytest plugin are presenters over these.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .comparing.baseline import Side, resolve_side, side_from_run
from .comparing.comparison import Comparison, compare, gate_failures
from .errors import ExitCode, OutputError, PromptkitError, collecting_warnings, warn
from .reporting.outputs import output_format, refuse_overwrite, write_output
from .reporting.summary import Summary, order_rows, summarize
from .results import CaseResult, RunInfo
from .running.budget import Budget, EstimateRow, budget_for, estimate_row
from .running.plan import EvalPlan, check_api_keys, plan_eval
from .running.runner import FinishedRun, RunOptions, run_eval
from .running.shards import check_shard, merge_shards, store_path
from .running.spec import LoadedSpec, apply_overrides, load_spec
from .running.storage import RunStore, default_paths, find_run, find_run_stores, hourly_prices

__all__ = ["Estimate", "EvalReport", "compare_runs", "compare_variants", "estimate", "evaluate",
           "load_report", "merge_runs", "save_baseline_file", "write_comparison"]


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


def evaluate(
    spec: str | Path | LoadedSpec,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api: Literal["chat", "completions"] | None = None,
    api_key_env: str | None = None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    concurrency: int | None = None,
    repeat: int | None = None,
    prompts: Sequence[str] = (),
    providers: Sequence[str] = (),
    use_cache: bool = True,
    resume: bool = False,
    store_dir: str | Path | None = None,
    baseline: str | Path | None = None,
    alpha: float = 0.05,
    fail_on_regression: bool = False,
    max_drop: float | None = None,
    outputs: Sequence[str | Path] = (),
    max_requests: int | None = None,
    max_cost: float | None = None,
    budget: Budget | None = None,
    on_start: Callable[[RunInfo, int, int], None] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
    on_local: Callable[[str, Any], None] | None = None,
) -> EvalReport:
    """Run an eval and return its report; prints nothing.

    Args:
        spec: An eval spec file, or one already loaded with ``load_spec``.
        base_url: Run against this OpenAI-compatible endpoint instead of the spec's
            providers (with ``model``, and optionally ``api`` and ``api_key_env``).
        limit: Use only the first N cases.
        shard: ``(I, N)``: run only shard I of N of those cases (each case's shard is
            ``int(sha256(case id), 16) % N + 1``); the run records it, for :func:`merge_runs`.
        concurrency, repeat: Override the spec's.
        prompts, providers: Keep only these ids.
        use_cache: Read and write the response cache.
        resume: Continue the last unfinished run of this spec (and ``shard``).
        store_dir: Where runs and the cache live (default: ``.promptkit/`` beside the spec).
        baseline: A baseline file or a stored run id to compare with.
        alpha: Level of the one-sided tests (the gate and the ★ mark).
        fail_on_regression: A significant regression makes ``exit_code`` 1.
        max_drop: A gated row falling more than this many points makes ``exit_code`` 1.
        outputs: Files to write (checked before any request).
        max_requests, max_cost: This call's budget (each wins over the spec's key): no
            more requests sent, no more USD spent; reaching it leaves the run
            ``interrupted`` (``exit_code`` 3), for ``resume``. ``budget`` wins over both.
        on_start, on_result, on_local: Callbacks for a progress presenter.

    Raises:
        PromptkitError: invalid input (``exit_code`` 2 of its branch) or a run that could
            not complete (3), with a one-line message; its ``warnings`` are the ones given
            before it.
    """
    with _collected_warnings() as collected:
        shard = None if shard is None else check_shard(shard)
        loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
        loaded = apply_overrides(loaded, base_url=base_url, model=model, api=api,
                                 api_key_env=api_key_env, concurrency=concurrency,
                                 repeat=repeat, prompt_ids=tuple(prompts),
                                 provider_ids=tuple(providers))
        store = Path(store_dir) if store_dir is not None else None
        plan = plan_eval(loaded)
        baseline_ref = str(baseline) if baseline is not None else None
        for output in outputs:
            check_output_path(str(output), plan, baseline_ref)
        baseline_side = _baseline_side(baseline_ref, default_paths(loaded.path, store)[0],
                                       loaded)  # before any request
        options = RunOptions(use_cache=use_cache, resume=resume, limit=limit, shard=shard,
                             store_dir=store, on_start=on_start, on_result=on_result,
                             on_local=on_local, budget=budget or budget_for(
                                 loaded.spec, max_requests, max_cost))
        finished = _run_sync(lambda: run_eval(plan, options))
        report = _report(finished, alpha)
        _gate(report, baseline_side, alpha, fail_on_regression, max_drop, outputs)
    report.warnings += collected
    return report


def load_report(run: str = "last", *, store_dir: str | Path | None = None,
                alpha: float = 0.05) -> EvalReport:
    """A stored run's report (``promptkit runs show``): its leaderboard and results.

    Args:
        run: A run id, a unique prefix or ``last``.
        store_dir: The run store folder (default: ``.promptkit/`` here and one folder down).
        alpha: Level of the paired test behind the ★ mark.
    """
    store, info = find_run(run, find_run_stores(store_dir))
    with store:
        return _stored_report(store, info, alpha)


def merge_runs(sources: Sequence[str | Path], *, store_dir: str | Path | None = None,
               allow_partial: bool = False, baseline: str | Path | None = None,
               alpha: float = 0.05, fail_on_regression: bool = False,
               max_drop: float | None = None, outputs: Sequence[str | Path] = ()
               ) -> EvalReport:
    """Merge shard runs into one stored run (``promptkit merge``) and report it.

    ``sources`` are run store folders (holding ``runs.db``) or run database files: from
    each, its newest shard run (of ``evaluate(..., shard=(I, N))``). The merged run is
    stored in ``store_dir`` (default: the first source's store); ``allow_partial`` merges
    despite missing or unfinished shards (the run is then ``interrupted``: ``exit_code``
    3). The rest is as for :func:`evaluate` (a ``baseline`` run: in the merged run's store).

    Raises:
        PromptkitError: runs of different specs, shard counts or ``--limit``, a shard
            twice, or (without ``allow_partial``) one missing or unfinished: nothing is
            written then.
    """
    with _collected_warnings() as collected:
        inputs = [store_path(source) for source in sources]
        ref = str(baseline) if baseline is not None else None
        for output in outputs:
            check_output_path(str(output), None, ref, inputs)
        baseline_side = _baseline_side(ref, Path(store_dir) / "runs.db" if store_dir
                                       else inputs[0]) if inputs else None
        info, path = merge_shards(sources, store_dir, allow_partial)
        with RunStore(path) as store:
            report = _stored_report(store, info, alpha)
        _gate(report, baseline_side, alpha, fail_on_regression, max_drop, outputs)
    report.warnings += collected
    return report


def compare_runs(baseline: str, candidate: str = "last", *,
                 store_dir: str | Path | None = None, alpha: float = 0.05, seed: int = 0,
                 max_drop: float | None = None) -> tuple[Comparison, Side]:
    """Compare two stored runs or baseline files (``promptkit compare``).

    Returns:
        The comparison and the candidate side (to write its cases into a report).
    """
    paths = find_run_stores(store_dir)
    before, after = resolve_side(baseline, paths), resolve_side(candidate, paths)
    return compare(before, after, alpha=alpha, seed=seed, max_drop=max_drop), after


def compare_variants(prompt_a: str, prompt_b: str, *, run: str = "last",
                     provider: str | None = None, store_dir: str | Path | None = None,
                     alpha: float = 0.05, seed: int = 0) -> tuple[Comparison, Side]:
    """Compare two prompt variants of one run on the same cases (``promptkit ab``)."""
    from .comparing.baseline import variant_sides

    store, info = find_run(run, find_run_stores(store_dir))
    with store:
        side_a, side_b = variant_sides(store, info, prompt_a, prompt_b, provider)
    return compare(side_a, side_b, alpha=alpha, seed=seed, settings=False), side_b


def write_comparison(output: str | Path, comparison: Comparison, candidate: Side) -> None:
    """Write a comparison to ``.html``, ``.json`` or ``.md`` (a summary for a pull request),
    with the candidate's cases when the candidate is a stored run.

    Raises:
        PromptkitError: another suffix, or a baseline file in the way.
    """
    if output_format(output) not in (".html", ".json", ".md"):
        raise PromptkitError(f"--output {output}: a comparison is written as .html, .json "
                             "or .md")
    refuse_overwrite(output)
    if candidate.store_path is None or candidate.run_id is None:
        write_output(output, summarize([]), [], None, comparison)
        return
    with RunStore(candidate.store_path) as store:
        report = _stored_report(store, store.get_run(candidate.run_id), 0.05)
    report.comparison = comparison
    report.write(output)


def save_baseline_file(output: str | Path, run: str = "last", *,
                       store_dir: str | Path | None = None,
                       allow_unfinished: bool = False) -> tuple[RunInfo, Side]:
    """Save a stored run as a baseline file (``promptkit baseline save``).

    Raises:
        PromptkitError: an unfinished run (unless allowed), a missing folder, or an
            existing file that is not a baseline (never overwritten).
    """
    from .comparing.baseline import save_baseline
    from .reporting.outputs import is_baseline_file

    store, info = find_run(run, find_run_stores(store_dir))
    with store:
        if info.status != "finished" and not allow_unfinished:
            raise PromptkitError(f"run {info.run_id} is {info.status}; finish it (`promptkit "
                                 "eval SPEC --resume`) or pass --allow-unfinished")
        side = side_from_run(store, info)
    target = Path(output)
    if not target.resolve().parent.is_dir():
        raise PromptkitError(f"--output {output}: folder does not exist")
    if target.exists() and not is_baseline_file(target):
        raise PromptkitError(f"--output {output} exists and is not a promptkit baseline; "
                             "refusing to overwrite it (give a new path, or the baseline "
                             "file to refresh)")
    save_baseline(side, target, _relative(info.eval_path))
    return info, side


def _relative(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


@dataclass
class Estimate:
    """A dry run: per prompt × provider, requests, input tokens and cost."""

    path: Path
    rows: list[EstimateRow]
    by_embeddings: list[str]  # variants whose examples a run would select by embeddings
    warnings: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(row.requests for row in self.rows)


def estimate(spec: str | Path | LoadedSpec, *, limit: int | None = None,
             baseline: str | Path | None = None, store_dir: str | Path | None = None,
             **overrides: Any) -> Estimate:
    """Count what a run would send, without sending anything (``--dry-run``).

    Checks what a run would need first: every ``api_key_env`` set, the local engine and
    model installed (not started), the baseline readable. Examples a run would select by
    embeddings are counted with the BM25 choice.
    ``overrides`` are :func:`evaluate`'s ``base_url``, ``model``, ``prompts``, ...
    """
    with _collected_warnings() as collected:
        loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
        overrides["prompt_ids"] = tuple(overrides.pop("prompts", ()))
        overrides["provider_ids"] = tuple(overrides.pop("providers", ()))
        loaded = apply_overrides(loaded, **overrides)
        plan = plan_eval(loaded)
        check_api_keys(plan)
        for provider in plan.spec.providers:  # the engine and model a run would start
            if provider.is_local:
                from .running.local import LocalServer

                LocalServer(provider.local_model).check()
        _baseline_side(str(baseline) if baseline is not None else None,
                       default_paths(loaded.path, store_dir)[0], loaded)
        rows = [estimate_row(plan, variant, provider, limit)
                for provider in plan.spec.providers for variant in plan.spec.prompts]
    by_embeddings = [v.id for v in plan.spec.prompts if v.fewshot and v.fewshot.embeddings]
    return Estimate(loaded.path, rows, by_embeddings, collected)


# -- the parts -------------------------------------------------------------------------


def _baseline_side(ref: str | None, runs_path: Path, loaded: LoadedSpec | None = None
                   ) -> Side | None:
    """The baseline to compare with: a baseline file, or a run in the store ``runs_path``
    (of the eval ``loaded``, when given: a run of another eval is warned about)."""
    if ref is None:
        return None
    if not runs_path.is_file() and not (Path(ref).is_file() or ref.endswith(".json")):
        raise PromptkitError(f"--baseline {ref}: no such file, and no runs in {runs_path} "
                             "yet")
    side = resolve_side(ref, [runs_path])
    if loaded and side.eval_path and Path(side.eval_path).name != loaded.path.name:
        warn(f"--baseline {ref} is a run of {side.eval_path}, not of {loaded.path.name}: "
             "only its rows with the same prompt and provider ids are compared")
    return side


def _gate(report: EvalReport, baseline: Side | None, alpha: float, fail_on_regression: bool,
          max_drop: float | None, outputs: Sequence[str | Path]) -> None:
    """Compare the report's run with ``baseline`` (when given) under the gate of the
    run's spec, set what :meth:`EvalReport.failed_checks` gates on, write ``outputs``."""
    report.fail_on_regression, report.max_drop = fail_on_regression, max_drop
    if baseline is not None:
        with RunStore(report.store_path) as store:
            candidate = side_from_run(store, report.run)
        report.comparison = compare(baseline, candidate, alpha=alpha, max_drop=max_drop,
                                    gate=report.run.config.get("gate"))
    for output in outputs:
        report.write(output)


def _stored_report(store: RunStore, info: RunInfo, alpha: float) -> EvalReport:
    """The report of a stored run (open in ``store``), as its config describes it."""
    summary = summarize(store.results(info.run_id), info.config.get("threshold"),
                        alpha=alpha, hourly=hourly_prices(info.config))
    order_rows(summary, [p.get("id") for p in info.config.get("prompts", [])],
               [p.get("id") for p in info.config.get("providers", [])])
    title = info.config.get("description") or Path(info.eval_path).name
    return EvalReport(info, store.path, summary, title=f"{title} — run {info.run_id}")


def _report(finished: FinishedRun, alpha: float) -> EvalReport:
    """A run just ended, as ``runs show`` reports it, with its endpoints' and budget's news."""
    with RunStore(finished.store_path) as store:
        report = _stored_report(store, finished.run, alpha)
    report.unreachable, report.engines = dict(finished.unreachable), dict(finished.engines)
    report.budget_reached = finished.budget_reached
    return report


def check_output_path(output: str, plan: EvalPlan | None, baseline: str | None = None,
                      inputs: Sequence[str | Path] = ()) -> None:
    """Refuse an output path that cannot be written or would overwrite an input: the
    eval's files (of ``plan``), the ``baseline`` file or one of ``inputs``.

    Raises:
        PromptkitError: an unsupported suffix, a missing folder, an input or a baseline
            in the way (exit 2).
        OutputError: the folder cannot be written (exit 3).
    """
    output_format(output)
    target = Path(output).resolve()
    if not target.parent.is_dir():
        raise PromptkitError(f"--output {output}: folder does not exist")
    protected = [*inputs, baseline if baseline and Path(baseline).is_file() else None]
    if plan is not None:
        loaded = plan.loaded
        protected += [
            loaded.path, loaded.dataset_path, plan.store.root / "promptkit.lock",
            *(loaded.base_dir / v.fewshot.pool for v in loaded.spec.prompts if v.fewshot)]
    refuse_overwrite(output, protected)
    if plan is not None and target.is_relative_to(plan.store.root.resolve()):
        raise PromptkitError(f"--output {output} is inside the template store "
                             f"{plan.store.root}; write the report elsewhere")
    try:  # find out now, not after every request has been paid for
        with tempfile.TemporaryFile(dir=target.parent):
            pass
    except OSError as exc:
        raise OutputError(f"--output {output}: cannot write in {target.parent}: "
                          f"{exc.strerror or exc}") from None


def _run_sync(make: Callable[[], Any]) -> Any:
    """Run a coroutine to the end, also from code that already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    context = contextvars.copy_context()  # the thread collects warnings for this call too
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, lambda: asyncio.run(make())).result()


@contextlib.contextmanager
def _collected_warnings() -> Iterator[list[str]]:
    """promptkit's own warnings, collected instead of shown (a library call prints
    nothing); other libraries' warnings are left alone. An error raised inside carries
    the warnings given before it, so a presenter can still show them."""
    with collecting_warnings() as collected:
        try:
            yield collected
        except PromptkitError as exc:
            exc.warnings = tuple(dict.fromkeys([*exc.warnings, *collected]))
            raise
