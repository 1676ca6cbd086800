"""The ``promptkit`` command group, its shared options, and turning errors into exit codes.

Each command parses its options, calls one library function and hands the result to a
presenter (:mod:`.present`). Errors become one line on stderr with the exit code of their
branch (:class:`~promptkit.errors.PromptkitError`: 2; its ``RunError`` branch: 3). Library
modules are imported inside commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import click

from .. import __version__
from ..errors import ExitCode, PromptkitError


def fail(message: str, code: int = ExitCode.INVALID_INPUT) -> NoReturn:
    """Print one error (redacted, control characters escaped) and exit."""
    from ..redact import redact
    from ..terminal import printable

    click.echo(f"promptkit: error: {printable(redact(message))}", err=True)
    sys.exit(code)


def warning(message: str) -> None:
    """Print one warning (redacted, control characters escaped) on stderr."""
    from ..redact import redact
    from ..terminal import printable

    click.echo(f"warning: {printable(redact(message))}", err=True)


class Group(click.Group):
    """A click group that reports promptkit errors as one line, with the exit code of
    the error's branch: 2 for invalid input, 3 for a run that could not complete. The
    warnings given before the error (``exc.warnings``: a deprecated key, say) come first."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PromptkitError as exc:
            for line in exc.warnings:
                warning(line)
            fail(str(exc), exc.exit_code)


def wide_console(stderr: bool = False) -> Any:
    """A console; 140 columns when not a terminal, so CI logs keep whole tables."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(stderr=stderr, width=140)


templates_option = click.option(
    "-t", "--templates", "templates_dir",
    default=lambda: os.environ.get("PROMPTKIT_TEMPLATES", "templates"),
    show_default="templates, or $PROMPTKIT_TEMPLATES", help="Template store folder.")
store_dir_option = click.option(
    "-s", "--store-dir", type=click.Path(file_okay=False),
    help="The run store folder (default: .promptkit/ here and one folder down, "
         "e.g. evals/.promptkit/).")
flips_option = click.option(
    "--flips", type=click.IntRange(min=0), default=50, show_default=True,
    help="Flipped cases listed per prompt × provider and direction.")
alpha_option = click.option(
    "--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
    show_default=True, help="Significance level of the (one-sided) regression verdict.")
max_drop_option = click.option(
    "--max-drop", type=click.FloatRange(0, 100), metavar="POINTS",
    help="Also exit 1 when a gated row's pass rate fell by more than POINTS percentage "
         "points since the baseline: a plain guard for datasets too small to test.")
seed_option = click.option("--seed", type=int, default=0, show_default=True,
                           help="Bootstrap seed.")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="promptkit")
def cli() -> None:
    """Versioned prompt templates and evals for any OpenAI-compatible endpoint."""


def main() -> None:
    """Console-script entry point.

    An unexpected exception (a bug) still never prints a secret: its traceback is
    redacted, and the exit code is 3 (the run did not complete), never 1, which would
    read as a failed gate.
    """
    try:
        cli(prog_name="promptkit")
    except Exception:
        import traceback

        from ..redact import redact
        from ..terminal import printable

        click.echo(printable(redact(traceback.format_exc())), err=True)
        click.echo("promptkit: internal error (a bug; the traceback above says where)",
                   err=True)
        sys.exit(ExitCode.RUN_INCOMPLETE)


class OneLineErrors(click.Command):
    """A command whose option mistakes are one line with exit code 2, like promptkit's
    own errors (click would print the usage first)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise PromptkitError(exc.format_message()) from None
