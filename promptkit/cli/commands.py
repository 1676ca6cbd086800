"""The ``promptkit`` command line.

Each command parses its options, calls one library function and prints. The
group turns any :class:`~promptkit.errors.PromptkitError` into one line on stderr
and exit code 2. Library modules are imported inside commands so ``--help`` is fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .. import __version__
from ..errors import ConfigError, ExitCode, PromptkitError

if TYPE_CHECKING:
    from ..comparing.baseline import Side
    from ..comparing.comparison import Comparison
    from ..templates import PromptTemplate, TemplateStore


def fail(message: str, code: int = ExitCode.INVALID_INPUT) -> NoReturn:
    """Print one error (redacted, control characters escaped) and exit."""
    from ..redact import redact
    from ..terminal import printable

    click.echo(f"promptkit: error: {printable(redact(message))}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """A click group that reports promptkit errors as one line, with the exit code of
    the error's branch: 2 for invalid input, 3 for a run that could not complete."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PromptkitError as exc:
            fail(str(exc), exc.exit_code)


templates_option = click.option(
    "-t",
    "--templates",
    "templates_dir",
    default=lambda: os.environ.get("PROMPTKIT_TEMPLATES", "templates"),
    show_default="templates, or $PROMPTKIT_TEMPLATES",
    help="Template store folder.",
)


def wide_console() -> Any:
    """A stdout console; 140 columns when not a terminal, so CI logs keep whole tables."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal or os.environ.get("COLUMNS") else Console(width=140)


def open_store(templates_dir: str) -> TemplateStore:
    from ..templates.store import TemplateStore

    return TemplateStore(templates_dir)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="promptkit")
def cli() -> None:
    """Versioned prompt templates and evals for any OpenAI-compatible endpoint."""


# -- templates -----------------------------------------------------------------


@cli.group(cls=_Group)
def templates() -> None:
    """List, show, diff, check and lock versioned templates."""


@templates.command("list")
@templates_option
def templates_list(templates_dir: str) -> None:
    """List templates with their versions and labels."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ..terminal import printable_line

    table = Table("template", "versions", "latest", "labels", box=None)
    for info in open_store(templates_dir).list():
        labels = ", ".join(f"{k}→v{v}" for k, v in sorted(info.labels.items()))
        table.add_row(*(Text(printable_line(cell)) for cell in (
            info.name, ", ".join(f"v{v}" for v in info.versions), f"v{info.latest}", labels)))
    Console().print(table)


@templates.command("show")
@click.argument("ref")
@templates_option
def templates_show(ref: str, templates_dir: str) -> None:
    """Show one version: its file, hash, inputs, params and body.

    REF is `name`, `name@3` or `name@label`.
    """
    template = open_store(templates_dir).get(ref)
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
    click.echo("")
    click.echo(template.source.rstrip("\n"))


@templates.command("diff")
@click.argument("ref_a")
@click.argument("ref_b")
@templates_option
def templates_diff(ref_a: str, ref_b: str, templates_dir: str) -> None:
    """Show a unified diff between two versions."""
    import difflib

    store = open_store(templates_dir)
    a, b = store.get(ref_a), store.get(ref_b)
    lines = difflib.unified_diff(
        a.source.splitlines(keepends=True), b.source.splitlines(keepends=True),
        fromfile=f"{a.ref} ({a.filename})", tofile=f"{b.ref} ({b.filename})",
    )
    click.echo("".join(lines), nl=False)


@templates.command("check")
@templates_option
def templates_check(templates_dir: str) -> None:
    """Check the store: lock, syntax, declared inputs, labels. Exit 1 on any problem."""
    from ..templates.lockfile import check
    from ..terminal import printable

    problems = check(open_store(templates_dir))
    for problem in problems:
        click.echo(printable(str(problem)), err=True)
    if problems:
        fail(f"{len(problems)} problem(s) found", ExitCode.FAILED)
    click.echo("templates ok")


@templates.command("lock")
@templates_option
def templates_lock(templates_dir: str) -> None:
    """Record new versions in promptkit.lock. Refuses if a locked version changed."""
    from ..templates.lockfile import lock

    store = open_store(templates_dir)
    result = lock(store)
    for path in result.added:
        click.echo(f"locked {store.loader.display_name(path)}")
    for path in result.removed:
        click.echo(f"dropped {store.loader.display_name(path)} (file deleted)")
    if not result.added and not result.removed:
        click.echo("lock is up to date")


# -- render --------------------------------------------------------------------


def parse_vars(template: PromptTemplate, pairs: tuple[str, ...], vars_file: str | None
               ) -> dict[str, Any]:
    """Variables from ``--vars-file`` (JSON or YAML mapping) then ``--var k=v`` pairs.

    A ``--var`` value for an input declared as a list or object is parsed as JSON.
    """
    values: dict[str, Any] = {}
    if vars_file:
        from ..config import YamlDocument, read_text

        data = YamlDocument(read_text(vars_file, "--vars-file"), vars_file).data  # YAML ⊃ JSON
        if not isinstance(data, dict):
            raise ConfigError("must hold a mapping of variable names to values", vars_file)
        values.update(data)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--var {pair!r}: expected NAME=VALUE")
        spec = template.inputs.get(name)
        if spec is not None and spec.type in ("list", "object", "any"):
            try:
                values[name] = json.loads(value)
                continue
            except json.JSONDecodeError:
                if spec.type != "any":
                    raise ConfigError(f"--var {name}: {spec.type} input needs JSON") from None
        values[name] = value
    return values


@cli.command()
@click.argument("ref")
@click.option("--var", "pairs", multiple=True, metavar="NAME=VALUE", help="A variable; repeat.")
@click.option("--vars-file", type=click.Path(dir_okay=False), help="JSON or YAML mapping.")
@click.option("--format", "fmt", type=click.Choice(["messages", "text", "json"]),
              default="messages", show_default=True,
              help="messages: readable chat turns; text: the completions prompt; json: "
                   "the messages list for the openai SDK.")
@templates_option
def render(ref: str, pairs: tuple[str, ...], vars_file: str | None, fmt: str,
           templates_dir: str) -> None:
    """Render a template with variables and print it.

    REF is `name`, `name@3` or `name@label`.
    """
    template = open_store(templates_dir).get(ref)
    values = parse_vars(template, pairs, vars_file)
    if fmt == "text":
        click.echo(template.render_text(values))
        return
    messages = template.render(values)
    if fmt == "json":
        click.echo(json.dumps(messages, ensure_ascii=False, indent=2))
        return
    for i, message in enumerate(messages):
        if i:
            click.echo("")
        click.echo(f"[{message['role']}]")
        click.echo(message["content"])


# -- eval ----------------------------------------------------------------------


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


@cli.command("eval")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "outputs", multiple=True, metavar="FILE",
              help="Write results: .json, .jsonl, .csv, .xml (JUnit) or .html (a static "
                   "report). Repeatable.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option("--resume", is_flag=True, help="Continue the last unfinished run of this spec.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N cases.")
@click.option("-j", "--concurrency", type=click.IntRange(1, 1024),
              help="Requests in flight per provider (overrides the spec).")
@click.option("--repeat", type=click.IntRange(1, 1000), help="Samples per case.")
@click.option("--prompt", "prompt_ids", multiple=True, metavar="ID", help="Only these prompts.")
@click.option("--provider", "provider_ids", multiple=True, metavar="ID",
              help="Only these providers.")
@click.option("--base-url", help="Run against this endpoint instead of the spec's providers.")
@click.option("--model", help="Model name for --base-url.")
@click.option("--api", type=click.Choice(["chat", "completions"]), help="API for --base-url.")
@click.option("--api-key-env", metavar="VAR", help="Environment variable with the key for "
              "--base-url.")
@click.option("--dry-run", is_flag=True, help="Count requests, tokens and cost; call nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--store-dir", type=click.Path(file_okay=False),
              help="Where runs and the cache live (default: .promptkit/ beside the spec).")
@click.option("--baseline", metavar="FILE_OR_RUN",
              help="Compare with a baseline file (promptkit baseline save) or a stored run.")
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 when the comparison with --baseline finds a significant "
                   "regression.")
@max_drop_option
@alpha_option
@flips_option
def eval_command(spec_path: str, outputs: tuple[str, ...], no_cache: bool, resume: bool,
                 limit: int | None, concurrency: int | None, repeat: int | None,
                 prompt_ids: tuple[str, ...], provider_ids: tuple[str, ...],
                 base_url: str | None, model: str | None, api: str | None,
                 api_key_env: str | None, dry_run: bool, quiet: bool,
                 store_dir: str | None, baseline: str | None, fail_on_regression: bool,
                 max_drop: float | None, alpha: float, flips: int) -> None:
    """Run an eval: prompt variants × providers × cases, scored, stored, reported.

    With --baseline, the run is compared case by case with the baseline: a one-sided
    paired test of "worse" per prompt × provider (exact McNemar; sign-flip on per-case
    pass fractions with repeats), Holm-adjusted across the rows the spec's gate: picks,
    paired bootstrap intervals on each metric, and the cases that flipped.

    Exit codes: 0 every check passed; 1 a gate failed (a threshold; with
    --fail-on-regression a significant regression; with --max-drop a larger drop; the
    message says which); 2 invalid input; 3 the run did not complete (an endpoint
    unreachable, the local server failed, the store or an output could not be written).
    """
    if (fail_on_regression or max_drop is not None) and not baseline:
        raise click.UsageError("--fail-on-regression and --max-drop need --baseline")
    import asyncio

    from rich.console import Console

    from ..api import EvalRequest, exit_code, print_dry_run, run_and_report
    from ..running.spec import apply_overrides, load_spec

    loaded = apply_overrides(
        load_spec(spec_path), base_url=base_url, model=model, api=api,  # type: ignore[arg-type]
        api_key_env=api_key_env, concurrency=concurrency, repeat=repeat,
        prompt_ids=prompt_ids, provider_ids=provider_ids)
    request = EvalRequest(loaded, outputs=outputs, use_cache=not no_cache, resume=resume,
                          limit=limit, quiet=quiet,
                          store_dir=Path(store_dir) if store_dir else None,
                          baseline=baseline, fail_on_regression=fail_on_regression,
                          alpha=alpha, flips=flips, max_drop=max_drop)
    if dry_run:
        print_dry_run(request, wide_console())
        return
    try:
        report = asyncio.run(run_and_report(request, wide_console(), Console(stderr=True)))
    except KeyboardInterrupt:
        fail("interrupted; continue with --resume", 130)
    sys.exit(exit_code(report))


# -- runs, baselines, comparisons ------------------------------------------------------

store_dir_option = click.option(
    "-s", "--store-dir", type=click.Path(file_okay=False),
    help="The run store folder (default: .promptkit/ here and one folder down, "
         "e.g. evals/.promptkit/).")


def _when(timestamp: float | None) -> str:
    import time

    return "—" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S",
                                                       time.localtime(timestamp))


@cli.group(cls=_Group)
def runs() -> None:
    """List stored runs and show one."""


@runs.command("list")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Newest runs shown per store.")
@store_dir_option
def runs_list(limit: int, store_dir: str | None) -> None:
    """List runs, newest first: id, status, results, eval."""
    from rich.table import Table

    from ..running.storage import RunStore, find_run_stores

    found = []
    for path in find_run_stores(store_dir):
        if not path.is_file():
            continue
        with RunStore(path) as store:
            found += [(run, store.count_results(run.run_id))
                      for run in store.list_runs(limit=limit)]
    if not found:
        fail("no runs found (looked for .promptkit/runs.db here and one folder down); "
             "run an eval first or pass --store-dir")
    from rich.text import Text

    from ..terminal import printable_line

    table = Table("run", "status", "started", "results", "eval", box=None,
                  header_style="bold")
    for run, stored in sorted(found, key=lambda item: -item[0].started_at):
        planned = f"/{run.planned:,}" if run.planned is not None else ""
        table.add_row(*(Text(printable_line(cell)) for cell in (
            run.run_id, run.status, _when(run.started_at), f"{stored:,}{planned}",
            _relative(run.eval_path))))
    wide_console().print(table)


def _relative(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


@runs.command("show")
@click.argument("run_ref", metavar="RUN", default="last")
@store_dir_option
def runs_show(run_ref: str, store_dir: str | None) -> None:
    """Show a run's details and leaderboard. RUN is an id, a unique prefix or `last`."""
    from ..reporting.summary import order_rows, print_leaderboard, summarize
    from ..running.storage import find_run, find_run_stores
    from ..terminal import printable_line

    store, run = find_run(run_ref, find_run_stores(store_dir))
    with store:
        out = wide_console()
        out.print(f"run {run.run_id}: {run.status}, started {_when(run.started_at)}, "
                  f"ended {_when(run.finished_at)}", highlight=False, markup=False)
        out.print(printable_line(f"eval {_relative(run.eval_path)}; store {store.path}"),
                  highlight=False, markup=False)
        summary = summarize(store.results(run.run_id), run.config.get("threshold"))
        order_rows(summary, [p.get("id") for p in run.config.get("prompts", [])],
                   [p.get("id") for p in run.config.get("providers", [])])
        title = run.config.get("description") or Path(run.eval_path).name
        print_leaderboard(summary, out, title=title)


@cli.group(cls=_Group)
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
    provider, the model, template sha256, params and one line per case: its id,
    pass/fail, scores and output.
    """
    from ..comparing.baseline import save_baseline, side_from_run
    from ..reporting.outputs import is_baseline_file
    from ..running.storage import find_run, find_run_stores

    store, run = find_run(run_ref, find_run_stores(store_dir))
    with store:
        if run.status != "finished" and not allow_unfinished:
            fail(f"run {run.run_id} is {run.status}; finish it (`promptkit eval SPEC "
                 "--resume`) or pass --allow-unfinished")
        side = side_from_run(store, run)
    if not Path(output).resolve().parent.is_dir():
        fail(f"--output {output}: folder does not exist")
    if Path(output).exists() and not is_baseline_file(Path(output)):
        fail(f"--output {output} exists and is not a promptkit baseline; refusing to "
             "overwrite it (give a new path, or the baseline file to refresh)")
    save_baseline(side, output, _relative(run.eval_path))
    cases = sum(len(row.cases) for row in side.rows)
    errors = sum(case.error is not None for row in side.rows for case in row.cases.values())
    click.echo(f"saved run {run.run_id} to {output}: {len(side.rows)} prompt × provider, "
               f"{cases} cases" + (f", {errors} with errors (counted as failures)"
                                    if errors else ""))


@cli.command("compare")
@click.argument("before", metavar="BASELINE")
@click.argument("after", metavar="[CANDIDATE]", default="last")
@click.option("-o", "--output", "outputs", multiple=True, metavar="FILE",
              help="Also write the comparison: .html (with the candidate's cases) or .json.")
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 when the candidate is significantly worse.")
@max_drop_option
@alpha_option
@flips_option
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
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
    from ..comparing.baseline import resolve_side
    from ..comparing.comparison import compare, print_comparison
    from ..reporting.outputs import refuse_overwrite
    from ..running.storage import find_run_stores

    paths = find_run_stores(store_dir)
    baseline_side, candidate = resolve_side(before, paths), resolve_side(after, paths)
    for output in outputs:
        refuse_overwrite(output, [before if Path(before).is_file() else None,
                                  after if Path(after).is_file() else None])
    comparison = compare(baseline_side, candidate, alpha=alpha, seed=seed, max_drop=max_drop)
    print_comparison(comparison, wide_console(), flips)
    for output in outputs:
        _write_comparison(output, comparison, candidate)
    _exit_on_failed_checks(comparison, fail_on_regression, max_drop)


def _exit_on_failed_checks(comparison: Comparison, fail_on_regression: bool,
                           max_drop: float | None) -> None:
    failed = []
    if fail_on_regression and comparison.regressed:
        failed.append("regression: significantly worse than the baseline")
    if max_drop is not None and comparison.dropped:
        failed.append(f"max-drop: a gated row fell more than {max_drop:g} points")
    if fail_on_regression or max_drop is not None:
        failed += [f"comparison: {reason}; the gate cannot vouch for it"
                   for reason in comparison.uncompared()]
    for line in failed:
        click.echo(f"FAILED {line}", err=True)
    if failed:
        sys.exit(ExitCode.FAILED)


@cli.command("ab")
@click.argument("args", nargs=-1, required=True, metavar="[RUN] PROMPT_A PROMPT_B")
@click.option("--provider", "provider_id", metavar="ID",
              help="The provider whose rows to compare (needed when the run has several).")
@click.option("-o", "--output", "outputs", multiple=True, metavar="FILE",
              help="Also write the comparison: .html or .json.")
@alpha_option
@flips_option
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@store_dir_option
def ab_command(args: tuple[str, ...], provider_id: str | None, outputs: tuple[str, ...],
               alpha: float, flips: int, seed: int, store_dir: str | None) -> None:
    """Is PROMPT_B really better than PROMPT_A? Two variants of one run, case by case.

    The same paired comparison as `compare` (one-sided tests both ways, intervals,
    flipped cases), between two prompt variants of one run on the same cases and the
    same provider. RUN is an id, a unique prefix or `last` (the default).
    """
    from ..comparing.baseline import variant_sides
    from ..comparing.comparison import compare, print_comparison
    from ..running.storage import find_run, find_run_stores

    if len(args) not in (2, 3):
        raise click.UsageError("give PROMPT_A and PROMPT_B, optionally after a RUN")
    run_ref, prompt_a, prompt_b = ("last", *args) if len(args) == 2 else args
    store, run = find_run(run_ref, find_run_stores(store_dir))
    with store:
        side_a, side_b = variant_sides(store, run, prompt_a, prompt_b, provider_id)
    comparison = compare(side_a, side_b, alpha=alpha, seed=seed, settings=False)
    print_comparison(comparison, wide_console(), flips)
    for output in outputs:
        _write_comparison(output, comparison, side_b)


def _write_comparison(output: str, comparison: Comparison, candidate: Side) -> None:
    """Write a comparison to .html or .json, with the candidate's cases when it is a run."""
    from ..reporting.outputs import output_format, refuse_overwrite, write_output
    from ..reporting.summary import summarize
    from ..running.storage import RunStore

    if output_format(output) not in (".html", ".json"):
        fail(f"--output {output}: compare writes .html or .json")
    refuse_overwrite(output)
    if candidate.store_path is None or candidate.run_id is None:
        write_output(output, summarize([]), [], None, comparison)
    else:
        with RunStore(candidate.store_path) as store:
            run = store.get_run(candidate.run_id)
            summary = summarize(store.results(run.run_id), run.config.get("threshold"))
            write_output(output, summary, store.results(run.run_id), run, comparison)
    click.echo(f"wrote {output}", err=True)


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
    import signal
    import time

    from ..running.local import MODEL_ALIAS, LocalServer

    server = LocalServer(model, parallel=parallel, ctx=ctx, port=port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with server:
        click.echo(f"serving {server.describe()}")
        click.echo(f"base_url: {server.base_url}")
        click.echo(f"model: {MODEL_ALIAS}")
        click.echo(f"try: curl {server.base_url}/models")
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            return
        tail = server.log_tail()
    fail(f"the server exited:\n{tail}", ExitCode.RUN_INCOMPLETE)


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


if __name__ == "__main__":
    main()
