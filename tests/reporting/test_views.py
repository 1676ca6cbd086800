"""Tests for promptkit.reporting.views: what the leaderboard and a comparison show, and
that the terminal, the HTML page and the Markdown summary show the same of it."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from html.parser import HTMLParser

from markdown_it import MarkdownIt
from rich.console import Console

from helpers import handcrafted, result
from promptkit.comparing.comparison import Comparison
from promptkit.reporting.console import print_comparison, print_leaderboard
from promptkit.reporting.html import write_html
from promptkit.reporting.markdown import markdown_summary
from promptkit.reporting.summary import summarize
from promptkit.reporting.views import (
    ComparisonView,
    comparison_view,
    detection_lines,
    leaderboard_view,
    tool_call_line,
    verdict_line,
)
from promptkit.results import CaseResult
from promptkit.terminal import printable_line

CompareOne = Callable[..., Comparison]

# -- the leaderboard ---------------------------------------------------------------------


def test_leaderboard_view_columns_cells_marks_and_footer() -> None:
    view = leaderboard_view(summarize(handcrafted(), 0.75))
    assert [c.key for c in view.columns] == [
        "prompt", "provider", "pass_rate", "score", "metric:rouge", "metric:judge", "errors",
        "latency", "ttft", "tokens_per_s", "tokens", "cost"]  # no case made several calls
    assert [c.title for c in view.columns][:3] == ["prompt", "provider", "pass rate (95% CI)"]
    assert [c.text for c in view.columns][:3] == [True, True, False]
    p1a = view.rows[1]
    assert p1a.label == "p1 × a" and p1a.mark == "= " and p1a.below and not p1a.best
    assert p1a.cells == ["= p1", "a", "50.0% (15–85)", "0.625", "0.600", "1.000", "1",
                         "1.50s/1.95s", "350ms", "21.7", "30/70", "$0.0040"]
    assert view.column(1) == ["b", "a", "b", "a"]
    assert view.rows[0].cells[-1] == "—"  # no price is not $0
    assert view.footer == [
        *view.leaders, "9 results (1 cached), 2 errors, 8 requests, cost $0.0040",
        "threshold 75% NOT met by: p1 × a (50.0%), p2 × b (50.0%), p2 × a (0.0%)"]
    assert view.leaders[0].startswith("= tied on b: p1, p2 — the leader p1 (100.0%)")
    assert view.threshold_missed


def test_leaderboard_view_of_repeats_a_winner_and_nothing() -> None:
    results = [result("zero", "m", i, repeat=r, passed=i >= 12 and r == 0) for i in range(20)
               for r in range(2)]
    results += [result("few", "m", i, repeat=r, passed=True, output_tokens=2_000_000)
                for i in range(20) for r in range(2)]
    view = leaderboard_view(summarize(results, 0.5))
    flaky = [c.key for c in view.columns].index("flaky")
    assert [c.key for c in view.columns][flaky - 1] == "score"  # after the score
    assert [row.mark for row in view.rows] == ["", "★ "]
    assert view.rows[1].best and view.rows[1].cells[0] == "★ few"
    assert view.rows[1].cells[[c.key for c in view.columns].index("tokens")] == "0/80.0M"
    assert view.leaders[0].startswith("★ best on m: few — 100.0% pass, beats the other")
    assert view.threshold == "threshold 50% NOT met by: zero × m (20.0%)"
    empty = leaderboard_view(summarize([]))
    assert empty.rows == [] and empty.footer == ["no results"]


# -- the comparison ----------------------------------------------------------------------


def test_comparison_view_rows_notes_flips_and_verdict(two_rows: Comparison,
                                                      hostile_id: str) -> None:
    view = comparison_view(two_rows)
    assert view.title == "new vs baseline base"
    a, b = view.rows
    assert a.cells[:3] == ["a × p", "10", "100.0% → 20.0%"]
    assert a.cells[3].endswith("pp)") and a.cells[4] == "8/0" and a.cells[-1] == "worse"
    assert a.tone == "worse" and b.tone == "" and b.cells[-2:] == ["—", "too few cases to tell"]
    assert [m.cells[1] for m in view.metric_rows] == ["score", "score"]
    assert [(n.kind, n.text) for n in view.notes] == [
        ("warning", "b × p: model changed (m → m2)"),
        ("warning", "gone × p is only in the baseline; not compared")]
    assert [(g.kind, g.label, len(g.flips)) for g in view.flip_groups] == [
        ("regressed", "a × p", 8)]
    last = view.flips[-1]
    assert (last.case_id, last.change, last.sample_rates, last.flaky) == (
        hostile_id, "pass → FAIL", "", False)
    assert (last.before, last.after) == ("line one | two\nline <three>",
                                         "now | worse\n**bold**")
    assert last.scores == "1.000 → 0.000"
    assert view.failed and view.verdict == verdict_line(two_rows)


def test_flips_with_repeats_show_sample_fractions(compare_one: CompareOne) -> None:
    view = comparison_view(compare_one([[True, True]] * 20,
                                       [[True, False]] * 12 + [[True, True]] * 8))
    flip = view.flips[0]
    assert flip.change == "2/2 pass → 1/2 pass" and flip.flaky
    assert flip.sample_rates == "100% → 50% of samples"


def test_fixed_cases_come_after_regressions(compare_one: CompareOne) -> None:
    view = comparison_view(compare_one([True, False, True], [False, True, True]))
    assert [(f.case_id, f.change) for f in view.flips] == [
        ("c00", "pass → FAIL"), ("c01", "fail → pass")]
    assert view.metric_note is None
    assert view.failed  # 3 paired cases: a gate cannot vouch for them


def test_verdict_lines(compare_one: CompareOne) -> None:
    worse = compare_one([True] * 20 + [False] * 10,
                        [False] * 8 + [True] * 12 + [True] + [False] * 9)
    assert verdict_line(worse).startswith(
        "verdict: WORSE at alpha 0.05 (one-sided, Holm over 1 gated row(s)): a × p (8 worse")
    better = compare_one([False] * 10, [True] * 10)
    assert verdict_line(better) == ("verdict: better (a × p); no significant regression (the "
                                    "gate could have detected a drop of 58 points or more)")
    dropped = compare_one([True] * 4, [True] * 3 + [False], max_drop=10)
    assert "max-drop: more than 10 points: a × p fell 25.0 points" in verdict_line(dropped)
    outages = compare_one([True] * 30, [False] + [[None]] * 29)
    assert "cannot vouch" in verdict_line(outages)
    assert comparison_view(outages).failed  # red in the terminal and the page alike


def test_no_significant_change_says_what_the_gate_could_have_detected(
        compare_one: CompareOne) -> None:
    same = compare_one([True] * 24, [True] * 23 + [False])
    assert verdict_line(same) == ("verdict: no significant change at alpha 0.05 (the gate "
                                  "could have detected a drop of 26 points or more)")
    assert not comparison_view(same).failed
    guarded = compare_one([True] * 24, [True] * 24, max_drop=10)
    assert verdict_line(guarded) == (
        "verdict: no significant change at alpha 0.05 (the gate could have detected a drop "
        "of 26 points or more); no gated row fell more than 10 points")
    big = compare_one([True] * 5000, [True] * 5000)
    assert "could have detected a drop of 0.1 points or more" in verdict_line(big)
    assert comparison_view(big).rows[0].cells[-2] == "0.1pp"  # not "0pp"


def test_too_few_cases_to_detect_any_drop_cannot_be_vouched_for(
        compare_one: CompareOne) -> None:
    tiny = compare_one([True] * 4, [True] * 4)
    assert verdict_line(tiny) == (
        "cannot vouch: too few paired cases to detect a drop: with 4 cases of a × p no drop "
        "can be significant at one-sided alpha 0.05 (add cases, or gate with --max-drop)")
    view = comparison_view(tiny)
    assert view.failed and view.rows[0].cells[-2:] == ["—", "too few cases to tell"]
    # --max-drop guards what the test cannot: the gate vouches for that, and says so
    guarded = compare_one([True] * 4, [True] * 4, max_drop=10)
    assert verdict_line(guarded) == (
        "verdict: too few paired cases for the test to detect any drop in a × p (4 cases); "
        "no gated row fell more than 10 points")
    assert not comparison_view(guarded).failed


def test_detection_lines(compare_one: CompareOne) -> None:
    assert detection_lines(compare_one([True] * 200, [True] * 200)) == [
        "with 200 cases this gate sees drops of 3 points or more (80% power, one-sided "
        "alpha 0.05)"]
    assert detection_lines(compare_one([True] * 4, [True] * 4)) == [
        "with 4 cases this gate cannot catch any drop at one-sided alpha 0.05 (too few "
        "cases); see --max-drop"]


# -- one view, three presenters ----------------------------------------------------------


def page_text(html: str) -> str:
    parser = HTMLParser(convert_charrefs=True)
    text: list[str] = []
    parser.handle_data = text.append  # type: ignore[method-assign]
    parser.feed(html)
    return "".join(text)


class Tables(HTMLParser):
    """The text of every cell of every table of a page, row by row."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each GFM table's rows of cell texts, as a Markdown renderer reads them; fails if a
    cell holds anything but text (a link, emphasis, code, HTML)."""
    tables: list[list[list[str]]] = []
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    for index, token in enumerate(tokens):
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            tables[-1].append([])
        elif token.type == "inline" and tokens[index - 1].type in ("th_open", "td_open"):
            kinds = {child.type for child in token.children or []}
            assert kinds <= {"text"}, (token.content, kinds)
            tables[-1][-1].append("".join(child.content for child in token.children or []))
    return tables


def terminal_text(summary, comparison: Comparison | None = None) -> list[str]:
    console = Console(file=io.StringIO(), width=400, color_system=None)
    print_leaderboard(summary, console)
    if comparison is not None:
        print_comparison(comparison, console)
    return console.file.getvalue().splitlines()


def in_order(line: str, cells: list[str]) -> bool:
    return re.search(".*".join(re.escape(cell) for cell in cells), line) is not None


def test_the_three_presenters_show_the_same_leaderboard() -> None:
    summary = summarize([*handcrafted(), result("p|1\n[x]", "a", 0, passed=True)], 0.75)
    view = leaderboard_view(summary)
    header = [c.title for c in view.columns]
    html = io.StringIO()
    write_html(html, summary, [])
    html_table = Tables(html.getvalue()).tables[0]
    (markdown_table,) = markdown_tables(markdown_summary(summary))
    assert markdown_table[0] == header and html_table[0] == header
    assert len({len(row) for row in markdown_table}) == 1  # every row has every cell
    lines = terminal_text(summary)
    for row, html_row, markdown_row in zip(view.rows, html_table[1:], markdown_table[1:],
                                           strict=True):
        shown = [printable_line(cell) for cell in row.cells]
        assert markdown_row == shown
        assert [cell.removesuffix(" below threshold") for cell in html_row] == row.cells
        assert any(in_order(line, shown) for line in lines), shown
    text = "\n".join(lines)
    items = markdown_items(markdown_summary(summary))
    for line in view.footer:
        assert printable_line(line) in text and printable_line(line) in items


def test_calls_per_case_is_shown_by_all_three_where_a_case_made_several(
        tool_answer: CaseResult, conversation: CaseResult) -> None:
    one_each = [result("p", "m", i) for i in range(3)]
    cached = result("p", "m", 3, cached=True, requests=0)
    assert "calls" not in [c.key for c in leaderboard_view(summarize([*one_each, cached]))
                           .columns]  # one request a case (or none): nothing to say
    summary = summarize([*handcrafted(), tool_answer, conversation])
    view = leaderboard_view(summary)
    keys = [c.key for c in view.columns]
    assert keys[-2:] == ["calls", "cost"] and view.columns[-2].title == "calls /case"
    assert view.column(keys.index("calls")) == ["1.0", "0.8", "1.0", "1.0", "1.0", "4.0"]
    html = io.StringIO()
    write_html(html, summary, [])
    (markdown_table,) = markdown_tables(markdown_summary(summary))
    for table in (Tables(html.getvalue()).tables[0], markdown_table):
        assert table[0][-2] == "calls /case" and table[-1][-2] == "4.0"
    lines = terminal_text(summary)
    assert "calls" in lines[0] and "/case" in lines[1]
    assert any(in_order(line, ["agent", "m", "4.0", "—"]) for line in lines)


def test_a_tool_call_on_one_line() -> None:
    call = {"id": "call_1", "name": "get_weather", "arguments": {"city": "巴黎", "days": 2}}
    assert tool_call_line(call) == '→ get_weather({"city": "巴黎", "days": 2})'
    assert tool_call_line({"name": "now", "arguments": {}}) == "→ now({})"
    assert tool_call_line({"name": "f", "arguments": None, "raw_arguments": "{city: x"}) == (
        "→ f(invalid JSON: {city: x)")
    long = {"name": "f", "arguments": {"q": "x" * 100}}
    assert tool_call_line(long, 10) == '→ f({"q": "xxx…)'
    assert tool_call_line(long, None) == f'→ f({{"q": "{"x" * 100}"}})'
    assert tool_call_line({"arguments": [1]}) == "→ ?([1])"


def markdown_items(text: str) -> list[str]:
    """The text of each list item of a Markdown document, as a renderer shows it; fails
    if an item holds anything but text."""
    tokens = MarkdownIt("commonmark").parse(text)
    items = []
    for index, token in enumerate(tokens):
        if token.type == "inline" and tokens[index - 2].type == "list_item_open":
            assert {child.type for child in token.children or []} <= {"text"}, token.content
            items.append("".join(child.content for child in token.children or []))
    return items


def test_the_three_presenters_show_the_same_comparison(two_rows: Comparison,
                                                       hostile_id: str) -> None:
    summary = summarize([result("a", "p", 0, passed=True)])
    view: ComparisonView = comparison_view(two_rows)
    html = io.StringIO()
    write_html(html, summary, [], comparison=two_rows)
    html_tables = Tables(html.getvalue()).tables
    markdown = markdown_summary(summary, two_rows)
    markdown_tables_ = markdown_tables(markdown)
    lines = terminal_text(summary, two_rows)
    for columns, rows, html_table, markdown_table in (
            (view.columns, view.rows, html_tables[1], markdown_tables_[1]),
            (view.metric_columns, view.metric_rows, html_tables[2], markdown_tables_[2])):
        assert html_table[0] == markdown_table[0] == [c.title for c in columns]
        for row, html_row, markdown_row in zip(rows, html_table[1:], markdown_table[1:],
                                               strict=True):
            assert html_row == row.cells
            assert markdown_row == [printable_line(cell) for cell in row.cells]
            assert any(in_order(line, markdown_row) for line in lines)
    flips = markdown_tables_[3]
    assert [row[:3] for row in flips[1:]] == [
        ["pass → FAIL", printable_line(f.case_id), f.label] for f in view.flips]
    assert printable_line(hostile_id) in "\n".join(lines)
    items = markdown_items(markdown)
    for text in (*view.detection, *(f"{n.kind}: {n.text}" for n in view.notes)):
        assert printable_line(text) in items
    for text in (view.verdict, *view.detection):
        assert text in "\n".join(lines) and text in page_text(html.getvalue())


def test_every_output_gives_the_same_verdict_on_what_the_gate_could_detect(
        compare_one: CompareOne, tmp_path) -> None:
    """The terminal, ``-o summary.md`` and ``-o report.html`` say "no significant change"
    with the drop the gate could have caught, or that it cannot vouch, in the same words."""
    from promptkit.reporting.outputs import write_output

    summary = summarize([result("a", "p", 0, passed=True)])
    for comparison, expected in (
            (compare_one([True] * 24, [True] * 24), "could have detected a drop of 26 points"),
            (compare_one([True] * 4, [True] * 4), "cannot vouch: too few paired cases"),
            (compare_one([True] * 4, [True] * 4, max_drop=10),
             "too few paired cases for the test to detect any drop")):
        verdict = comparison_view(comparison).verdict
        assert expected in verdict
        write_output(tmp_path / "summary.md", summary, [], None, comparison)
        write_output(tmp_path / "report.html", summary, [], None, comparison)
        markdown = (tmp_path / "summary.md").read_text(encoding="utf-8")
        html = (tmp_path / "report.html").read_text(encoding="utf-8")
        assert MarkdownIt("commonmark").render(markdown).count(
            f"<strong>{verdict}</strong>") == 1
        assert f'">{verdict}</p>' in html
        assert verdict in terminal_text(summary, comparison)
