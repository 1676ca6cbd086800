"""``promptkit eval`` as a library call: prepare, run, report, decide the exit code.

The CLI parses flags into an :class:`EvalRequest` and calls :func:`run_and_report`
(or :func:`print_dry_run`); everything a user sees about a run is decided here.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .comparing.baseline import Side, resolve_side, side_from_run
from .comparing.comparison import Comparison, compare
from .errors import EndpointError, ExitCode, OutputError, PromptkitError
from .reporting.console import print_comparison, print_leaderboard
from .reporting.outputs import output_format, refuse_overwrite, write_output
from .reporting.progress import EvalProgress
from .reporting.summary import Summary, order_rows, summarize
from .running.runner import Prepared, RunOptions, RunOutcome, check_api_keys, prepare, run_eval
from .running.spec import LoadedSpec
from .running.storage import default_paths
from .terminal import printable
from .tokens import count_prompt_tokens


@dataclass
class EvalRequest:
    """What to run and how, as the CLI was asked."""

    loaded: LoadedSpec
    outputs: tuple[str, ...] = ()
    use_cache: bool = True
    resume: bool = False
    limit: int | None = None
    quiet: bool = False
    store_dir: Path | None = None
    baseline: str | None = None  # a baseline file or a run id to compare with
    fail_on_regression: bool = False
    alpha: float = 0.05
    flips: int | None = 50  # flipped cases printed per row and direction
    max_drop: float | None = None  # points; implies failing on it


@dataclass
class EvalReport:
    """A run and its summary."""

    outcome: RunOutcome
    summary: Summary
    comparison: Comparison | None = None
    fail_on_regression: bool = False
    max_drop: float | None = None

    def failed_checks(self) -> list[str]:
        """The gates that failed, each as one line: threshold, regression, max-drop."""
        failed = []
        below = [row for row in self.summary.rows if row.meets_threshold is False]
        if below:
            rows = ", ".join(f"{row.label} {row.pass_rate:.1%} < {row.threshold:.0%}"
                             for row in below)
            failed.append(f"threshold: {rows}")
        comparison = self.comparison
        if comparison is not None and self.fail_on_regression and comparison.regressed:
            rows = ", ".join(f"{row.label} (p={row.p_adjusted:.3g})"
                             for row in comparison.worse)
            failed.append(f"regression: significantly worse than the baseline: {rows}")
        if comparison is not None and self.max_drop is not None and comparison.dropped:
            rows = ", ".join(f"{row.label} fell {row.drop:.1f} points"
                             for row in comparison.dropped)
            failed.append(f"max-drop: more than {self.max_drop:g} points: {rows}")
        gating = self.fail_on_regression or self.max_drop is not None
        if comparison is not None and gating:
            failed += [f"comparison: {reason}; the gate cannot vouch for it"
                       for reason in comparison.uncompared()]
        return failed


def _prepare(request: EvalRequest) -> Prepared:
    spec_dir = str(request.loaded.base_dir.resolve())
    if spec_dir not in sys.path:  # `python` assertions import modules beside the spec
        sys.path.insert(0, spec_dir)
    return prepare(request.loaded)


async def run_and_report(request: EvalRequest, out: Console, err: Console) -> EvalReport:
    """Run the eval, print the leaderboard to ``out`` and write the output files."""
    prepared = _prepare(request)
    baseline_file = request.baseline if request.baseline and Path(request.baseline).is_file() \
        else None
    for output in request.outputs:
        _check_output_path(output, prepared, baseline_file)
    baseline = _load_baseline(request)  # before running: a wrong path costs no requests
    progress = EvalProgress(err, "quiet" if request.quiet else None)
    options = RunOptions(use_cache=request.use_cache, resume=request.resume,
                         limit=request.limit, store_dir=request.store_dir,
                         on_result=progress.result, on_start=progress.start,
                         on_local=None if request.quiet else lambda pid, server: err.print(
                             f"{pid}: {server.describe()} at {server.base_url}",
                             highlight=False, markup=False))
    try:
        outcome = await run_eval(prepared, options)
    finally:
        progress.stop()
    run_id = outcome.run.run_id
    summary = summarize(outcome.runs.results(run_id), prepared.spec.threshold,
                        alpha=request.alpha)
    order_rows(summary, [p.id for p in prepared.spec.prompts],
               [p.id for p in prepared.spec.providers])
    title = prepared.spec.description or request.loaded.path.name
    print_leaderboard(summary, out, title=f"{title} — run {run_id}")
    for provider_id, engine in outcome.engines.items():
        out.print(f"{provider_id} = {engine}", highlight=False, markup=False)
    for provider_id, why in outcome.unreachable.items():
        err.print(Text(printable(f"provider {provider_id}: {why}"), style="bold red"))
    for provider_id in failed_providers(summary):
        if provider_id not in outcome.unreachable:
            last = next((r.error for r in outcome.runs.results(run_id, provider_id=provider_id)
                         if r.error), "")
            err.print(Text(printable(f"provider {provider_id}: every request failed "
                                     f"(e.g. {last or ''})"), style="bold red"))
    comparison = None
    if baseline is not None:
        comparison = compare(baseline, side_from_run(outcome.runs, outcome.run),
                             alpha=request.alpha, gate=prepared.spec.gate and
                             prepared.spec.gate.model_dump(exclude_none=True),
                             max_drop=request.max_drop)
        out.print()
        print_comparison(comparison, out, request.flips)
    for output in request.outputs:
        write_output(output, summary, outcome.runs.results(run_id), outcome.run, comparison)
        err.print(f"wrote {output}", highlight=False, markup=False)
    report = EvalReport(outcome, summary, comparison, request.fail_on_regression,
                        request.max_drop)
    for line in broken_rows(summary):
        err.print(Text(printable(f"promptkit: error: {line}"), style="bold red"))
    for line in report.failed_checks():
        err.print(Text(printable(f"FAILED {line}"), style="bold red"))
    return report


def _load_baseline(request: EvalRequest) -> Side | None:
    """The ``--baseline`` side: a baseline file, or a run in this eval's run store."""
    if request.baseline is None:
        return None
    runs_path = default_paths(request.loaded.path)[0]
    if request.store_dir is not None:
        runs_path = request.store_dir / runs_path.name
    ref = request.baseline
    if not runs_path.is_file() and not (Path(ref).is_file() or ref.endswith(".json")):
        raise PromptkitError(f"--baseline {ref}: no such file, and no runs in {runs_path} "
                             "yet")
    return resolve_side(ref, [runs_path])


def _check_output_path(output: str, prepared: Prepared, baseline_file: str | None) -> None:
    """Refuse an ``-o`` path that cannot be written or would overwrite an input."""
    output_format(output)  # raises for an unsupported suffix
    target = Path(output).resolve()
    if not target.parent.is_dir():
        raise PromptkitError(f"--output {output}: folder does not exist")
    loaded = prepared.loaded
    refuse_overwrite(output, [
        loaded.path, loaded.dataset_path, prepared.store.root / "promptkit.lock",
        *(loaded.base_dir / v.fewshot.pool for v in loaded.spec.prompts if v.fewshot),
        baseline_file])
    if target.is_relative_to(prepared.store.root.resolve()):
        raise PromptkitError(f"--output {output} is inside the template store "
                             f"{prepared.store.root}; write the report elsewhere")
    try:  # find out now, not after every request has been paid for
        with tempfile.TemporaryFile(dir=target.parent):
            pass
    except OSError as exc:
        raise OutputError(f"--output {output}: cannot write in {target.parent}: "
                          f"{exc.strerror or exc}") from None


def failed_providers(summary: Summary) -> list[str]:
    """Providers none of whose requests succeeded: their rows say nothing about quality."""
    answered: dict[str, bool] = {}
    for row in summary.rows:
        answered[row.provider_id] = answered.get(row.provider_id, False) or (
            row.errors - row.input_errors < row.cases - row.input_errors
            or row.input_errors == row.cases)
    return [provider for provider, ok in answered.items() if not ok]


def broken_rows(summary: Summary) -> list[str]:
    """Rows every case of which failed to render its prompt or its assertions: the eval's
    input is wrong (an error found only at run time, for cases past the first)."""
    return [f"every case of {row.label} failed before scoring: {row.first_input_error}"
            for row in summary.rows if row.cases and row.input_errors == row.cases]


def exit_code(report: EvalReport) -> int:
    """3 when a provider was unreachable or failed every request (the run did not
    complete); 1 when a gate failed (:meth:`EvalReport.failed_checks`: a threshold, a
    significant regression with ``--fail-on-regression``, a drop past ``--max-drop``);
    else 0."""
    if broken_rows(report.summary):
        return ExitCode.INVALID_INPUT
    if report.outcome.unreachable or failed_providers(report.summary):
        return EndpointError.exit_code
    if report.failed_checks():
        return ExitCode.FAILED
    return ExitCode.OK


def print_dry_run(request: EvalRequest, out: Console) -> None:
    """Count requests, input tokens (tiktoken) and the cost they imply; call nothing.

    Checks what a run would need first: every ``api_key_env`` set, the baseline readable.
    Examples that a run would select by embeddings are estimated with the BM25 choice.
    """
    prepared = _prepare(request)
    spec = prepared.spec
    check_api_keys(prepared)
    _load_baseline(request)
    table = Table("prompt", "provider", "requests", "input tokens", "est. cost", box=None,
                  title=f"dry run: {request.loaded.path}")
    total_requests = 0
    for provider in spec.providers:
        for variant in spec.prompts:
            tokens = 0
            cases = 0
            for case in prepared.cases(request.limit):
                cases += 1
                values = prepared.variables(variant, case, offline=True)
                prompt = prepared.prompt(variant, provider, values)
                tokens += count_prompt_tokens(prompt, provider.model) * prepared.samples(variant)
            requests = cases * spec.repeat * prepared.samples(variant)
            total_requests += requests
            cost = "—"
            if provider.price is not None:
                max_out = prepared.body(variant, provider, "").get("max_tokens")
                low = provider.price.cost(tokens * spec.repeat, 0)
                cost = f"${low:.4f}"
                if isinstance(max_out, int):
                    high = provider.price.cost(tokens * spec.repeat, requests * max_out)
                    cost += f"–${high:.4f}"
            table.add_row(variant.id, provider.id, str(requests), f"{tokens * spec.repeat:,}",
                          cost)
    out.print(table)
    out.print(f"{total_requests} requests; nothing was sent. Cost ranges assume between 0 "
              "and max_tokens output tokens per request.", highlight=False)
    by_embeddings = [v.id for v in spec.prompts if v.fewshot and v.fewshot.embeddings]
    if by_embeddings:
        out.print(f"{', '.join(by_embeddings)}: a run selects examples by embeddings; this "
                  "estimate uses the examples BM25 selects, without calling the embeddings "
                  "endpoint.", highlight=False)
