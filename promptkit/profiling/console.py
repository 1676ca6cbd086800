"""The terminal presenter of a profile: one rich table per run, then the side-by-side
tables when several providers were profiled (:mod:`.views` lays them out).

As the eval leaderboard does, every cell goes through
:func:`~promptkit.terminal.printable_line` into a rich ``Text``, so a provider id such
as ``[bold]`` is shown as typed; without a terminal rich prints plain text.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..terminal import printable_line
from .profiler import ProfileReport
from .views import TableView, run_table, side_by_side


def _table(view: TableView) -> Table:
    table = Table(title=Text(printable_line(view.title), style="table.title"),
                  title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  padding=(0, 1, 0, 0), header_style="bold")
    for index, header in enumerate(view.headers):
        text = index == 0 and header == "provider"
        table.add_column(Text(header), justify="left" if text else "right",
                         overflow="fold" if text else "ellipsis", no_wrap=not text)
    for row in view.rows:
        table.add_row(*(Text(printable_line(cell)) for cell in row))
    return table


def print_profile(report: ProfileReport, console: Console) -> None:
    """Print each run's table and notes, then the side-by-side comparison."""
    for run in report.runs:
        view = run_table(run, report.settings.slo)
        if view.rows:
            console.print(_table(view))
        else:
            console.print(Text(printable_line(view.title), style="table.title"))
        for note in view.notes:
            console.print(Text(printable_line(note)), highlight=False)
        console.print()
    for view in side_by_side(report):
        console.print(_table(view))
        console.print()
