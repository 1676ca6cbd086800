"""``promptkit export sft`` and ``export preference``: a stored run as fine-tuning data."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import click

from .app import Group, OneLineErrors, cli, store_dir_option

if TYPE_CHECKING:
    from ..reporting.exports import ExportCounts, Side

output_option = click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), metavar="FILE.jsonl",
    help="The JSONL file to write.")
provider_option = click.option("--provider", "provider_id", metavar="ID",
                               help="Only this provider's results.")


@cli.group(cls=Group)
def export() -> None:
    """Write a stored run's answers as fine-tuning data (OpenAI's JSONL formats)."""


@export.command("sft", cls=OneLineErrors)
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("--prompt", "prompt_id", metavar="ID", help="Only this prompt variant's results.")
@provider_option
@click.option("--min-score", type=click.FloatRange(0, 1), metavar="X",
              help="Also leave out passing results scoring below X.")
@output_option
@store_dir_option
def export_sft_command(run_ref: str, prompt_id: str | None, provider_id: str | None,
                       min_score: float | None, output: str, store_dir: str | None) -> None:
    """Write a run's passing results as chat fine-tuning lines.

    Each line is {"messages": [...the prompt as sent..., {"role": "assistant", ...}]}, the
    answer as stored, with its tool calls; a conversation is written whole. Errored and
    failing results are left out and counted on stderr. RUN is an id, a unique prefix or
    `last` (the default).
    """
    from ..reporting.exports import export_sft

    show_export(export_sft(output, run_ref, prompt=prompt_id, provider=provider_id,
                           min_score=min_score, store_dir=store_dir))


@export.command("preference", cls=OneLineErrors)
@click.argument("run_ref", metavar="[RUN]", default="last")
@click.option("--a", "prompt_a", metavar="ID", help="One prompt variant to pair.")
@click.option("--b", "prompt_b", metavar="ID", help="The other prompt variant.")
@provider_option
@click.option("--input", "input_side", type=click.Choice(["a", "b"]),
              help="Whose prompt is each pair's input (needed when the two sent different "
                   "prompts).")
@output_option
@store_dir_option
def export_preference_command(run_ref: str, prompt_a: str | None, prompt_b: str | None,
                              provider_id: str | None, input_side: str | None, output: str,
                              store_dir: str | None) -> None:
    """Write the better and the worse answer of two prompt variants as preference pairs.

    Per case and provider (first repeat), the answer that passed is preferred, or with
    both or neither passing the higher score: {"input": {"messages": [...]},
    "preferred_output": [...], "non_preferred_output": [...]} (OpenAI's DPO format).
    --a and --b pick the variants when the run has more than two. When their prompts
    differ, --input says whose is the pair's input. Ties, conversation cases and errored
    results are left out and counted on stderr. RUN is an id, a unique prefix or `last`
    (the default).
    """
    from ..reporting.exports import export_preference

    side = cast("Side | None", input_side)  # click.Choice checked it
    show_export(export_preference(output, run_ref, a=prompt_a, b=prompt_b,
                                  provider=provider_id, input_side=side, store_dir=store_dir))


def show_export(counts: ExportCounts) -> None:
    """The closing line, on stderr (stdout stays free for the data of a pipe)."""
    from ..terminal import printable

    click.echo(printable(counts.describe()), err=True)
