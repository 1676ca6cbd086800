"""``promptkit profile``: throughput, latency, goodput, memory and cost per concurrency
level, over :func:`promptkit.profiling.profile`."""

from __future__ import annotations

from typing import Any

import click

from .app import OneLineErrors, cli, fail, warning, wide_console


@cli.command("profile", cls=OneLineErrors)
@click.argument("sources", nargs=-1, metavar="[EVAL.yaml | local[:MODEL.gguf]]...")
@click.option("--base-url", help="Profile this OpenAI-compatible endpoint.")
@click.option("--model", help="Model name for --base-url.")
@click.option("--api", type=click.Choice(["chat", "completions"]),
              help="API for --base-url (default: chat).")
@click.option("--api-key-env", metavar="VAR",
              help="Environment variable with the key for --base-url.")
@click.option("--input-tokens", metavar="N,N,...", help="Synthetic prompts of exactly "
              "these many tokens (tiktoken), one run each [default: 256,1024,2048; an eval's "
              "own prompts for its providers].")
@click.option("--prompt-text", metavar="TEXT", help="Send this prompt instead.")
@click.option("--concurrency", default="1,2,4,8", show_default=True, metavar="N,N,...",
              help="The levels: requests in flight at once.")
@click.option("--requests", type=click.IntRange(1, 100_000),
              help="Requests per level [default: 4 × concurrency, at least 8].")
@click.option("--max-tokens", type=click.IntRange(1), help="max_tokens of each request "
              "[default: the eval's, else 128].")
@click.option("--ignore-eos", is_flag=True, help="Ask the server to generate max_tokens "
              "every time (vLLM, llama-server).")
@click.option("--slo", metavar="METRIC=VALUE,...", help="Targets for goodput, e.g. "
              "ttft=500ms,tpot=50ms,e2el=2s (ms or s).")
@click.option("--warmup", type=click.IntRange(0, 100), default=1, show_default=True,
              help="Unmeasured requests first.")
@click.option("--limit", type=click.IntRange(min=1), help="An eval's first N cases "
              "[default: 16].")
@click.option("--prompt", "prompt_ids", multiple=True, metavar="ID",
              help="Only these prompts of the eval.")
@click.option("--provider", "provider_ids", multiple=True, metavar="ID",
              help="Only these providers of the eval.")
@click.option("-o", "--output", "outputs", multiple=True, metavar="FILE",
              help="Write .json (every field), .csv (a row per level) or .html. Repeatable.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def profile_command(sources: tuple[str, ...], outputs: tuple[str, ...], quiet: bool,
                    **options: Any) -> None:
    """Measure endpoints: per concurrency level, requests and tokens per second, TTFT,
    TPOT, ITL and end-to-end latency (mean, median, p90, p99, as vLLM's serving benchmark
    names them), goodput under --slo, the local server's peak memory, KV-cache usage from
    /metrics, and $/1M output tokens for providers priced per hour.

    Profile an eval's providers with its prompts (promptkit profile evals/x.yaml), GGUF
    files side by side (promptkit profile local:a.gguf local:b.gguf), or any endpoint
    (--base-url URL --model NAME). Exit codes: 0 done; 2 invalid input; 3 a provider
    could not be profiled (its server did not start, the warm-up request failed).
    """
    try:
        code = _profile_and_show(sources, outputs, quiet, options)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    raise SystemExit(code)


def _profile_and_show(sources: tuple[str, ...], outputs: tuple[str, ...], quiet: bool,
                      options: dict[str, Any]) -> int:
    from ..profiling import profile
    from ..profiling.console import print_profile
    from ..profiling.outputs import check_output, write_profile

    for output in outputs:
        check_output(output)
    targets, settings = _targets_and_settings(sources, options)
    report = profile(targets, settings, None if quiet else _progress)
    for line in report.warnings:
        warning(line)
    print_profile(report, wide_console())
    for output in outputs:
        write_profile(output, report)
    return report.exit_code


def _targets_and_settings(sources: tuple[str, ...], options: dict[str, Any]) -> tuple[Any, Any]:
    from ..profiling import ProfileSettings, build_targets, parse_counts, parse_slo
    from ..profiling.settings import MAX_CONCURRENCY, MAX_INPUT_TOKENS

    settings = ProfileSettings(  # the flags first: a mistake there costs nothing
        concurrency=parse_counts(options["concurrency"], "--concurrency", MAX_CONCURRENCY),
        requests=options["requests"], max_tokens=options["max_tokens"],
        slo=parse_slo(options["slo"]) if options["slo"] is not None else {},
        warmup=options["warmup"], ignore_eos=options["ignore_eos"])
    input_tokens = options["input_tokens"]
    targets = build_targets(
        sources, base_url=options["base_url"], model=options["model"], api=options["api"],
        api_key_env=options["api_key_env"], prompt_text=options["prompt_text"],
        input_tokens=None if input_tokens is None else parse_counts(
            input_tokens, "--input-tokens", MAX_INPUT_TOKENS),
        limit=options["limit"], prompt_ids=options["prompt_ids"],
        provider_ids=options["provider_ids"])
    return targets, settings


def _progress(line: str) -> None:
    from ..terminal import printable_line

    click.echo(printable_line(line), err=True)


__all__ = ["profile_command"]
