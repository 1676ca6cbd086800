"""``promptkit runs``, ``baseline save``, ``compare`` and ``ab``: stored runs and CI gates."""

from __future__ import annotations

import sys

import click

from ..errors import ExitCode
from .app import (
    Group,
    alpha_option,
    cli,
    fail,
    flips_option,
    max_drop_option,
    seed_option,
    store_dir_option,
)


@cli.group(cls=Group)
def runs() -> None:
    """List stored runs and show one."""


@runs.command("list")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Newest runs shown per store.")
@store_dir_option
def runs_list(limit: int, store_dir: str | None) -> None:
    """List runs, newest first: id, status, results, eval."""
    from ..running.storage import list_runs
    from .present import show_runs

    found = list_runs(store_dir, limit)
    if not found:
        fail("no runs found (looked for .promptkit/runs.db here and one folder down); "
             "run an eval first or pass --store-dir")
    show_runs(found)


@runs.command("show")
@click.argument("run_ref", metavar="RUN", default="last")
@store_dir_option
def runs_show(run_ref: str, store_dir: str | None) -> None:
    """Show a run's details and leaderboard. RUN is an id, a unique prefix or `last`."""
    from ..api import load_report
    from .present import show_stored_report

    show_stored_report(load_report(run_ref, store_dir=store_dir))


@cli.group(cls=Group)
def baseline() -> None:
    """Save a run as a baseline file to commit, for `eval --baseline` in CI."""


@baseline.command("save")
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The baseline file, e.g. evals/baselines/summarize.json.")
@click.option("--allow-unfinished", is_flag=True,
              help="Save a run that did not finish (its missing cases are not compared).")
@store_dir_option
def baseline_save(run_ref: str, output: str, allow_unfinished: bool,
                  store_dir: str | None) -> None:
    """Write a run's per-case results as a small, diff-friendly JSON baseline.

    RUN is an id, a unique prefix or `last` (the default). The file holds, per prompt ×
    provider, the model, template sha256, params and one line per case: its id, the
    outcome of each repeat, scores and output.
    """
    from ..api import save_baseline_file
    from .present import show_saved_baseline

    run, side = save_baseline_file(output, run_ref, store_dir=store_dir,
                                   allow_unfinished=allow_unfinished)
    show_saved_baseline(run, side, output)


@cli.command("compare")
@click.argument("before", metavar="BASELINE")
@click.argument("after", metavar="[CANDIDATE]", default="last")
@click.option("-o", "--output", "outputs", multiple=True, metavar="FILE",
              help="Also write the comparison: .html (with the candidate's cases), .json or .md.")
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 when the candidate is significantly worse.")
@max_drop_option
@alpha_option
@flips_option
@seed_option
@store_dir_option
def compare_command(before: str, after: str, outputs: tuple[str, ...],
                    fail_on_regression: bool, max_drop: float | None, alpha: float, seed: int,
                    flips: int, store_dir: str | None) -> None:
    """Compare CANDIDATE with BASELINE case by case (each a run or a baseline file).

    A one-sided paired test of "worse" per prompt × provider (exact McNemar; sign-flip
    on per-case pass fractions with repeats), Holm-adjusted across the gated rows (the
    spec's gate:), seeded paired bootstrap 95% intervals on each metric, what each row
    could detect, the flipped cases (regressions first) and a verdict. CANDIDATE
    defaults to the newest run.
    """
    from ..api import compare_runs
    from ..reporting.outputs import refuse_overwrite
    from .present import show_comparison

    for output in outputs:
        refuse_overwrite(output, [before, after])
    comparison, candidate = compare_runs(before, after, store_dir=store_dir, alpha=alpha,
                                         seed=seed, max_drop=max_drop)
    failed = show_comparison(comparison, candidate, outputs, flips,
                             fail_on_regression=fail_on_regression, max_drop=max_drop)
    if failed:
        sys.exit(ExitCode.FAILED)


@cli.command("ab")
@click.argument("args", nargs=-1, required=True, metavar="[RUN] PROMPT_A PROMPT_B")
@click.option("--provider", "provider_id", metavar="ID",
              help="The provider whose rows to compare (needed when the run has several).")
@click.option("-o", "--output", "outputs", multiple=True, metavar="FILE",
              help="Also write the comparison: .html, .json or .md.")
@alpha_option
@flips_option
@seed_option
@store_dir_option
def ab_command(args: tuple[str, ...], provider_id: str | None, outputs: tuple[str, ...],
               alpha: float, flips: int, seed: int, store_dir: str | None) -> None:
    """Is PROMPT_B really better than PROMPT_A? Two variants of one run, case by case.

    The same paired comparison as `compare` (one-sided tests both ways, intervals,
    flipped cases), between two prompt variants of one run on the same cases and the
    same provider. RUN is an id, a unique prefix or `last` (the default).
    """
    from ..api import compare_variants
    from .present import show_comparison

    if len(args) not in (2, 3):
        raise click.UsageError("give PROMPT_A and PROMPT_B, optionally after a RUN")
    run, prompt_a, prompt_b = ("last", *args) if len(args) == 2 else args
    comparison, side_b = compare_variants(prompt_a, prompt_b, run=run, provider=provider_id,
                                          store_dir=store_dir, alpha=alpha, seed=seed)
    show_comparison(comparison, side_b, outputs, flips)
