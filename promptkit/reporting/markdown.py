"""The Markdown presenter: a GitHub-flavoured summary of a run, for ``$GITHUB_STEP_SUMMARY``.

:func:`markdown_summary` lays out the views of :mod:`.views` as GitHub-flavoured
Markdown: the leaderboard table and the lines under it, the table by category (when
cases have one), and with a comparison its table, verdict and first flipped cases. Text
from the data is made inert: control characters are shown as ``\\xNN``, newlines and
tabs become spaces, and the punctuation Markdown reads inline (emphasis, code, links,
HTML, entities, math, table pipes) is backslash-escaped, so an id or an output can
neither format the page nor split a table.
"""

from __future__ import annotations

import re

from ..comparing.comparison import Comparison
from ..terminal import clip, printable_line
from .summary import Summary
from .views import Column, ComparisonView, FlipView, comparison_view, leaderboard_view

MAX_FLIPS = 10  # flipped cases listed, regressions first; the HTML report has them all
TEXT_CHARS = 120  # of an output in a flipped case

_INLINE = re.compile(r"([\\`*_\[\]<>|~&$])")


def markdown_text(text: object) -> str:
    """``text`` on one line, shown literally by a GitHub-flavoured Markdown renderer."""
    return _INLINE.sub(r"\\\1", printable_line(text))


def markdown_table(columns: list[Column], rows: list[list[str]]) -> list[str]:
    """A GFM table: a header row, the alignment row (text left, numbers right), a row
    per entry; every cell escaped."""
    lines = ["| " + " | ".join(markdown_text(column.title) for column in columns) + " |",
             "|" + "|".join(" :--- " if column.text else " ---: " for column in columns) + "|"]
    lines += ["| " + " | ".join(markdown_text(cell) for cell in cells) + " |" for cells in rows]
    return lines


# What would make a list item's text a heading, a nested list or a setext underline.
_BLOCK_START = re.compile(r"[#=+-]|\d{1,9}(?=[.)])")


def _bullets(lines: list[str]) -> list[str]:
    items = []
    for line in lines:
        text = markdown_text(line)
        start = _BLOCK_START.match(text)
        if start:  # escape the marker: "\# 1", "1\. x"
            text = (text[:start.end()] + "\\" + text[start.end():] if start.group().isdigit()
                    else "\\" + text)
        items.append(f"- {text}")
    return items


def _flips(flips: list[FlipView]) -> list[str]:
    columns = [Column("change", "change", text=True), Column("case", "case", text=True),
               Column("label", "prompt × provider", text=True),
               Column("before", "baseline", text=True), Column("after", "now", text=True)]
    rows = [[flip.change + (" (flaky)" if flip.flaky else ""), flip.case_id, flip.label,
             clip(flip.before, TEXT_CHARS), clip(flip.after, TEXT_CHARS)]
            for flip in flips[:MAX_FLIPS]]
    lines = [f"#### Flipped cases ({len(flips):,})", "", *markdown_table(columns, rows)]
    if len(flips) > MAX_FLIPS:
        lines += ["", f"… and {len(flips) - MAX_FLIPS:,} more (the .html report shows them "
                      "all, with a word diff)."]
    return lines


def _comparison(view: ComparisonView) -> list[str]:
    lines = [f"### {markdown_text(view.title)}", "", f"**{markdown_text(view.verdict)}**", "",
             *markdown_table(view.columns, [row.cells for row in view.rows]), ""]
    if view.metric_rows:
        lines += [*markdown_table(view.metric_columns, [row.cells for row in view.metric_rows]),
                  ""]
    notes = [*([view.metric_note] if view.metric_note else []), *view.detection,
             *(f"{note.kind}: {note.text}" for note in view.notes)]
    if notes:
        lines += [*_bullets(notes), ""]
    if view.flips:
        lines += [*_flips(view.flips), ""]
    return lines


def markdown_summary(summary: Summary, comparison: Comparison | None = None,
                     title: str | None = None) -> str:
    """A run's leaderboard, and its comparison with a baseline, as GitHub-flavoured
    Markdown (for ``$GITHUB_STEP_SUMMARY``, a pull request comment or ``-o summary.md``).

    Args:
        summary: The leaderboard.
        comparison: A comparison with a baseline: its table, verdict and first
            ``MAX_FLIPS`` flipped cases follow the leaderboard (or stand alone when
            ``summary`` has no rows, as for ``promptkit compare`` of two baseline files).
        title: The heading (default "promptkit report").
    """
    view = leaderboard_view(summary)
    lines = [f"## {markdown_text(title or 'promptkit report')}", ""]
    if view.rows:
        lines += [*markdown_table(view.columns, [row.cells for row in view.rows]), ""]
    if view.rows or comparison is None:  # a comparison of baseline files has no leaderboard
        lines += [*_bullets(view.footer), ""]
    if view.categories:
        lines += ["### By category", "",
                  *markdown_table(view.category_columns, [row.cells for row in view.categories]),
                  ""]
    if comparison is not None:
        lines += _comparison(comparison_view(comparison))
    return "\n".join(lines).rstrip("\n") + "\n"
