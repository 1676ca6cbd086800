"""promptkit as a library call: run an eval, read a stored run, estimate one. Prints nothing.

:func:`evaluate` runs an eval spec and returns an :class:`EvalReport`: its leaderboard rows,
its results (streamed from the run store), the comparison with a baseline, the warnings a
presenter should show, and the exit code the command line would give. :func:`load_report`
reads a stored run the same way, and :func:`estimate` counts what a run would send. The
command line, ``promptkit runs show`` and the pytest plugin are presenters over these.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .comparing.baseline import Side, resolve_side, side_from_run
from .comparing.comparison import Comparison, compare
from .errors import ConfigError, OutputError, PromptkitError, collecting_warnings, warn
from .eval_report import EvalReport
from .reporting.outputs import output_format, refuse_overwrite, write_output
from .reporting.summary import order_rows, summarize
from .results import CaseResult, RunInfo
from .running.budget import Budget, EstimateRow, budget_for, estimate_row
from .running.plan import EvalPlan, check_api_keys, plan_eval
from .running.runner import FinishedRun, RunOptions, run_eval, run_sync
from .running.shards import check_shard, merge_shards, store_path
from .running.spec import LoadedSpec, apply_overrides, load_spec
from .running.storage import RunStore, default_paths, find_run, find_run_stores, hourly_prices

__all__ = [
    "Estimate",
    "EvalReport",
    "compare_runs",
    "compare_variants",
    "estimate",
    "evaluate",
    "export_batch",
    "load_report",
    "merge_runs",
    "save_baseline_file",
    "write_comparison",
]


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
    batch: bool = False,
    batch_import: str | Path | None = None,
    on_start: Callable[[RunInfo, int, int], None] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
    on_local: Callable[[str, Any], None] | None = None,
    on_batch: Callable[[str, str, str, int, int], None] | None = None,
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
        batch: Send every provider's requests as Batch API jobs (``/v1/files`` and
            ``/v1/batches``), in rounds, resumable across the wait.
        batch_import: Score the answers of this batch results file (``vllm run-batch``'s
            output for a ``batch export``) as a run; nothing is sent.
        on_start, on_result, on_local, on_batch: Callbacks for a progress presenter.

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
                                 provider_ids=tuple(providers),
                                 batch=batch or batch_import is not None)
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
                                 loaded.spec, max_requests, max_cost), on_batch=on_batch,
                             batch_import=Path(batch_import) if batch_import else None)
        finished = run_sync(lambda: run_eval(plan, options))
        report = _report(finished, alpha)
        _gate(report, baseline_side, alpha, fail_on_regression, max_drop, outputs)
    report.warnings += collected
    return report


def export_batch(spec: str | Path | LoadedSpec, output: str | Path, *,
                 limit: int | None = None, prompts: Sequence[str] = (),
                 providers: Sequence[str] = (), store_dir: str | Path | None = None) -> int:
    """Write the requests a batch run would send (those the cache cannot answer) as an
    OpenAI batch input file, for ``vllm run-batch -i FILE -o results.jsonl --model M``;
    sends nothing and keeps no run. Returns the lines written.

    Raises:
        PromptkitError: invalid input, or an output that exists or is not ``.jsonl``.
    """
    output = Path(output)
    if output.suffix.lower() != ".jsonl" or output.exists() or not output.parent.is_dir():
        raise ConfigError(f"{output}: give a new .jsonl file in an existing folder (an "
                          "existing file is not overwritten)")
    with _collected_warnings(), tempfile.TemporaryDirectory() as scratch:
        loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
        loaded = apply_overrides(loaded, prompt_ids=tuple(prompts),
                                 provider_ids=tuple(providers), batch=True)
        plan = plan_eval(loaded)
        cache_dir = default_paths(loaded.path, store_dir)[1].parent
        options = RunOptions(limit=limit, store_dir=Path(scratch), cache_dir=cache_dir,
                             batch_export=output)
        try:
            output.touch()
            run_sync(lambda: run_eval(plan, options))
        except BaseException:
            output.unlink(missing_ok=True)  # no half-written file blocks the next try
            raise
    return sum(1 for _ in output.open(encoding="utf-8"))


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
    report.summary.replicas = dict(finished.replicas)
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
