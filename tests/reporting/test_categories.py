"""Leaderboards by category: each row's pass rate (with the rows' case-level interval) and
score per category of its cases, in every output, and per-category changes in a
comparison; categories in Chinese as well as English."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from helpers import promptkit, result
from promptkit.comparing.stats import case_bootstrap_interval, wilson_interval
from promptkit.reporting.charts import heat_map
from promptkit.reporting.console import print_leaderboard
from promptkit.reporting.html import write_html
from promptkit.reporting.markdown import markdown_summary
from promptkit.reporting.summary import summarize
from promptkit.reporting.views import leaderboard_view
from promptkit.testing import FakeEndpoint

SPEC = """\
description: 分类 leaderboard
templates: templates
prompts:
  - {id: short, template: qa@1, vars: {variant: short}}
  - {id: long, template: qa@1, vars: {variant: long}}
providers:
  - id: fake
    base_url: BASE_URL
    model: m
    retries: 0
assert:
  - {type: contains, value: "yes"}
cases:
  - {id: w1, category: 天气, q: w1}
  - {id: m1, category: math, q: m1}
  - {id: w2, category: 天气, q: w2}
  - {id: m2, category: math, q: m2}
  - {id: w3, category: 天气, q: w3}
  - {id: m3, category: math, q: m3}
  - {id: w4, category: 天气, q: w4}
  - {id: m4, category: math, q: m4}
"""
# The cases each variant passes: short passes all of 天气 and one math case, long half of
# 天气 and all of math.
PASSES = {"short": {"w1", "w2", "w3", "w4", "m1"}, "long": {"w1", "w2", "m1", "m2", "m3", "m4"}}


def make_eval(tmp_path: Path, endpoint: FakeEndpoint, passes: dict[str, set[str]]) -> Path:
    (tmp_path / "templates" / "qa").mkdir(parents=True, exist_ok=True)
    (tmp_path / "templates" / "qa" / "v1.jinja").write_text("{{ variant }}: {{ q }}\n")
    spec = tmp_path / "eval.yaml"
    spec.write_text(SPEC.replace("BASE_URL", endpoint.base_url))

    def answer(request) -> str:
        variant, case = request.prompt_text.strip().split(": ")
        return "yes" if case in passes[variant] else "no"

    endpoint.respond_with(answer)
    return spec


def cells(category: str, prompt: str, passed: int, cases: int = 4) -> list[str]:
    low, high = wilson_interval(passed, cases)
    return [category, prompt, "fake", str(cases),
            f"{passed / cases:.1%} ({low * 100:.0f}–{high * 100:.0f})", f"{passed / cases:.3f}"]


EXPECTED = [cells("天气", "short", 4), cells("天气", "long", 2), cells("math", "short", 1),
            cells("math", "long", 4)]


def terminal_row(row: list[str]) -> re.Pattern[str]:
    return re.compile(r"\s+".join(re.escape(cell) for cell in row))


class HeatMapCells(HTMLParser):
    """The heat map's cells: (category, its cells' titles)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self.inside = self.header = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "table":
            self.inside = values.get("class") == "heat"
        elif self.inside and tag == "th" and values.get("scope") == "row":
            self.rows.append(("", []))
            self.header = True
        elif self.inside and tag == "td" and self.rows:
            self.rows[-1][1].append(f"{values.get('class')}: {values.get('title')}")

    def handle_endtag(self, tag: str) -> None:
        self.header = self.header and tag != "th"
        self.inside = self.inside and tag != "table"

    def handle_data(self, data: str) -> None:
        if self.header:
            self.rows[-1] = (self.rows[-1][0] + data, self.rows[-1][1])


def test_a_category_eval_shows_its_breakdown_in_every_output(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    make_eval(tmp_path, endpoint, PASSES)
    outputs = [tmp_path / name for name in ("summary.md", "report.html", "out.json", "out.csv")]
    proc = promptkit("eval", "eval.yaml", "--no-cache", *(f"-o{path}" for path in outputs),
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the terminal: a second table, a row per category × prompt × provider
    table = proc.stdout[proc.stdout.index("by category"):]
    for row in EXPECTED:
        assert terminal_row(row).search(table), (row, table)
    summary_md = outputs[0].read_text(encoding="utf-8")
    assert "### By category" in summary_md
    for row in EXPECTED:
        assert "| " + " | ".join(row) + " |" in summary_md
    heat = HeatMapCells()
    heat.feed(outputs[1].read_text(encoding="utf-8"))
    assert [name for name, _ in heat.rows] == ["天气", "math"]
    assert heat.rows[0][1] == [
        "h10: 天气 — short × fake: 100.0% (51–100) pass, score 1.000, 4 cases",
        "h5: 天气 — long × fake: 50.0% (15–85) pass, score 0.500, 4 cases"]
    assert heat.rows[1][1][0].startswith("h3: math — short × fake: 25.0% (5–70) pass")
    document = json.loads(outputs[2].read_text(encoding="utf-8"))
    categories = document["summary"]["categories"]
    assert [(c["category"], c["prompt_id"], c["cases"], c["pass_rate"])
            for c in categories] == [("天气", "short", 4, 1.0), ("天气", "long", 4, 0.5),
                                     ("math", "short", 4, 0.25), ("math", "long", 4, 1.0)]
    assert categories[0] == {"category": "天气", "prompt_id": "short", "provider_id": "fake",
                             "cases": 4, "pass_rate": 1.0,
                             "ci_low": pytest.approx(wilson_interval(4, 4)[0]),
                             "ci_high": 1.0, "score": 1.0}
    with outputs[3].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["category"] for row in rows[:4]] == ["天气", "math", "天气", "math"]
    # a stored run shows the same breakdown
    shown = promptkit("runs", "show", "last", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for row in EXPECTED:
        assert terminal_row(row).search(shown.stdout[shown.stdout.index("by category"):])


def test_a_comparison_gives_each_gated_row_its_change_per_category(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    make_eval(tmp_path, endpoint, PASSES)
    assert promptkit("eval", "eval.yaml", "--no-cache", cwd=tmp_path).returncode == 0
    saved = promptkit("baseline", "save", "-o", "base.json", cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    base = (tmp_path / "base.json").read_text(encoding="utf-8")
    assert '"promptkit_baseline": 3' in base and '{"id": "w1", "category": "天气"' in base
    # now short fails three 天气 cases it passed, and passes every math case
    make_eval(tmp_path, endpoint, {"short": {"w4", "m1", "m2", "m3", "m4"},
                                   "long": PASSES["long"]})
    outputs = [tmp_path / name for name in ("cmp.md", "cmp.html", "cmp.json")]
    proc = promptkit("eval", "eval.yaml", "--no-cache", "--baseline", "base.json",
                     *(f"-o{path}" for path in outputs), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    weather = "pass rate · 天气 (4 cases, 3−/0+)"
    math = "pass rate · math (4 cases, 0−/3+)"
    assert re.search(re.escape(weather) + r"\s+100\.0%\s+25\.0%\s+-75\.0pp \(", proc.stdout)
    assert re.search(re.escape(math) + r"\s+25\.0%\s+100\.0%\s+\+75\.0pp \(", proc.stdout)
    assert "pass rate · 天气 (4 cases, 0−/0+)" in proc.stdout  # long × fake: unchanged
    for path in outputs[:2]:
        text = path.read_text(encoding="utf-8")
        assert weather in text and math in text
    rows = json.loads(outputs[2].read_text(encoding="utf-8"))["comparison"]["rows"]
    short = next(row for row in rows if row["prompt_id"] == "short")
    assert [(c["category"], c["cases"], c["before_rate"], c["after_rate"], c["regressed"],
             c["fixed"]) for c in short["categories"]] == [("天气", 4, 1.0, 0.25, 3, 0),
                                                         ("math", 4, 0.25, 1.0, 0, 3)]
    assert short["categories"][0]["change"]["mean"] == pytest.approx(-0.75)


def test_category_intervals_are_the_rows_over_that_categorys_cases() -> None:
    results = [result("p", "m", i, passed=i < 7, score=float(i < 7),
                      category="天气" if i % 2 else "news") for i in range(20)]
    summary = summarize(results)
    weather = [r for r in results if r.category == "天气"]
    passed = sum(r.passed for r in weather)
    (row,) = summary.rows
    assert summary.category_names == ["news", "天气"]  # in the order of their first case
    category = row.categories["天气"]
    assert (category.cases, category.pass_rate) == (10, passed / 10)
    assert (category.ci_low, category.ci_high) == wilson_interval(passed, 10)
    # with repeats, the interval resamples the category's cases, as a row's does
    repeated = [result("p", "m", i, repeat=rep, passed=(i + rep) % 3 == 0, category="x")
                for i in range(6) for rep in range(2)]
    (row,) = summarize(repeated).rows
    fractions = [sum((i + rep) % 3 == 0 for rep in range(2)) / 2 for i in range(6)]
    assert (row.categories["x"].ci_low, row.categories["x"].ci_high) == \
        case_bootstrap_interval(fractions)
    assert (row.ci_low, row.ci_high) == (row.categories["x"].ci_low, row.categories["x"].ci_high)


def test_cases_without_a_category_are_a_group_of_their_own_and_none_means_no_table() -> None:
    results = [result("p", "m", i, passed=True, category="math" if i < 2 else None)
               for i in range(4)]
    summary = summarize(results)
    assert summary.category_names == ["math", None]
    view = leaderboard_view(summary)
    assert [row.cells[0] for row in view.categories] == ["math", "(none)"]
    plain = summarize([result("p", "m", i, passed=True) for i in range(4)])
    assert plain.categories == [] and leaderboard_view(plain).categories == []
    assert heat_map(plain) is None
    out = io.StringIO()
    print_leaderboard(plain, Console(file=out, width=120))
    assert "by category" not in out.getvalue()
    assert "By category" not in markdown_summary(plain)


def test_chinese_categories_fit_a_narrow_terminal_and_are_escaped_in_html() -> None:
    long_name = "阅读理解与长文本推理能力评测"
    results = [result(prompt, "qwen2.5-7b-instruct", i, passed=i % 2 == 0,
                      category=[long_name, "<b>代码</b>", "math"][i % 3])
               for prompt in ("few-shot-with-examples", "zero-shot") for i in range(9)]
    summary = summarize(results)
    out = io.StringIO()
    print_leaderboard(summary, Console(file=out, width=60))
    lines = out.getvalue()[out.getvalue().index("by category"):].splitlines()
    assert all(cell_len(line) <= 60 for line in lines), lines
    # a name too long folds onto more lines, whole, two columns per character
    text = "\n".join(lines)
    assert "…" not in text and "阅读理解与" in text and "能力评测" in text
    page = io.StringIO()
    write_html(page, summary, results)
    html = page.getvalue()
    assert "<b>代码</b>" not in html and "&lt;b&gt;代码&lt;/b&gt;" in html
    assert f'<th class="l" scope="row">{long_name}</th>' in html
