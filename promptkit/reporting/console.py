"""The terminal presenter: the leaderboard and the comparison as rich tables.

Both are laid out from :mod:`.views`. Every piece of text from the data goes through
:func:`~promptkit.terminal.printable_line` (control characters shown as ``\\x1b``, never
sent) and into a rich ``Text``, so an id such as ``[bold]`` is shown as typed, not read
as markup. Without a terminal (CI) rich prints plain text.
"""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..comparing.comparison import Comparison
from ..terminal import clip, printable, printable_line
from .summary import Summary
from .views import (
    Column,
    ComparisonView,
    FlipGroup,
    TableRow,
    comparison_view,
    leaderboard_view,
)

# Leaderboard columns left out, in this order, when the terminal is too narrow; then
# metrics, errors and score. Labels and the pass rate always stay.
DROP_ORDER = ("calls", "tokens", "tokens_per_s", "ttft", "cost", "latency")
LABEL_CAP = 24  # a longer prompt or provider id folds onto more lines
SHORT_CHARS = 240  # of an output in a flipped case
TONE_STYLES = {"worse": "bold red", "better": "green", "": ""}


def _width(column: Column, cells: list[str]) -> int:
    width = max(cell_len(line) for line in [*column.header.splitlines(), *cells])
    return min(width, LABEL_CAP) if column.text else width


def _fitting(columns: list[tuple[Column, list[str]]], width: int) -> list[str]:
    """Drop columns from ``columns`` until the table fits ``width``; the headers dropped."""
    metrics = [column.key for column, _ in reversed(columns) if column.metric is not None]
    hidden = []
    for key in (*DROP_ORDER, *metrics, "errors", "score"):
        # each column has one space of padding and one of border
        if sum(_width(column, cells) + 2 for column, cells in columns) - 1 <= width:
            break
        index = next((i for i, (column, _) in enumerate(columns) if column.key == key), None)
        if index is not None:  # calls/case is there only when some case made several calls
            hidden.append(columns.pop(index)[0].title)
    return hidden


def print_leaderboard(summary: Summary, console: Console, title: str | None = None) -> None:
    """Print the leaderboard table and a footer: the best row, totals, thresholds; then,
    when cases have categories, a table of each row's pass rate and score per category.

    The best row is marked ★ and rows below their threshold are red. When the table is
    wider than the console, the least useful columns are left out (the footer says
    which) and long labels fold.
    """
    view = leaderboard_view(summary)
    columns = [(Column(c.key, printable(c.header), c.text),
                [printable_line(cell) for cell in view.column(i)])
               for i, c in enumerate(view.columns)]
    hidden = _fitting(columns, console.width)
    # Text, not str: a title such as "[/x]" is shown as typed, not read as rich markup.
    table = Table(title=Text(printable_line(title), style="table.title") if title else None,
                  title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  padding=(0, 1, 0, 0), header_style="bold")
    for column, _ in columns:
        table.add_column(Text(column.header), justify="left" if column.text else "right",
                         overflow="fold" if column.text else "ellipsis",
                         no_wrap=not column.text)
    for index, row in enumerate(view.rows):
        style = "bold green" if row.best else ("red" if row.below else "")
        table.add_row(*(Text(cells[index]) for _, cells in columns), style=style)
    console.print(table)
    for line in view.footer:
        console.print(Text(printable_line(line)), highlight=False)
    if hidden:
        console.print(Text(f"(too narrow to show: {', '.join(hidden)})"), highlight=False)
    if view.categories:  # a second table: each row's pass rate and score per category
        console.print()
        console.print(_table(view.category_columns, view.categories, "by category",
                             fold=True))


def _group_lines(group: FlipGroup, limit: int | None) -> list[str]:
    shown = group.flips if limit is None else group.flips[:limit]
    lines = []
    for flip in shown:
        flaky = "  [flaky]" if flip.flaky else ""
        lines += [f"{flip.change}  {printable_line(flip.case_id)}  "
                  f"({printable_line(flip.label)}){flaky}",
                  f"    before: {clip(flip.before, SHORT_CHARS)}",
                  f"    now:    {clip(flip.after, SHORT_CHARS)}"]
    if len(group.flips) > len(shown):
        lines.append(f"    ... and {len(group.flips) - len(shown)} more {group.kind} in "
                     f"{printable_line(group.label)}")
    return lines


def flip_lines(comparison: Comparison, limit: int | None = 50) -> list[str]:
    """The flipped cases as plain lines, regressions first, at most ``limit`` per row and
    direction; ``[flaky]`` marks a case whose repeats disagreed on either side."""
    return _flip_lines(comparison_view(comparison), limit)


def _flip_lines(view: ComparisonView, limit: int | None) -> list[str]:
    return [line for group in view.flip_groups for line in _group_lines(group, limit)]


def _table(columns: list[Column], rows: list[TableRow], title: str | None = None, *,
           fold: bool = False) -> Table:
    """A table of rows; with ``fold``, text too long for the terminal folds onto more lines
    (numbers stay whole) rather than being cut."""
    table = Table(title=Text(title, style="table.title") if title else None,
                  title_justify="left", box=None, header_style="bold",
                  padding=(0, 1, 0, 0))
    for column in columns:
        table.add_column(Text(column.header), justify="left" if column.text else "right",
                         **({"overflow": "fold", "no_wrap": not column.text} if fold else {}))
    for row in rows:
        table.add_row(*(Text(printable_line(cell)) for cell in row.cells),
                      style=TONE_STYLES[row.tone])
    return table


def print_comparison(comparison: Comparison, console: Console, flips: int | None = 50
                     ) -> None:
    """Print the per-row table, the metric intervals, warnings and flipped cases, then the
    verdict (at most ``flips`` flipped cases per row and direction; ``None``: all)."""
    view = comparison_view(comparison)
    console.print(_table(view.columns, view.rows, printable_line(view.title)))
    if view.metric_rows:
        console.print(_table(view.metric_columns, view.metric_rows))
    if view.metric_note:
        console.print(Text(view.metric_note), highlight=False)
    for line in view.detection:
        console.print(Text(line), highlight=False)
    for note in view.notes:
        if note.kind == "note":
            console.print(Text(f"note: {printable_line(note.text)}"))
        else:
            console.print(Text(printable_line(f"warning: {note.text}"), style="yellow"))
    lines = _flip_lines(view, flips)
    if lines:
        console.print(Text("flipped cases:", style="bold"))
        for line in lines:
            console.print(Text(line), highlight=False)
    console.print(Text(view.verdict, style="bold red" if view.failed else "bold"))
