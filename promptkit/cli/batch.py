"""``promptkit batch export`` and ``promptkit batch import``: an eval's requests as an
OpenAI batch input file, and a results file scored as a run (for ``vllm run-batch``)."""

from __future__ import annotations

from typing import Any

import click

from .app import OneLineErrors, cli


@cli.group("batch")
def batch_group() -> None:
    """An eval's requests as a batch file, and its results scored as a run.

    For a GPU box running vLLM's offline batch runner:

        promptkit batch export evals/x.yaml -o requests.jsonl
        vllm run-batch -i requests.jsonl -o results.jsonl --model M
        promptkit batch import evals/x.yaml results.jsonl
    """


@batch_group.command("export", cls=OneLineErrors)
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, metavar="FILE.jsonl",
              help="The batch input file to write (a new .jsonl file).")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N cases.")
@click.option("--prompt", "prompts", multiple=True, metavar="ID", help="Only these prompts.")
@click.option("--provider", "providers", multiple=True, metavar="ID",
              help="Only these providers.")
@click.option("--store-dir", type=click.Path(file_okay=False),
              help="Where the cache lives (default: .promptkit/ beside the spec).")
def export_command(spec_path: str, output: str, **options: Any) -> None:
    """Write the requests a batch run would send: one OpenAI batch line per request the
    cache cannot answer (custom_id, method, url, body; identical requests once). Nothing
    is sent and no run is kept. A conversation's later turns need the earlier answers:
    import, then export again for the next round."""
    from ..api import export_batch

    lines = export_batch(spec_path, output, **options)
    click.echo(f"wrote {lines} requests to {output}", err=True)


@batch_group.command("import", cls=OneLineErrors)
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.argument("results", metavar="RESULTS.jsonl", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "outputs", multiple=True, metavar="FILE",
              help="Write results as `eval -o` does. Repeatable.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N cases.")
@click.option("--resume", is_flag=True, help="Continue the last unfinished run (a next "
              "round's results).")
@click.option("--store-dir", type=click.Path(file_okay=False),
              help="Where runs and the cache live (default: .promptkit/ beside the spec).")
def import_command(spec_path: str, results: str, **options: Any) -> None:
    """Score a batch results file (vllm run-batch's or the Batch API's output for an
    export) as a run: answers are matched by custom_id, go into the cache and are scored
    like any answer; nothing is sent. Cases without an answer in the file are left undone
    (exit 3)."""
    from .present import run_and_show

    raise SystemExit(run_and_show(spec_path, dict(options, batch_import=results), False, 50))


__all__ = ["batch_group"]
