"""``promptkit templates ...`` and ``promptkit render``: the template store from a shell."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, ExitCode
from .app import Group, cli, fail, templates_option

if TYPE_CHECKING:
    from ..templates import PromptTemplate, TemplateStore


def open_store(templates_dir: str) -> TemplateStore:
    from ..templates import TemplateStore

    return TemplateStore(templates_dir)


@cli.group(cls=Group)
def templates() -> None:
    """List, show, diff, check and lock versioned templates."""


@templates.command("list")
@click.option("--tag", help="Only templates whose latest version has this tag.")
@templates_option
def templates_list(tag: str | None, templates_dir: str) -> None:
    """List templates with their versions, labels and tags."""
    from .present import show_templates

    show_templates(open_store(templates_dir).list(tag))


@templates.command("show")
@click.argument("ref")
@templates_option
def templates_show(ref: str, templates_dir: str) -> None:
    """Show one version: its file, hash, inputs, params and body.

    REF is `name`, `name@3` or `name@label`.
    """
    from .present import show_template

    show_template(open_store(templates_dir).get(ref))


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
        fromfile=f"{a.ref} ({a.filename})", tofile=f"{b.ref} ({b.filename})")
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
    from .present import show_rendered

    template = open_store(templates_dir).get(ref)
    values = parse_vars(template, pairs, vars_file)
    show_rendered(template.render_text(values) if fmt == "text" else template.render(values),
                  fmt)
