"""Tests for promptkit.reporting.markdown: the GitHub-flavoured summary, read back by a
Markdown parser (markdown-it, rich's own) as GitHub would render it."""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt

from helpers import NASTY, handcrafted, result
from promptkit.comparing.comparison import Comparison
from promptkit.reporting import markdown
from promptkit.reporting.markdown import MAX_FLIPS, markdown_summary, markdown_text
from promptkit.reporting.outputs import write_output
from promptkit.reporting.summary import summarize
from promptkit.reporting.views import comparison_view, leaderboard_view
from promptkit.terminal import printable_line

HOSTILE = "a|b\nc <script>x</script> [l](http://x) *e* _u_ `c` ~~s~~ &amp; $m$ \\ \x1b[2J"


def parse(text: str) -> dict[str, list]:
    """Tables (rows of cell texts), list items and headings, as a renderer reads them.
    Fails when any of them holds more than text: a link, emphasis, code, HTML."""
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)
    found: dict[str, list] = {"tables": [], "items": [], "headings": [], "paragraphs": []}
    for index, token in enumerate(tokens):
        if token.type == "table_open":
            found["tables"].append([])
        elif token.type == "tr_open":
            found["tables"][-1].append([])
        if token.type != "inline":
            continue
        children = token.children or []
        assert {child.type for child in children} <= {"text", "strong_open", "strong_close"}, \
            token.content
        plain = "".join(child.content for child in children)
        opener = tokens[index - 1].type
        if opener in ("th_open", "td_open"):
            found["tables"][-1][-1].append(plain)
        elif opener == "heading_open":
            found["headings"].append(plain)
        elif tokens[index - 2].type == "list_item_open":
            found["items"].append(plain)
        else:
            found["paragraphs"].append(plain)
    return found


def test_markdown_text_is_inert_and_on_one_line() -> None:
    escaped = markdown_text(HOSTILE)
    assert "\n" not in escaped and "\x1b" not in escaped
    assert parse(escaped)["paragraphs"] == [printable_line(HOSTILE)]


def test_the_leaderboard_table_parses_with_every_cell_in_every_row() -> None:
    results = [*handcrafted(), result(HOSTILE, "m|x", 0, passed=True, output=NASTY,
                                      metrics={"a|b": 1.0})]
    summary = summarize(results, 0.75)
    text = markdown_summary(summary, title="evals | nightly")
    found = parse(text)
    assert found["headings"] == ["evals | nightly"]
    (table,) = found["tables"]
    view = leaderboard_view(summary)
    assert table[0] == [column.title for column in view.columns]
    assert len({len(row) for row in table}) == 1
    assert table[1:] == [[printable_line(cell) for cell in row.cells] for row in view.rows]
    assert table[-1][:2] == [printable_line(HOSTILE), "m|x"]
    assert found["items"] == [printable_line(line) for line in view.footer]
    alignment = text.splitlines()[3]
    assert alignment.count(":---") == 2 and alignment.count("---:") == len(view.columns) - 2


def test_the_comparison_has_its_verdict_table_notes_and_first_flips(
        two_rows: Comparison, hostile_id: str) -> None:
    summary = summarize(handcrafted())
    found = parse(markdown_summary(summary, two_rows))
    view = comparison_view(two_rows)
    assert found["headings"] == ["promptkit report", "new vs baseline base",
                                 "Flipped cases (8)"]
    assert view.verdict in found["paragraphs"]
    _, table, metrics, flips = found["tables"]
    assert table[1:] == [row.cells for row in view.rows]
    assert metrics[1:] == [row.cells for row in view.metric_rows]
    assert flips[0] == ["change", "case", "prompt × provider", "baseline", "now"]
    assert flips[-1] == ["pass → FAIL", printable_line(hostile_id), "a × p",
                         "line one | two line <three>", "now | worse **bold**"]
    assert "warning: b × p: model changed (m → m2)" in found["items"]
    assert all(line in found["items"] for line in view.detection)


def test_only_the_first_flips_are_listed(compare_one) -> None:
    comparison = compare_one([True] * 30, [False] * 30)
    found = parse(markdown_summary(summarize([]), comparison))
    assert "no results" not in found["items"]  # a comparison alone has no leaderboard
    assert len(found["tables"][-1]) == 1 + MAX_FLIPS
    assert found["paragraphs"][-1] == (f"… and {30 - MAX_FLIPS} more (the .html report "
                                       "shows them all, with a word diff).")


def test_long_outputs_are_clipped_and_missing_ones_named(compare_one) -> None:
    comparison = compare_one([True], [False])
    flip = comparison.rows[0].regressed[0]
    flip.before.output, flip.after.output = "word " * 100, None
    (row,) = parse(markdown_summary(summarize([]), comparison))["tables"][-1][1:]
    assert row[3].endswith("…") and len(row[3]) == 120 and row[4] == "(no output)"


def test_a_comparison_alone_is_a_summary_for_a_pull_request(two_rows: Comparison,
                                                            tmp_path: Path) -> None:
    """What ``promptkit compare a.json b.json -o summary.md`` writes: the verdict, the
    table and the first flips; no empty leaderboard."""
    path = tmp_path / "summary.md"
    write_output(path, summarize([]), [], None, two_rows)
    text = path.read_text(encoding="utf-8")
    found = parse(text)
    view = comparison_view(two_rows)
    assert found["headings"] == ["promptkit report", "new vs baseline base",
                                 "Flipped cases (8)"]
    assert found["paragraphs"][0] == view.verdict and "no results" not in text
    assert [len(table) for table in found["tables"]] == [1 + len(view.rows),
                                                         1 + len(view.metric_rows), 1 + 8]
    assert "<" not in text.replace("\\<", "")  # no raw HTML from the data


def test_a_list_item_cannot_become_a_heading_or_a_nested_list() -> None:
    lines = ["# heading", "- item", "+ item", "= underline", "12. item", "3) item", "fine"]
    items = markdown._bullets(lines)
    assert items[-1] == "- fine" and items[4] == "- 12\\. item"
    tokens = MarkdownIt("commonmark").parse("\n".join(items))
    assert [t.type for t in tokens].count("bullet_list_open") == 1  # nothing nested
    assert "heading_open" not in [t.type for t in tokens]
    assert "ordered_list_open" not in [t.type for t in tokens]
    assert parse("\n".join(items))["items"] == lines
