"""``promptkit init``: scaffold promptkit into an app's repository."""

from __future__ import annotations

import click

from .app import cli


@cli.command("init")
@click.argument("folder", default=".", type=click.Path(file_okay=False))
def init_command(folder: str) -> None:
    """Add an example template, its eval and a CI workflow to FOLDER (default: here).

    Existing files are never overwritten: they are skipped and listed.
    """
    from ..scaffold import init_project
    from .present import show_init

    show_init(init_project(folder), folder)
