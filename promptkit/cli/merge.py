"""``promptkit merge``: the runs of one eval's shards (``eval --shard I/N``) as one run."""

from __future__ import annotations

from typing import Any

import click

from .app import OneLineErrors, cli
from .evaluation import check_gate_options, gate_options


@cli.command("merge", cls=OneLineErrors)
@click.argument("sources", nargs=-1, required=True, metavar="STORE_OR_DB...")
@click.option("-s", "--store-dir", type=click.Path(file_okay=False),
              help="The folder the merged run is stored in (default: the first store's).")
@click.option("-o", "--output", "outputs", multiple=True, metavar="FILE",
              help="Write the merged run's results, as `eval -o` does: .json, .jsonl, .csv, "
                   ".xml (JUnit), .html or .md. Repeatable.")
@click.option("--allow-partial", is_flag=True,
              help="Merge even with shards missing or unfinished; the merged run is then "
                   "interrupted (exit 3).")
@gate_options
def merge_command(sources: tuple[str, ...], flips: int, **options: Any) -> None:
    """Merge the shard runs of one eval into one run, reported like `eval`'s.

    Each STORE_OR_DB is a run store folder (holding runs.db) or a runs.db file; from each,
    its newest run of `promptkit eval SPEC --shard I/N`. They must be shards of one spec
    and one N, each shard once and all of them finished (--allow-partial merges what there
    is). The merged run holds every shard's results once; `runs show`, `baseline save`,
    `compare` and `export` take it like any run.

    Exit codes as for `eval`: 0 every check passed; 1 a gate failed (a threshold, or with
    --baseline a regression); 2 invalid input (shards that do not make one run: the
    message names them); 3 the merged run is partial.
    """
    from ..api import merge_runs
    from .present import show_merged

    check_gate_options(options)
    report = merge_runs(sources, **options)
    show_merged(report, flips)
    raise SystemExit(report.exit_code)


__all__ = ["merge_command"]
