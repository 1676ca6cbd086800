"""The ``.html`` report: one static page, safe to open from a CI artifact.

:func:`write_html` renders the package's Jinja templates (``templates/*.html``) with the
leaderboard and comparison views of :mod:`.views`, the charts of :mod:`.charts` (inline
SVG, so they need no script; with categories, a heat map of the pass rate per category
× prompt × provider: a table of cells coloured by class, the numbers in them), the
flipped cases side by side with a word diff, and a filterable table of every case
(:mod:`.cases`), streamed with ``Template.generate`` so a 100,000-case run is never held
in memory. Each case row folds in ``<details>`` what
explains it: the prompt as sent, the few-shot examples, the answer and its votes, the
tool calls, a conversation turn by turn, the reasoning and every check's reason (and
turn); a link to ``#c<row>-<part>`` (``#c12-prompt``, ``#c12-conversation``) opens that
part without any script.

The page loads nothing: a Content-Security-Policy allows only its own inline style and
script (``templates/report.css`` and ``report.js``), by hash, and autoescaping is on for
every template, so an answer containing ``<script>`` is shown as text. The script only
filters rows already on the page; without it everything is still shown.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import IO, TYPE_CHECKING

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ..results import CaseResult, RunInfo
from .cases import CaseRows
from .charts import charts, heat_map, short
from .summary import Summary
from .views import comparison_view, leaderboard_view

if TYPE_CHECKING:
    from ..comparing.comparison import Comparison
    from .views import FlipView

MAX_CASE_ROWS = 5000  # a bigger table makes the page slow; the .jsonl output has them all
MAX_FLIPS = 200  # flipped cases shown with their outputs, regressions first
DIFF_CHARS = 20_000  # the word diff is quadratic in the worst case: diff a prefix only


def _package_text(name: str) -> str:
    return (resources.files(__package__) / "templates" / name).read_text("utf-8").strip()


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


STYLE = _package_text("report.css")
SCRIPT = _package_text("report.js")
CSP = (f"default-src 'none'; style-src 'sha256-{_sha256(STYLE)}'; "
       f"script-src 'sha256-{_sha256(SCRIPT)}'; img-src data:; base-uri 'none'; "
       "form-action 'none'")

ENVIRONMENT = Environment(
    loader=PackageLoader(__package__, "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    auto_reload=False)
ENVIRONMENT.filters.update(f0=lambda v: f"{v:.0f}", f1=lambda v: f"{v:.1f}",
                           commas=lambda v: f"{v:,}")
ENVIRONMENT.globals["short"] = short


@dataclass
class WordDiff:
    """Two texts word by word: ``parts`` are ``(kind, text)`` with kind ``equal``, ``del``
    or ``ins``; ``cut`` is the number of characters diffed when the texts were longer."""

    parts: list[tuple[str, str]]
    cut: int | None = None


def word_diff(before: str, after: str) -> WordDiff:
    """What changed from ``before`` to ``after``, word by word (a prefix of long texts)."""
    a = re.findall(r"\S+|\s+", before[:DIFF_CHARS])
    b = re.findall(r"\S+|\s+", after[:DIFF_CHARS])
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            parts.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            parts.append(("ins", "".join(b[j1:j2])))
    return WordDiff(parts, DIFF_CHARS if max(len(before), len(after)) > DIFF_CHARS else None)


def _shown_flips(flips: list[FlipView]) -> list[tuple[FlipView, WordDiff]]:
    return [(flip, word_diff(flip.before or "", flip.after or "")) for flip in flips[:MAX_FLIPS]]


def _meta(summary: Summary, run: RunInfo | None, leaderboard_lines: list[str]) -> list[str]:
    parts = []
    if run is not None:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run.started_at))
        parts.append(f"run {run.run_id} ({run.status}), started {started}")
    return [*parts, *leaderboard_lines]


def html_chunks(summary: Summary, results: Iterable[CaseResult], run: RunInfo | None = None,
                comparison: Comparison | None = None, title: str | None = None
                ) -> Iterator[str]:
    """The report page, piece by piece as it is rendered (see :func:`write_html`).

    Everything above the case table comes first; then the results are read one at a
    time, each yielding its row, so the page can be written while they stream.
    """
    description = run.config.get("description") if run is not None else None
    title = title or (str(description) if description else None) or "promptkit report"
    leaderboard = leaderboard_view(summary)
    compared = comparison_view(comparison) if comparison is not None else None
    flipped = {(row.prompt_id, row.provider_id, f.case_id) for row in comparison.rows
               for f in (*row.regressed, *row.fixed)} if comparison is not None else set()
    statuses = ["pass", "fail", "error"] + (["flipped"] if comparison is not None else [])
    filters = [("f-prompt", "prompt", list(dict.fromkeys(r.prompt_id for r in summary.rows))),
               ("f-provider", "provider",
                list(dict.fromkeys(r.provider_id for r in summary.rows))),
               ("f-status", "status", statuses)]
    template = ENVIRONMENT.get_template("report.html")
    return template.generate(
        csp=CSP, style=Markup(STYLE), script=Markup(SCRIPT), title=title,
        meta=_meta(summary, run, [leaderboard.totals, *leaderboard.replicas,
                                  *leaderboard.leaders]),
        leaderboard=leaderboard, charts=charts(summary.rows) if summary.rows else None,
        heat_map=heat_map(summary),
        comparison=compared, flips=_shown_flips(compared.flips) if compared else [],
        filters=filters, cases=CaseRows(results, flipped, MAX_CASE_ROWS))


def write_html(file: IO[str], summary: Summary, results: Iterable[CaseResult],
               run: RunInfo | None = None, comparison: Comparison | None = None,
               title: str | None = None) -> None:
    """Write the report page to an open text file.

    Results are written as they are read; only the summary and the comparison are held.
    The file should be UTF-8 (``outputs.write_output`` opens it with
    ``errors="backslashreplace"``, so a lone surrogate in an output cannot fail the write).

    Args:
        file: Where to write.
        summary: The leaderboard of the same results.
        results: The results, read once, in store order; the first ``MAX_CASE_ROWS`` are
            shown, the page says how many more there were.
        run: The run, for its id, status and start time.
        comparison: A comparison with a baseline, shown with its flipped cases.
        title: The page title (default: the spec's description, else "promptkit report").
    """
    for chunk in html_chunks(summary, results, run, comparison, title):
        file.write(chunk)
