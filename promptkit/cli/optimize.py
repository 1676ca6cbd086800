"""``promptkit optimize``: search few-shot examples and instructions, write the winner as
the template's next version, over :func:`promptkit.optimizing.optimize`."""

from __future__ import annotations

from typing import Any

import click

from .app import OneLineErrors, alpha_option, cli, fail, warning


@cli.command("optimize", cls=OneLineErrors)
@click.argument("spec_path", metavar="EVAL.yaml", type=click.Path(dir_okay=False))
@click.option("--prompt", required=True, metavar="VARIANT_OR_REF",
              help="The prompt to optimize: a prompt id of the eval or a template reference.")
@click.option("--provider", metavar="ID", help="The model to optimize for (needed when the "
              "eval has several).")
@click.option("--strategy", type=click.Choice(["fewshot", "instructions", "both"]),
              default="fewshot", show_default=True,
              help="Search examples, rewrite the instructions (GEPA), or both (rewrite first).")
@click.option("--pool", metavar="FILE", type=click.Path(dir_okay=False),
              help="JSONL or CSV of candidate examples [default: the train split's cases].")
@click.option("--k", type=click.IntRange(1, 64), default=3, show_default=True,
              help="Examples shown at a time.")
@click.option("--max-requests", type=click.IntRange(min=1), help="Requests it may send "
              "(cache hits are free) [default: 300 unless --max-cost is given].")
@click.option("--max-cost", type=click.FloatRange(min=0, min_open=True), metavar="USD",
              help="Dollars it may spend (providers priced per token).")
@click.option("--proposer", metavar="GRADER_ID", help="The provider, under the eval's "
              "graders:, that proposes rewrites (instructions and both).")
@click.option("--split", default="0.5/0.25/0.25", show_default=True,
              metavar="TRAIN/VALIDATION/TEST", help="Fractions of the cases.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the split and the search.")
@click.option("--minibatch", type=click.IntRange(1, 1000), default=8, show_default=True,
              help="Train cases per search round.")
@click.option("--promote", metavar="LABEL", help="Move this label to the new version when "
              "it passes more test cases and is not significantly worse.")
@click.option("--resume", is_flag=True, help="Continue an interrupted optimization of the "
              "same settings (its spent budget counts).")
@click.option("--dry-run", is_flag=True, help="Check everything and show the plan; send "
              "nothing.")
@click.option("--store-dir", type=click.Path(file_okay=False),
              help="Where runs and the cache live (default: .promptkit/ beside the spec).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@alpha_option
def optimize_command(spec_path: str, dry_run: bool, quiet: bool, **options: Any) -> None:
    """Search for a better version of a prompt and write it as the template's next
    version: plain Jinja that the app renders with the same code.

    The eval's cases are split (seeded, stratified by category or label) into train,
    validation and test. Candidates are scored by the eval's own assertions on train
    minibatches, the winner is chosen on validation, and the test split is scored once,
    at the end, for the winner and the starting version (one-sided paired test, interval
    on the difference). Every request goes through the runner (cache, retries, budget).

    Exit codes: 0 done (a version written, or none better found); 1 --promote was
    refused (the version is written, the label left); 2 invalid input (found before any
    request); 3 the budget or an endpoint stopped it (--resume continues).
    """
    try:
        code = _optimize_and_show(spec_path, dry_run, quiet, options)
    except KeyboardInterrupt:
        fail("interrupted; continue with --resume", 130)
    raise SystemExit(code)


def _optimize_and_show(spec_path: str, dry_run: bool, quiet: bool,
                       options: dict[str, Any]) -> int:
    from ..optimizing import OptimizeSettings, optimize

    settings = OptimizeSettings(**options)
    bars = _Bars(quiet)
    try:
        report = optimize(spec_path, settings, dry_run=dry_run,
                          on_event=None if quiet else _progress, on_result=bars.result,
                          on_start=bars.start)
    finally:
        bars.stop()
    for line in report.warnings:
        warning(line)
    print_optimize(report)
    return report.exit_code


def print_optimize(report: Any) -> None:
    """The outcome: the split, the validation table, the test comparison, what was
    written and whether the label moved."""
    sizes = report.split
    click.echo(f"{report.parent}: train {sizes.get('train', 0)}, validation "
               f"{sizes.get('validation', 0)}, test {sizes.get('test', 0)} cases")
    if report.dry_run is not None:
        plan = report.dry_run
        allowance = plan["allowance"]
        click.echo(f"dry run: the least search costs up to {plan['round'].requests} requests; "
                   f"the validation and test scoring keep {plan['reserve'].requests}; the "
                   "search may plan " + ("without a request limit" if allowance is None else
                                         f"{allowance.requests}") +
                   " (worst case; nothing was sent)")
        return
    for key, (pass_rate, score) in report.validation.items():
        mark = "★ " if key == report.winner and key != "start" else "  "
        click.echo(f"{mark}{key:<8} validation pass {pass_rate:6.1%}  score {score:.3f}")
    if report.test:
        test = report.test
        low, high = test["interval"]
        click.echo(f"test ({test['cases']} cases): start {test['start'][0]:.1%} → "
                   f"{report.winner} {test['winner'][0]:.1%} ({test['difference']:+.1%}, "
                   f"95% interval {low:+.1%} to {high:+.1%}; one-sided {test['test']} "
                   f"p(better)={test['p_better']:.3g}, p(worse)={test['p_worse']:.3g})")
        detectable = test.get("detectable")
        click.echo(f"  with {test['cases']} test cases the test can show a change of "
                   f"{detectable:.0%} or more (80% power), not less" if detectable else
                   f"  {test['cases']} test cases are too few for the test to show any "
                   "change: read the difference, not the p-values")
    if report.discarded:
        click.echo(f"{len(report.discarded)} proposals discarded "
                   f"(first: {report.discarded[0]})")
    if report.written:
        click.echo(f"wrote {report.written}")
    if report.promote_note:
        click.echo(report.promote_note)
    if report.budget_used:
        used = report.budget_used
        dollars = f", ${used['cost_usd']:.4f}" if used["cost_usd"] else ""
        click.echo(f"budget used: {int(used['requests'])} requests{dollars}")
    if report.stopped:
        click.echo(f"stopped: {report.stopped}", err=True)


class _Bars:
    """A progress display per candidate run (a bar on a terminal, lines in CI)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.current: Any = None

    def start(self, run: Any, total: int, done: int) -> None:
        from ..reporting.progress import EvalProgress
        from .app import wide_console

        self.stop()
        self.current = EvalProgress(wide_console(stderr=True), "quiet" if self.quiet else None)
        self.current.start(run, total, done)

    def result(self, result: Any) -> None:
        if self.current is not None:
            self.current.result(result)

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


def _progress(line: str) -> None:
    from ..terminal import printable_line

    click.echo(printable_line(line), err=True)


__all__ = ["optimize_command"]
