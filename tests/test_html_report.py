"""The .html report: structure, escaping, CSP, and a real headless Chromium opening it."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from promptkit.baseline import CaseOutcome, Side, SideRow
from promptkit.comparison import compare
from promptkit.html_report import CSP, SCRIPT, STYLE
from promptkit.report import summarize, write_output
from promptkit.results import CaseResult, RunInfo

# Each payload, if it ever ran, would mark the <html> element; the browser tests look for it.
PAYLOADS = [
    "<script>document.documentElement.setAttribute('data-xss','script')</script>",
    "<img src=x onerror=\"document.documentElement.setAttribute('data-xss','onerror')\">",
    "</textarea><script>document.documentElement.setAttribute('data-xss','textarea')</script>",
    "\"><svg onload=\"document.documentElement.setAttribute('data-xss','svg')\">",
    "</style><script>document.documentElement.setAttribute('data-xss','style')</script>",
    "--> ]]> <!-- ' \" &amp; </pre></details></td></tr></table>",
]
HOSTILE = " ".join(PAYLOADS)


def results() -> list[CaseResult]:
    out = []
    for i in range(6):
        for prompt, passed in (("zero-shot", i < 2), ("few-shot" + PAYLOADS[0], i < 5)):
            out.append(CaseResult(
                prompt, "model-a", f"case-{i}", i, passed=passed, score=0.2 + 0.1 * i,
                metrics={"rouge-l": 0.1 * i}, output=f"answer {i} 北京的天气很好。 {HOSTILE}",
                vars={"article": HOSTILE, "n": i}, latency_s=0.3 + 0.05 * i, ttft_s=0.1,
                input_tokens=100, output_tokens=20, cost=0.0002 * (i + 1)))
    out.append(CaseResult("zero-shot", "model-a", PAYLOADS[1], 6, error=HOSTILE,
                          error_kind="server"))
    return out


def comparison():
    def side(label: str, flip_to: bool) -> Side:
        cases = {f"case-{i}": CaseOutcome(f"case-{i}", passed, float(passed), 0.5,
                                          output=f"old {i} {HOSTILE}" if flip_to else
                                          f"new {i} {HOSTILE}")
                 for i, passed in enumerate([flip_to] * 9 + [not flip_to])}
        return Side(label + PAYLOADS[2], [SideRow("zero-shot", "model-a", "m", "t@1",
                                                  ["a" * 64], {}, cases)])
    return compare(side("baseline", True), side("run", False))


@pytest.fixture
def report(tmp_path: Path) -> Path:
    data = results()
    run = RunInfo("20261128T000000-abcd" + PAYLOADS[3], "e.yaml", "h", "finished", 0.0,
                  config={"description": "Report " + PAYLOADS[4]})
    path = tmp_path / "report.html"
    write_output(path, summarize(data, 0.5), iter(data), run, comparison())
    return path


def test_csp_allows_exactly_the_inline_style_and_script(report: Path) -> None:
    html = report.read_text()
    assert html.count("<script>") == 1 and html.count("<style>") == 1
    assert html.index('<meta http-equiv="Content-Security-Policy"') < html.index("<style>")
    for source, text in (("style-src", STYLE), ("script-src", SCRIPT)):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"{source} 'sha256-{digest}'" in CSP
        assert f">{text}</" in html  # hashed text is exactly the inline text
    assert "default-src 'none'" in CSP and "unsafe-inline" not in CSP


def test_no_network_no_inline_handlers_and_payloads_only_escaped(report: Path) -> None:
    html = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"<[^>]*\son\w+\s*=", html)  # no live onerror=/onload=
    for payload in PAYLOADS:
        assert payload not in html
    assert "&lt;script&gt;document.documentElement" in html
    assert html.count("<script>") == 1 and "</textarea><script>" not in html


def test_page_has_leaderboard_charts_comparison_and_cases(report: Path) -> None:
    html = report.read_text()
    assert "<h2>Leaderboard</h2>" in html and "★" in html
    assert html.count('<svg class="chart"') == 3
    assert html.count('class="point"') == 2 * 2  # two rows, on two scatter charts
    assert "Compared with baseline" in html and "verdict: WORSE" in html
    assert "Flipped cases (10)" in html and "<del>" in html and "<ins>" in html
    assert html.index("pass → FAIL</span>") < html.index("fail → pass</span>")
    assert html.count("<tr data-prompt=") == 13 and 'data-flip="1"' in html
    assert "北京的天气很好" in html and '<meta charset="utf-8">' in html


def test_an_empty_report_is_still_a_page(tmp_path: Path) -> None:
    path = tmp_path / "empty.html"
    write_output(path, summarize([]), [])
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "no results" in html


def test_case_table_is_capped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("promptkit.html_report.MAX_CASE_ROWS", 5)
    data = results()
    path = tmp_path / "r.html"
    write_output(path, summarize(data), iter(data))
    html = path.read_text()
    assert html.count("<tr data-prompt=") == 5 and "8 more results are not shown" in html


# -- in a real browser -----------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)")


def chromium(tmp_path: Path, page: Path, *args: str) -> str:
    assert CHROMIUM, "CI must have chromium: .ci/run installs it"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--no-first-run", "--disable-extensions",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=3000", *args, page.as_uri()],
        capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def html_tag(dom: str, tag: str) -> str:
    match = re.search(rf"<{tag}\b[^>]*>", dom)
    assert match, dom[:500]
    return match.group(0)


@needs_chromium
def test_harness_detects_a_payload_that_runs(tmp_path: Path) -> None:
    """The control: without escaping and CSP, the payload runs and the check sees it."""
    page = tmp_path / "unsafe.html"
    page.write_text(f"<!DOCTYPE html><html><body>{PAYLOADS[0]}</body></html>")
    assert "data-xss" in html_tag(chromium(tmp_path, page, "--dump-dom"), "html")


@needs_chromium
def test_in_chromium_our_script_runs_and_no_payload_does(report: Path, tmp_path: Path) -> None:
    dom = chromium(tmp_path, report, "--dump-dom")
    assert "data-xss" not in html_tag(dom, "html")
    assert 'data-ready="1"' in html_tag(dom, "body")  # the CSP let our own script run
    assert re.search(r'id="shown"[^>]*>13 of 13 shown<', dom)


@needs_chromium
def test_escaping_alone_holds_without_the_csp(report: Path, tmp_path: Path) -> None:
    page = tmp_path / "no-csp.html"
    html = report.read_text()
    page.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html))
    dom = chromium(tmp_path, page, "--dump-dom")
    assert "data-xss" not in html_tag(dom, "html")


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and the RGB pixels of an 8-bit RGB(A) PNG, as chromium writes them."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6)
    compressed, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            compressed += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(compressed)
    size = 3 if colour == 2 else 4
    stride = width * size
    previous = bytearray(stride)
    pixels = []
    for y in range(height):  # undo the per-row PNG filters (None, Sub, Up, Average, Paeth)
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - size] if i >= size else 0
            up = previous[i]
            corner = previous[i - size] if i >= size else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                da, db, dc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                nearest = left if da <= db and da <= dc else (up if db <= dc else corner)
                line[i] = (line[i] + nearest) & 0xFF
        pixels += [tuple(line[x:x + 3]) for x in range(0, stride, size * 4)]
        previous = line
    return width, height, pixels


def bluish(pixels: list[tuple[int, int, int]]) -> int:
    """Pixels of the charts' first colour (blue, #2563eb, drawn translucent)."""
    return sum(b > r + 60 and b > g + 30 for r, g, b in pixels)


@needs_chromium
def test_screenshot_renders_the_page_with_its_charts(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    chromium(tmp_path, report, f"--screenshot={shot}", "--window-size=1000,900")
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1000, 900)
    assert len(set(pixels)) > 50  # text, tables and charts, not a blank page
    assert bluish(pixels) > 100  # the charts' points and bars were drawn
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body>promptkit</body></html>")
    empty = tmp_path / "empty.png"
    chromium(tmp_path, blank, f"--screenshot={empty}", "--window-size=1000,900")
    assert bluish(png_pixels(empty)[2]) == 0  # the check can fail
