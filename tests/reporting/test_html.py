"""Tests for promptkit.reporting.html: structure, escaping, CSP, charts, the templates,
streaming, and a real headless Chromium opening the page (with control pages proving the
browser checks can fail)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
import struct
import subprocess
import tempfile
import tomllib
import weakref
import zlib
from collections.abc import Iterator
from fnmatch import fnmatch
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from promptkit.comparing.baseline import Side, SideCase, SideRow
from promptkit.comparing.comparison import Comparison, compare
from promptkit.reporting import cases
from promptkit.reporting.html import ENVIRONMENT, html_chunks, write_html
from promptkit.reporting.outputs import write_output
from promptkit.reporting.summary import Summary, summarize
from promptkit.results import CaseResult, RunInfo

# Each payload, if it ever ran, would mark the <html> element; the browser tests look for it.
PAYLOADS = [
    "<script>document.documentElement.setAttribute('data-xss','script')</script>",
    "<img src=x onerror=\"document.documentElement.setAttribute('data-xss','onerror')\">",
    "</textarea><script>document.documentElement.setAttribute('data-xss','textarea')</script>",
    "\"><svg onload=\"document.documentElement.setAttribute('data-xss','svg')\">",
    "</style><script>document.documentElement.setAttribute('data-xss','style')</script>",
    "-->",
    "]]>",
    "<!-- ' \" &amp; </pre></details></td></tr></table>",
    "</div></details></summary><script>document.documentElement.setAttribute('data-xss',"
    "'details')</script>",
]
DETAILS = PAYLOADS[8]  # closes the <details> a prompt or an example is folded in
HOSTILE = " ".join(PAYLOADS)
PROMPTS = ("zero-shot", "few-shot" + PAYLOADS[0])
PROVIDERS = ("model-a", "模型乙" + PAYLOADS[3])
CASE_IDS = [f"case-{i}" for i in range(5)] + [PAYLOADS[1]]
PASSING = {(PROMPTS[0], PROVIDERS[0]): 2, (PROMPTS[0], PROVIDERS[1]): 2,
           (PROMPTS[1], PROVIDERS[0]): 5, (PROMPTS[1], PROVIDERS[1]): 4}
METRIC = "rouge-l" + PAYLOADS[2]


def explained(prompt: str, i: int) -> dict:
    """What a result records of why it passed or failed: the prompt as sent (chat messages
    for zero-shot, text for few-shot), the examples chosen, the voted answer, the
    reasoning and the assertions, each holding a payload."""
    chat = prompt == PROMPTS[0]
    return {
        "prompt": [{"role": "system", "content": f"Summarize in one line. {DETAILS}"},
                   {"role": "user", "content": f"Article {i}: 北京 {HOSTILE}"}] if chat
        else f"Example: {DETAILS}\nArticle {i}: 北京 {HOSTILE}\nSummary:",
        "examples": [{"article": f"an example article {DETAILS}", "summary": "示例摘要"},
                     {"article": "a second example", "summary": PAYLOADS[0]}],
        "answer": f"answer {i} {PAYLOADS[1]}",
        "votes": {f"answer {i} {PAYLOADS[1]}": 3, f"other {DETAILS}": 2},
        "reasoning": f"thinking about case {i} {DETAILS}",
        "assertions": [
            {"type": "rouge-l", "metric": METRIC, "passed": i < 3, "score": 0.1 * i,
             "weight": 1.0, "reason": f"rouge-l {0.1 * i:.2f} < 0.4 {DETAILS}", "error": None},
            {"type": "max-words", "metric": "length", "passed": False, "score": 0.0,
             "weight": 1.0, "reason": "words 52 > 40", "error": None},
            {"type": "python", "metric": "python", "passed": False, "score": 0.0,
             "weight": 1.0, "reason": "", "error": f"boom {DETAILS}"}],
    }


def make_results() -> list[CaseResult]:
    """2 prompts × 2 providers × 6 cases (one repeated), in store order; one error."""
    out = []
    for prompt in PROMPTS:
        for p, provider in enumerate(PROVIDERS):
            for i, case_id in enumerate(CASE_IDS):
                for repeat in range(2 if (i == 0 and prompt == PROMPTS[1]) else 1):
                    out.append(CaseResult(
                        prompt, provider, case_id, i, repeat,
                        vars={"article": f"北京 {HOSTILE}", "n": i},
                        output=f"answer {i}: 北京的天气很好。\n{HOSTILE}",
                        passed=i < PASSING[(prompt, provider)], score=0.2 + 0.1 * i,
                        metrics={METRIC: 0.1 * i}, latency_s=(0.3 + 0.05 * i) * (p + 1),
                        ttft_s=0.1, input_tokens=100, output_tokens=20,
                        cost=(0.0002 + 0.001 * p) * (i + 1), **explained(prompt, i)))
    error = out[3]
    error.output, error.error, error.error_kind, error.passed = None, HOSTILE, "server", False
    out[4].output = PAYLOADS[3]  # short enough to be shown without <details>
    return out


def make_comparison() -> Comparison:
    """Zero-shot regressed on 9 cases and was fixed on 1 (a significant change); few-shot
    is unchanged but its template changed; one row is only in the baseline, one only now."""
    ids = [*CASE_IDS, *(f"extra-{i}" for i in range(6, 12))]

    def outcome(i: int, passed: bool, word: str) -> SideCase:
        error = HOSTILE if (i == 9 and word == "old") else None
        return SideCase(ids[i], [passed], float(passed), {"rouge-l": 0.5},
                           None if error else f"the answer is {i} <b>{word}</b> {HOSTILE}",
                           error)

    before = [SideRow(PROMPTS[0], PROVIDERS[0], "m", "t@1", ["a" * 64], {},
                      {ids[i]: outcome(i, i < 9, "old") for i in range(12)}),
              SideRow(PROMPTS[1], PROVIDERS[0], "m", "t@1", ["a" * 64], {},
                      {ids[i]: outcome(i, i < 5, "same") for i in range(6)}),
              SideRow("retired" + PAYLOADS[4], PROVIDERS[0])]
    after = [SideRow(PROMPTS[0], PROVIDERS[0], "m", "t@1", ["a" * 64], {},
                     {ids[i]: outcome(i, i == 9, "new") for i in range(12)}),
             SideRow(PROMPTS[1], PROVIDERS[0], "m", "t@2", ["b" * 64], {},
                     {ids[i]: outcome(i, i < 5, "same") for i in range(6)}),
             SideRow(PROMPTS[0], PROVIDERS[1])]
    return compare(Side("baseline" + PAYLOADS[2], before), Side("run" + PAYLOADS[4], after))


def render(summary: Summary, results, run: RunInfo | None = None,
           comparison: Comparison | None = None) -> str:
    file = io.StringIO(newline="")
    write_html(file, summary, results, run, comparison=comparison)
    return file.getvalue()


@pytest.fixture(scope="module")
def page_html() -> str:
    data = make_results()
    run = RunInfo("20261128T000000-abcd" + PAYLOADS[3], "e.yaml", "h", "finished", 0.0,
                  config={"description": "Report " + PAYLOADS[4]})
    return render(summarize(data, 0.5), iter(data), run, make_comparison())


@pytest.fixture
def report(tmp_path: Path, page_html: str) -> Path:
    path = tmp_path / "report.html"
    path.write_text(page_html, encoding="utf-8")
    return path


VOID = {"meta", "input", "br", "img", "hr", "link"}


class Page(HTMLParser):
    """The page as a browser would tokenize it: tags, raw style/script text, text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self.text: list[str] = []
        self.open: list[str] = []
        self.mismatched: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))  # <line .../> in SVG

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1] == tag:
            self.open.pop()
        else:
            self.mismatched.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] in self.raw:
            self.raw[self.open[-1]].append(data)
        else:
            self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


# -- the markup ------------------------------------------------------------------------


def test_csp_meta_comes_first_and_its_hashes_match_the_inline_blocks(page_html: str) -> None:
    page = Page(page_html)
    head = [name for name, _ in page.tags[page.tags.index(("head", {})) + 1:]]
    assert head[0] == "meta"
    csp = page.tags[page.tags.index(("head", {})) + 1][1]
    assert csp["http-equiv"] == "Content-Security-Policy"
    policy = dict(part.strip().split(" ", 1) for part in csp["content"].split(";"))
    assert policy == {
        "default-src": "'none'",
        "style-src": f"'sha256-{sha256(''.join(page.raw['style']))}'",
        "script-src": f"'sha256-{sha256(''.join(page.raw['script']))}'",
        "img-src": "data:", "base-uri": "'none'", "form-action": "'none'"}
    assert len(page.named("style")) == 1 and len(page.named("script")) == 1
    assert "document.body.dataset.ready" in "".join(page.raw["script"])


def assert_safe_markup(html: str) -> None:
    """No URL to load, no inline style or event handler: nothing the CSP would block."""
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    for tag, attrs in Page(html).tags:
        assert not {"src", "href", "action", "xlink:href", "srcset"} & attrs.keys(), tag
        assert "style" not in attrs and not [a for a in attrs if a.startswith("on")], tag
        for name, value in attrs.items():
            if name != "xmlns":  # the SVG namespace is a name, never fetched
                assert not re.match(r"\s*(https?:)?//", value or ""), (tag, name)


def test_markup_loads_nothing_and_has_no_inline_styles_or_handlers(page_html: str) -> None:
    assert_safe_markup(page_html)


def test_markup_is_balanced(page_html: str) -> None:
    page = Page(page_html)
    assert page_html.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    assert page.mismatched == [] and page.open == []
    assert page.named("meta")[1] == {"charset": "utf-8"}


def test_hostile_payloads_appear_only_escaped(page_html: str) -> None:
    page = Page(page_html)
    for payload in PAYLOADS:
        assert payload not in page_html
        assert escape(payload) in page_html  # as Jinja's autoescape writes it
    # no payload made an element or an attribute: only the tags the report writes
    assert {name for name, _ in page.tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "thead",
        "tbody", "tr", "th", "td", "span", "b", "div", "figure", "figcaption", "svg", "line",
        "text", "circle", "rect", "path", "ul", "li", "pre", "del", "ins", "details",
        "summary", "label", "input", "select", "option", "script"}
    assert not page.named("img") and not page.named("textarea")
    # ... and each is shown to the reader as the text it was
    text = "".join(page.text)
    for where in (HOSTILE, PROMPTS[1], PROVIDERS[1], CASE_IDS[-1], "北京的天气很好"):
        assert where in text
    assert {"title": METRIC} in page.named("span")  # a long metric name is cut in its header
    assert {a["data-prompt"] for a in page.named("tr") if "data-prompt" in a} == set(PROMPTS)
    assert {a["data-provider"] for a in page.named("tr") if "data-provider" in a} == set(
        PROVIDERS)


def test_page_has_leaderboard_comparison_and_every_case(page_html: str) -> None:
    page, text = Page(page_html), "".join(Page(page_html).text)
    data = make_results()
    # 6 cases cannot make a winner: the leaders of each provider are marked tied
    assert "<h2>Leaderboard</h2>" in page_html and text.count("★") == 0
    assert "= tied on model-a: zero-shot, few-shot" in text
    assert page.named("tr").count({"class": "best"}) == 0
    assert page.named("tr").count({"class": "below"}) == 2  # 2/6 and 3/6 below 50%
    assert "threshold 50% NOT met by: zero-shot × model-a (33.3%)" in text
    assert f"{len(data)} results (0 cached), 1 errors" in text
    assert "verdict: WORSE at alpha 0.05" in text and "9/1" in text
    assert "template changed" in text and "is only in the baseline" in text
    assert "has no baseline" in text and "Flipped cases (10)" in text
    regressed, fixed = '<span class="fail">pass → FAIL', '<span class="pass">fail → pass'
    assert page_html.count(regressed) == 9 and page_html.count(fixed) == 1
    assert page_html.rindex(regressed) < page_html.index(fixed)  # regressions first
    assert ("<del>&lt;b&gt;old&lt;/b&gt;</del><ins>&lt;b&gt;new&lt;/b&gt;</ins>"
            in page_html)
    rows = [a for a in page.named("tr") if "data-status" in a]
    assert len(rows) == len(data)
    assert [a["data-status"] for a in rows].count("error") == 1
    assert [a["data-status"] for a in rows].count("pass") == sum(
        r.passed and r.error is None for r in data)
    flipped = [a for a in rows if a["data-flip"] == "1"]
    assert {(a["data-prompt"], a["data-provider"]) for a in flipped} == {PROMPTS[:1] +
                                                                         PROVIDERS[:1]}
    assert len(flipped) == 6
    status = [o["value"] for o in page.named("option")][-5:]
    assert status == ["", "pass", "fail", "error", "flipped"]
    filters = [a for a in page.named("div") if a.get("id") == "filters"]
    assert filters == [{"id": "filters", "class": "filters", "hidden": None}]  # until JS


def test_charts_have_a_point_per_row_axes_and_captions(page_html: str) -> None:
    svgs = re.findall(r"<figure><svg (.*?)</svg><figcaption>(.*?)</figcaption>", page_html,
                      re.S)
    assert len(svgs) == 3
    rows = len(PASSING)
    (latency, caption1), (cost, caption2), (bars, caption3) = svgs
    assert latency.startswith('class="chart" role="img"') and "<title>" in latency
    assert "Quality vs latency" in caption1 and "Quality vs cost" in caption2
    assert latency.count('class="point"') == cost.count('class="point"') == rows
    assert bars.count('class="bar"') == rows and "95% interval" in caption3
    for tick in (">0%<", ">50%<", ">100%<", ">0s<", ">latency p50<", "pass rate"):
        assert tick in latency
    assert ">$0<" in cost and ">cost (USD)<" in cost
    radii = [float(r) for r in re.findall(r'class="point"[^>]* r="([\d.]+)"', latency)]
    assert len(set(radii)) == rows  # the area encodes each row's cost
    labels = re.findall(r'<text class="label"[^>]*>([^<]*)</text>', latency)
    assert "zero-shot × model-a" in labels and len(labels) == rows


def test_cost_chart_says_so_without_prices() -> None:
    data = make_results()
    for r in data:
        r.cost = None
    html = render(summarize(data), data)
    assert "no cost data (no price configured)" in html
    assert_safe_markup(html)
    assert html.count('<svg class="chart"') == 2


def test_an_empty_report_without_comparison_is_a_valid_page() -> None:
    html = render(summarize([]), [])
    page = Page(html)
    assert page.mismatched == [] and page.open == []
    assert_safe_markup(html)
    assert page.named("meta")[0]["http-equiv"] == "Content-Security-Policy"
    assert "no results" in "".join(page.text) and "<svg" not in html
    assert len(page.named("script")) == 1 and page.named("table")[-1] == {"id": "cases"}


def test_results_are_streamed_once() -> None:
    data = make_results()
    file = io.StringIO()

    def stream() -> Iterator[CaseResult]:
        assert "<h2>Cases</h2>" in file.getvalue()  # the page so far is out already
        yield from data

    write_html(file, summarize(data), stream())
    assert file.getvalue().count("data-status=") == len(data)


def test_case_table_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("promptkit.reporting.html.MAX_CASE_ROWS", 5)
    data = make_results()
    html = render(summarize(data), iter(data))
    assert html.count("data-status=") == 5
    assert f"{len(data) - 5} more results are not shown" in html and ".jsonl" in html


def test_write_output_writes_the_page(tmp_path: Path) -> None:
    data = make_results()
    path = tmp_path / "r.html"
    write_output(path, summarize(data), iter(data), None, make_comparison())
    html = path.read_text(encoding="utf-8")
    assert 'http-equiv="Content-Security-Policy"' in html and "Flipped cases" in html
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


# -- templates and streaming -------------------------------------------------------------


def test_every_template_autoescapes_and_ships_as_package_data() -> None:
    names = ENVIRONMENT.list_templates()
    assert {"report.html", "leaderboard.html", "charts.html", "comparison.html",
            "cases.html", "report.css", "report.js"} <= set(names)
    assert all(ENVIRONMENT.autoescape(name) for name in names)  # type: ignore[operator]
    assert ENVIRONMENT.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["promptkit.reporting"]
    shipped = resources.files("promptkit.reporting") / "templates"
    for name in names:
        assert (shipped / name).is_file()
        assert any(fnmatch(f"templates/{name}", pattern) for pattern in patterns), name


def test_the_page_is_generated_chunk_by_chunk_as_results_are_read() -> None:
    data = make_results()
    read = 0

    def stream() -> Iterator[CaseResult]:
        nonlocal read
        for result in data:
            read += 1
            yield result

    seen = [(read, chunk) for chunk in html_chunks(summarize(data), stream())]
    first = next(i for i, (count, _) in enumerate(seen) if count)
    assert "<h2>Cases</h2>" in "".join(chunk for _, chunk in seen[:first])
    rows = [count for count, chunk in seen if "data-status=" in chunk]
    assert rows == list(range(1, len(data) + 1))  # each row out before the next is read


def test_results_are_not_held_while_the_page_is_written() -> None:
    alive = most = 0

    def freed() -> None:
        nonlocal alive
        alive -= 1

    def stream() -> Iterator[CaseResult]:
        nonlocal alive
        for i in range(10_000):
            result = CaseResult("p", "m", f"c{i}", i, output="x" * 200, passed=i % 2 == 0)
            alive += 1
            weakref.finalize(result, freed)
            yield result

    class Sink:
        def write(self, chunk: str) -> None:
            nonlocal most
            most = max(most, alive)

    write_html(Sink(), summarize([]), stream())  # type: ignore[arg-type]
    assert most <= 2


def test_case_rows_show_each_assertion_with_its_name_reason_and_error() -> None:
    checked = CaseResult("p", "m", "c0", 0, output="out", assertions=[
        {"type": "rouge-l", "metric": "rouge", "passed": False, "score": 0.21,
         "reason": "rouge-l 0.21 < 0.4", "error": None},
        {"type": "python", "passed": False, "reason": "", "error": "boom <x>"},
        {"type": "contains", "passed": True, "reason": ""},
        {"type": "max-words", "passed": False, "weight": 0, "reason": "words 9 > 5"}])
    html = render(summarize([checked]), [checked])
    assert ('<summary>1/3 passed, 0/1 informational</summary><ul class="checks" '
            'id="c1-checks">') in html  # weight 0 counted apart
    assert ('<li><span class="fail">fail</span> max-words <span class="tag">informational'
            '</span>: words 9 &gt; 5</li>') in html
    assert ('<li><span class="fail">fail</span> rouge <span class="meta">(rouge-l)</span> '
            '<span class="meta">0.210</span>: rouge-l 0.21 &lt; 0.4</li>') in html
    assert ('<li><span class="error">error</span> python<div class="error">error: '
            'boom &lt;x&gt;</div></li>') in html
    assert '<li><span class="pass">pass</span> contains</li>' in html
    for part in ("prompt", "example", "answer", "reasoning"):
        assert f'id="c1-{part}' not in html  # nothing recorded: nothing shown
    plain = CaseResult("p", "m", "c1", 1, output="out")
    assert '<td class="l"></td>' in render(summarize([plain]), [plain])  # no checks


def test_a_cached_case_shows_its_recorded_latency_tagged_cached(tmp_path: Path) -> None:
    cached = CaseResult("p", "m", "c0", 0, output="out", passed=True, cached=True, requests=0,
                        latency_s=0.85)
    asked = CaseResult("p", "m", "c1", 1, output="out", passed=True, latency_s=1.25)
    unrecorded = CaseResult("p", "m", "c2", 2, output="out", passed=True, cached=True,
                            requests=0)
    results = [cached, asked, unrecorded]
    summary = summarize(results)
    html = render(summary, results)
    tag = ('<span class="tag" title="served from the response cache: the latency is that of '
           'the original request">cached</span>')
    cells = re.findall(r'<td class="(?:pass|fail|error)">[^<]*</td><td>[^<]*</td>'
                       r'<td>(.*?)</td>', html)
    assert cells == [f"850ms {tag}", "1.25s", f"— {tag}"]  # — : cached before latencies were
    # the leaderboard and the .csv count the cached answer's latency as it was recorded
    assert summary.rows[0].latency_p50 == pytest.approx((0.85 + 1.25) / 2)
    assert "3 results (2 cached)" in html
    write_output(tmp_path / "r.csv", summary, results)
    rows = list(csv.DictReader((tmp_path / "r.csv").open(encoding="utf-8")))
    assert [(row["latency_s"], row["cached"]) for row in rows] == [
        ("0.85", "true"), ("1.25", "false"), ("", "true")]


def test_case_rows_fold_the_prompt_examples_answer_votes_and_reasoning() -> None:
    result = CaseResult(
        "p", "m", "c0", 0, output="It is 4.", answer="4", votes={"4": 3, "<5>": 2},
        reasoning="2 + 2 = 4", examples=[{"q": "1+1", "a": "2"}],
        prompt=[{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "2+2 <b>?</b>"}])
    html = render(summarize([result]), [result, CaseResult("p", "m", "c1", 1, prompt="Q:")])
    assert ('<details><summary>prompt · 2 messages</summary><div id="c1-prompt">'
            '<div class="block"><span class="role">system</span><pre>Be brief.</pre></div>'
            '<div class="block"><span class="role">user</span><pre>2+2 &lt;b&gt;?&lt;/b&gt;'
            '</pre></div></div></details>') in html
    assert ('<details><summary>1 example</summary><div id="c1-examples"><div class="example">'
            '<span class="meta">example 1</span><div class="block"><span class="role">q'
            '</span><pre>1+1</pre></div><div class="block"><span class="role">a</span>'
            '<pre>2</pre></div></div></div></details>') in html
    assert ('<td class="out">It is 4.<details class="answer"><summary>answer: 4 (3 of 5 '
            'votes)</summary><div id="c1-answer"><div class="block"><pre>4</pre></div>'
            '<ul class="votes"><li>4 → 3</li><li>&lt;5&gt; → 2</li></ul></div></details>'
            '</td>') in html
    assert ('<details><summary>reasoning</summary><div id="c1-reasoning"><div class="block">'
            '<pre>2 + 2 = 4</pre></div></div></details>') in html
    assert ('<details><summary>prompt · text</summary><div id="c2-prompt"><div class="block">'
            '<pre>Q:</pre></div></div></details>') in html  # completions: one text


def test_long_texts_in_case_rows_are_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cases, "TEXT_CHARS", 10)
    result = CaseResult("p", "m", "c0", 0, output="o" * 200, prompt="p" * 25)
    html = render(summarize([result]), [result])
    assert "<pre>pppppppppp</pre><span class=\"meta\">… 15 more characters" in html
    assert "<pre>oooooooooo</pre><span class=\"meta\">… 190 more characters" in html


def test_every_part_of_a_row_holds_its_payload_as_text(page_html: str) -> None:
    """The prompt, each example, the answer and votes, the reasoning and the check reasons
    of the first row: each part is balanced markup whose text is the payload as it was."""
    first = page_html[page_html.index('<tr data-prompt'):]
    first = first[:first.index("</tr>") + 5]
    page = Page(f"<table><tbody>{first}</tbody></table>")
    assert page.mismatched == [] and page.open == []
    assert [name for name, _ in page.tags].count("details") == 7  # none was closed early
    text = "".join(page.text)
    for shown in (f"Summarize in one line. {DETAILS}", f"Article 0: 北京 {HOSTILE}",
                  f"an example article {DETAILS}", PAYLOADS[0], f"answer 0 {PAYLOADS[1]} → 3",
                  f"other {DETAILS} → 2", f"thinking about case 0 {DETAILS}",
                  f"rouge-l 0.00 < 0.4 {DETAILS}", f"error: boom {DETAILS}"):
        assert shown in text


def test_long_diffs_and_many_flips_are_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("promptkit.reporting.html.DIFF_CHARS", 40)
    monkeypatch.setattr("promptkit.reporting.html.MAX_FLIPS", 3)
    html = render(summarize([]), [], comparison=make_comparison())
    assert html.count('<div class="flip">') == 3
    assert "… and 7 more (marked ⇄ in the case table).</p>" in html
    assert "\n… (the diff covers the first 40 characters)</pre>" in html


# -- tool calls and conversations --------------------------------------------------------


@pytest.fixture
def agent_html(tool_answer: CaseResult, conversation: CaseResult,
               cut_short: CaseResult) -> str:
    """A page of an answer of tool calls (row 1), a three-turn conversation (row 2) and a
    conversation max_turns stopped (row 3)."""
    results = [tool_answer, conversation, cut_short]
    return render(summarize(results), results)


def row_of(html: str, number: int) -> str:
    """The markup of the case table's row ``number`` (1, 2, ...)."""
    rows = re.findall(r"<tr data-prompt.*?</tr>", html, re.S)
    return rows[number - 1]


def test_case_rows_show_tool_calls_and_why_the_model_stopped(agent_html: str,
                                                             tool_answer: CaseResult) -> None:
    unparsed = tool_answer.tool_calls[1]["raw_arguments"] if tool_answer.tool_calls else ""
    page = Page(agent_html)
    assert page.mismatched == [] and page.open == []
    assert_safe_markup(agent_html)
    assert unparsed not in agent_html and "<script>document" not in agent_html  # escaped
    calls = row_of(agent_html, 1)
    weather = escape('→ get_weather({"city": "Paris"})')
    assert f'<td class="out"><details class="calls"><summary>{weather}; ' in calls
    assert ('<div id="c1-calls"><div class="call"><span class="role">→ get_weather</span> '
            '<span class="meta">call_1</span><pre>' + str(escape('{\n "city": "Paris"\n}'))
            + "</pre></div>") in calls
    assert ('<span class="role">→ get_time</span> <span class="meta">call_2</span> '
            '<span class="tag fail" title="the arguments are not JSON: shown as sent">'
            'invalid JSON</span><pre>' + str(escape(unparsed)) + "</pre>") in calls
    assert ('</details> <span class="tag" title="why the model stopped (finish_reason)">'
            'finish: tool_calls</span></td>') in calls
    assert "finish:" not in row_of(agent_html, 2)  # it stopped: nothing to say
    text = "".join(Page(f"<table>{calls}</table>").text)
    assert unparsed in text  # shown as it was sent


def test_a_conversation_is_folded_turn_by_turn_with_each_checks_turn(agent_html: str) -> None:
    row = row_of(agent_html, 2)
    assert ('<details><summary>conversation · 3 turns, 7 messages</summary>'
            '<div id="c2-conversation"><div class="turn"><span class="meta">turn 1</span>'
            '<div class="block"><span class="role">assistant</span><div class="call">'
            '<span class="role">→ get_weather</span>') in row
    assert ('<div class="block"><span class="role">tool · get_weather · call_1</span><pre>'
            + str(escape('{"sky": "<b>sunny</b>"}')) + "</pre></div>") in row
    assert ('<div class="turn"><span class="meta">turn 2</span><div class="block">'
            '<span class="role">user</span><pre>And tomorrow?</pre></div>') in row
    assert row.index("c2-prompt") < row.index("c2-conversation")  # the prompt, then the rest
    assert ('<li><span class="fail">fail</span> equals <span class="tag" title="checks the '
            'answer of this turn of the conversation">turn 2</span> <span class="meta">0.000'
            '</span>: ' + str(escape("expected 'Snow.', got 'Rain.'")) + "</li>") in row
    assert '<li><span class="pass">pass</span> contains <span class="meta">' in row
    stopped = row_of(agent_html, 3)
    assert ("fail max-turns 0.000: max_turns (2) reached before a final answer: the model "
            "was still calling tools") in "".join(Page(f"<table>{stopped}</table>").text)
    assert "conversation · 2 turns" not in stopped  # tool results continue a turn
    assert "conversation · 1 turn, 4 messages" in stopped


def test_the_leaderboard_shows_calls_per_case_when_a_case_made_several(
        agent_html: str) -> None:
    assert "<th>calls /case</th>" in agent_html
    assert "<td>3.0</td>" in agent_html  # agent: 4 + 2 requests over 2 cases
    plain = render(summarize([CaseResult("p", "m", "c0", 0, output="x")]), [])
    assert "calls /case" not in plain


# -- in a real browser -----------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
# Skipped on a developer machine without the browser; in CI (CI=true) a missing browser
# fails these tests instead, so the escaping checks can never be skipped silently there.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="`chromium` is not on PATH (Debian's chromium package; .ci/run installs it)")


def chromium(page: Path, *args: str, fragment: str = "") -> str:
    """Open ``page`` (at ``#fragment``) in headless Chromium with a fresh profile; its
    stdout."""
    assert CHROMIUM, "CI needs Debian's chromium for the HTML report tests (.ci/run)"
    profile = tempfile.mkdtemp(prefix="profile-", dir=page.parent)
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-dev-shm-usage", "--disable-background-networking", "--no-first-run",
         "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--virtual-time-budget=3000", *args,
         page.as_uri() + (f"#{fragment}" if fragment else "")],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def start_tag(dom: str, tag: str) -> str:
    match = re.search(rf"<{tag}\b[^>]*>", dom)
    assert match, dom[:500]
    return match.group(0)


@needs_chromium
def test_control_an_unescaped_payload_runs(tmp_path: Path) -> None:
    """Without escaping or a CSP the payload runs, and the check sees it: it can fail."""
    page = tmp_path / "unsafe.html"
    page.write_text(f"<!DOCTYPE html><html><body>{PAYLOADS[0]}</body></html>")
    assert "data-xss" in start_tag(chromium(page, "--dump-dom"), "html")


@needs_chromium
def test_our_script_runs_under_the_csp_and_no_payload_does(report: Path) -> None:
    dom = chromium(report, "--dump-dom")
    assert "data-xss" not in start_tag(dom, "html")
    assert 'data-ready="1"' in start_tag(dom, "body")  # the CSP let our own script run
    results = len(make_results())
    assert re.search(rf'id="shown"[^>]*>{results} of {results} shown<', dom)
    assert '<div id="filters" class="filters">' in dom  # the script showed the filters
    assert dom.count("<script") == 1 and "<img" not in dom and "<textarea" not in dom
    assert dom.count("data-status=") == results  # no payload broke the table


@needs_chromium
def test_escaping_alone_holds_without_the_csp(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    stripped, count = re.subn(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n', "", html)
    assert count == 1
    report.write_text(stripped, encoding="utf-8")
    dom = chromium(report, "--dump-dom")
    assert "data-xss" not in start_tag(dom, "html")
    assert 'data-ready="1"' in start_tag(dom, "body")


@needs_chromium
def test_the_csp_alone_blocks_an_unescaped_payload(tmp_path: Path, page_html: str) -> None:
    """The second layer: had escaping failed, the policy would still stop the payloads."""
    meta = re.search(r'<meta http-equiv="Content-Security-Policy"[^>]*>', page_html)
    assert meta
    page = tmp_path / "unescaped.html"
    page.write_text(f"<!DOCTYPE html><html><head>{meta.group(0)}</head><body>"
                    f"{PAYLOADS[0]}{PAYLOADS[1]}{PAYLOADS[3]}</body></html>")
    assert "data-xss" not in start_tag(chromium(page, "--dump-dom"), "html")


WHY = {  # what each folded part of the first case row shows once opened
    "prompt": ["system", f"Summarize in one line. {DETAILS}", "user",
               f"Article 0: 北京 {HOSTILE}"],
    "examples": ["example 1", "article", f"an example article {DETAILS}", "summary",
                 "示例摘要", "example 2", PAYLOADS[0]],
    "answer": [f"answer: answer 0 {PAYLOADS[1][:60]}", "… (3 of 5 votes)",
               f"answer 0 {PAYLOADS[1]}answer 0 {PAYLOADS[1]} → 3",
               f"other {DETAILS} → 2"],
    "checks": [f"pass {METRIC} (rouge-l) 0.000: rouge-l 0.00 < 0.4 {DETAILS}",
               "fail length (max-words) 0.000: words 52 > 40",
               f"error python 0.000error: boom {DETAILS}"],
    "reasoning": [f"thinking about case 0 {DETAILS}"],
}


@needs_chromium
@pytest.mark.parametrize("part", list(WHY))
def test_a_link_to_a_part_of_a_case_opens_it_and_shows_why(report: Path, part: str) -> None:
    """Chromium opens the <details> holding ``#c1-<part>`` (no script needed): the prompt
    with its roles, the examples, the answer and votes, the check reasons, the reasoning,
    each payload in them shown as text."""
    dom = chromium(report, "--dump-dom", fragment=f"c1-{part}")
    assert "data-xss" not in start_tag(dom, "html")
    assert 'data-ready="1"' in start_tag(dom, "body")
    opened = re.findall(r"<details[^>]* open=\"\"[^>]*>(.*?)</details>", dom, re.S)
    assert len(opened) == 1, len(opened)  # that part only, the rest stay folded
    (inside,) = opened
    assert f'id="c1-{part}"' in inside
    text = "".join(Page(inside).text)
    for shown in WHY[part]:
        assert shown in text, shown


@needs_chromium
def test_control_a_part_nobody_links_to_stays_folded(report: Path) -> None:
    """The control: without the fragment nothing is opened, so the test above can fail."""
    dom = chromium(report, "--dump-dom")
    assert "<details open" not in dom and dom.count("<details") > 5


@needs_chromium
def test_a_link_to_the_tool_calls_or_a_conversation_opens_it(tmp_path: Path,
                                                             agent_html: str) -> None:
    """Chromium opens the folded tool calls (whose arguments hold a script) and the
    conversation, and shows them as text."""
    page = tmp_path / "agent.html"
    page.write_text(agent_html, encoding="utf-8")
    for part, shown in (("c1-calls", ['→ get_weather call_1{\n "city": "Paris"\n}',
                                      "invalid JSON{\"tz\": \"</pre><script>"]),
                        ("c2-conversation", ["turn 1assistant→ get_weather call_1",
                                             "tool · get_weather · call_1",
                                             "turn 2userAnd tomorrow?assistantRain."])):
        dom = chromium(page, "--dump-dom", fragment=part)
        assert "data-xss" not in start_tag(dom, "html")
        opened = re.findall(r"<details[^>]* open=\"\"[^>]*>(.*?)</details>", dom, re.S)
        assert len(opened) == 1 and f'id="{part}"' in opened[0]
        text = "".join(Page(opened[0]).text)
        for line in shown:
            assert line in text, line


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_rgb(path: Path) -> np.ndarray:
    """The pixels of an 8-bit RGB(A) PNG, as chromium writes them: (height, width, 3)."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6)
    compressed, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            compressed += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    size = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(compressed), np.uint8).reshape(height, -1)
    image = np.zeros((height, width * size), np.uint8)
    previous = image[0] * 0
    for y in range(height):  # undo each row's filter: None, Sub, Up, Average, Paeth
        kind, line = raw[y, 0], raw[y, 1:].copy()
        if kind == 1:
            line = np.cumsum(line.reshape(-1, size), axis=0, dtype=np.uint8).ravel()
        elif kind == 2:
            line += previous
        elif kind in (3, 4):
            out, up = bytearray(line.tobytes()), previous.tobytes()
            for i in range(len(out)):
                left = out[i - size] if i >= size else 0
                corner = up[i - size] if i >= size else 0
                if kind == 3:
                    out[i] = (out[i] + (left + up[i]) // 2) & 0xFF
                    continue
                guess = left + up[i] - corner
                a, b, c = abs(guess - left), abs(guess - up[i]), abs(guess - corner)
                out[i] = (out[i] + (left if a <= b and a <= c else up[i] if b <= c
                                    else corner)) & 0xFF
            line = np.frombuffer(bytes(out), np.uint8)
        image[y] = previous = line
    return image.reshape(height, width, size)[:, :, :3].astype(int)


def chart_blue(pixels: np.ndarray) -> int:
    """Pixels of the charts' first colour (#2563eb, drawn translucent): nothing else on
    the page is this blue."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return int(((b > r + 60) & (b > g + 30)).sum())


@needs_chromium
def test_screenshot_shows_the_page_and_its_charts(report: Path, tmp_path: Path) -> None:
    shot, blank_shot = tmp_path / "shot.png", tmp_path / "blank.png"
    chromium(report, f"--screenshot={shot}", "--window-size=1280,2400")
    assert shot.stat().st_size > 50_000
    pixels = png_rgb(shot)
    assert pixels.shape == (2400, 1280, 3)
    colours = np.unique(pixels.reshape(-1, 3) @ np.array([65536, 256, 1]))
    assert len(colours) > 100  # text, tables, charts: not one flat colour
    assert chart_blue(pixels) > 500  # the charts' points and bars were drawn
    # the control: the same checks on a page of plain text fail
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body>promptkit</body></html>")
    chromium(blank, f"--screenshot={blank_shot}", "--window-size=1280,2400")
    assert blank_shot.stat().st_size < shot.stat().st_size / 5
    assert chart_blue(png_rgb(blank_shot)) == 0
