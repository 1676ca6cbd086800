"""``promptkit eval``, ``schema`` and ``serve``."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import ExitCode
from .app import (
    alpha_option,
    cli,
    fail,
    flips_option,
    max_drop_option,
    wide_console,
)


def gate_options(command: Any) -> Any:
    """The options of a run's comparison with a baseline and its gate (eval and merge):
    --baseline, --fail-on-regression, --max-drop, --alpha and --flips."""
    for option in reversed([
            click.option("--baseline", metavar="FILE_OR_RUN",
                         help="Compare with a baseline file (promptkit baseline save) or a "
                              "stored run."),
            click.option("--fail-on-regression", is_flag=True,
                         help="Exit 1 when the comparison with --baseline finds a "
                              "significant regression."),
            max_drop_option, alpha_option, flips_option]):
        command = option(command)
    return command


def check_gate_options(options: dict[str, Any]) -> None:
    """A gate needs a baseline: one line and exit 2 otherwise."""
    if (options["fail_on_regression"] or options["max_drop"] is not None) \
            and not options["baseline"]:
        fail("--fail-on-regression and --max-drop need --baseline")


@cli.command("eval")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "outputs", multiple=True, metavar="FILE",
              help="Write results: .json, .jsonl, .csv, .xml (JUnit), .html (a static "
                   "report) or .md (a summary for a job page or pull request). Repeatable.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option("--resume", is_flag=True, help="Continue the last unfinished run of this spec.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N cases.")
@click.option("--shard", metavar="I/N", callback=lambda ctx, param, value: _shard(value),
              help="Run only shard I of N (1-based) of the cases, after --limit: a case is in "
                   "shard int(sha256(case id)) mod N + 1, the same on every machine. The run "
                   "records I/N; --resume continues that shard's run; `promptkit merge` joins "
                   "the shards' runs into one.")
@click.option("-j", "--concurrency", type=click.IntRange(1, 1024),
              help="Requests in flight per provider (overrides the spec).")
@click.option("--repeat", type=click.IntRange(1, 1000), help="Samples per case.")
@click.option("--prompt", "prompts", multiple=True, metavar="ID", help="Only these prompts.")
@click.option("--provider", "providers", multiple=True, metavar="ID",
              help="Only these providers.")
@click.option("--base-url", help="Run against this endpoint instead of the spec's providers.")
@click.option("--model", help="Model name for --base-url.")
@click.option("--api", type=click.Choice(["chat", "completions"]), help="API for --base-url.")
@click.option("--api-key-env", metavar="VAR", help="Environment variable with the key for "
              "--base-url.")
@click.option("--max-requests", type=click.IntRange(min=1), metavar="N",
              help="Send at most N requests this time (cache hits are free; retries count "
                   "once); then stop, exit 3, and go on with --resume. Overrides the spec's "
                   "max_requests.")
@click.option("--batch", is_flag=True, help="Send every provider's requests as Batch API jobs "
              "(/v1/files, /v1/batches): cheaper, answered within the batch window; "
              "--resume picks up a batch still running.")
@click.option("--max-cost", type=click.FloatRange(min=0, min_open=True), metavar="USD",
              help="Spend at most USD this time, at the providers' token prices: a request is "
                   "sent only while its worst case (max_tokens) still fits. Overrides the "
                   "spec's max_cost.")
@click.option("--dry-run", is_flag=True, help="Count requests, tokens and cost; call nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--store-dir", type=click.Path(file_okay=False),
              help="Where runs and the cache live (default: .promptkit/ beside the spec).")
@gate_options
def eval_command(spec_path: str, dry_run: bool, quiet: bool, flips: int, no_cache: bool,
                 **options: Any) -> None:
    """Run an eval: prompt variants × providers × cases, scored, stored, reported.

    With --baseline, the run is compared case by case with the baseline: a one-sided
    paired test of "worse" per prompt × provider (exact McNemar; sign-flip on per-case
    pass fractions with repeats), Holm-adjusted across the rows the spec's gate: picks,
    paired bootstrap intervals on each metric, and the cases that flipped.

    --max-requests and --max-cost (or the spec's max_requests and max_cost) are a budget
    for this invocation, never exceeded: when it is reached, the requests in flight finish
    and are stored, the run is left interrupted (exit 3), and --resume continues it under
    a fresh budget of the flags given then.

    Exit codes: 0 every check passed; 1 a gate failed (a threshold; with
    --fail-on-regression a significant regression; with --max-drop a larger drop; the
    message says which); 2 invalid input; 3 the run did not complete (an endpoint
    unreachable, the local server failed, the store or an output could not be written,
    the budget was reached).
    """
    from .present import run_and_show, show_estimate

    check_gate_options(options)
    if dry_run and options["shard"]:
        fail("--dry-run counts the whole eval; leave out --shard")
    if dry_run:
        show_estimate(spec_path, options)
        return
    try:
        code = run_and_show(spec_path, dict(options, use_cache=not no_cache), quiet, flips)
    except KeyboardInterrupt:
        fail("interrupted; continue with --resume", 130)
    raise SystemExit(code)


def _shard(value: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` as ``(I, N)``; a bad value is one line and exit 2."""
    from ..running.shards import parse_shard

    return None if value is None else parse_shard(value)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of eval specs (for editor completion and validation)."""
    from ..running.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


@cli.command()
@click.argument("model", required=False, metavar="[MODEL.gguf]")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: a free one).")
@click.option("--ctx", type=click.IntRange(256), default=4096, show_default=True,
              help="Context size in tokens (per parallel slot).")
@click.option("--parallel", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Requests served at once (native llama-server only).")
def serve(model: str | None, port: int | None, ctx: int, parallel: int) -> None:
    """Run the local llama.cpp server (the bundled model by default) until Ctrl+C.

    Prints the base_url to give any OpenAI-compatible client, or an eval's provider.
    """
    from ..running.local import LocalServer, serve_until_stopped

    server = LocalServer(model, parallel=parallel, ctx=ctx, port=port)
    tail = serve_until_stopped(server, click.echo)
    if tail is not None:
        fail(f"the server exited:\n{tail}", ExitCode.RUN_INCOMPLETE)


__all__ = ["check_gate_options", "eval_command", "gate_options", "schema", "serve",
           "wide_console"]
