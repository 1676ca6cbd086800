"""Tests for promptkit.reporting.console: the leaderboard and comparisons in a terminal."""

from __future__ import annotations

import io
from collections.abc import Callable

from rich.console import Console

from helpers import handcrafted, result
from promptkit.comparing.comparison import Comparison
from promptkit.reporting.console import flip_lines, print_comparison, print_leaderboard
from promptkit.reporting.summary import summarize

CompareOne = Callable[..., Comparison]

# -- the leaderboard ---------------------------------------------------------------------


def test_print_leaderboard() -> None:
    console = Console(record=True, width=120)
    print_leaderboard(summarize(handcrafted(), 0.75), console, title="demo — run run-1")
    text = console.export_text()
    assert "demo — run run-1" in text
    assert "= p1" in text  # two cases decide nothing: the leaders are tied
    for label in ("p1", "p2", " a ", " b "):
        assert label in text
    assert "50.0% (15–85)" in text  # p1 × a: 2/4 with its Wilson interval
    assert "rouge" in text and "judge" in text
    assert "tied on b: p1, p2" in text
    assert "9 results (1 cached), 2 errors" in text
    assert "threshold 75% NOT met by: p1 × a (50.0%)" in text
    assert "$0.0040" in text  # p1 × a
    assert "—" in text  # p1 × b has no price: no $0.00
    assert "too narrow" not in text
    assert max(len(line) for line in text.splitlines()) <= 120


def test_print_leaderboard_names_the_winner_the_ties_and_flaky_cases() -> None:
    results = [result("zero", "m", i, passed=i >= 12) for i in range(20)]
    results += [result("few", "m", i, passed=True) for i in range(20)]
    results += [result(p, "n", i, repeat=r, passed=(i + r) % 2 == 0, score=0.5)
                for p in ("zero", "few") for i in range(20) for r in range(2)]
    console = Console(record=True, width=160)
    print_leaderboard(summarize(results), console)
    text = console.export_text()
    assert "★ best on m: few" in text and "p=0.000244" in text
    assert "= tied on n: zero, few" in text and "= zero" in text and "= few" in text
    assert "flaky" in text and "★ few" in text


def test_print_leaderboard_degrades_on_narrow_consoles() -> None:
    results = [result("summarize-with-a-long-name@12", "provider-with-a-long-name", 0,
                      passed=True, metrics={"faithfulness": 1.0, "rouge-l": 0.5}, latency_s=1,
                      requests=3)]
    console = Console(record=True, width=60)
    print_leaderboard(summarize(results, 0.5), console)
    text = console.export_text()
    assert "100.0%" in text
    assert "too narrow to show: calls /case, tokens in/out, tok/s, TTFT, cost, latency" in \
        " ".join(text.split())  # the least useful first
    assert max(len(line) for line in text.splitlines()) <= 60
    assert "threshold 50% met by every row" in text


def test_print_leaderboard_keeps_a_metric_named_like_a_column() -> None:
    console = Console(record=True, width=120)
    print_leaderboard(summarize([result("p", "m", 0, metrics={"cost": 0.25}, cost=0.5)]),
                      console)
    text = console.export_text()
    assert "0.250" in text and "$0.5000" in text
    assert text.split("─")[0].split().count("cost") == 2  # both headers


def test_print_leaderboard_shows_ids_and_titles_literally_and_handles_no_results() -> None:
    console = Console(record=True, width=120)
    print_leaderboard(summarize([result("[bold]x[/bold]", "m", 0, metrics={"[i]m": 1.0})]),
                      console, title="run [/x]")
    text = console.export_text()
    assert "[bold]x[/bold]" in text and "[i]m" in text and "run [/x]" in text
    console = Console(record=True, width=120)
    print_leaderboard(summarize([]), console)
    assert "no results" in console.export_text()


def test_print_leaderboard_escapes_control_characters_in_ids() -> None:
    console = Console(file=io.StringIO(), width=160, force_terminal=True)
    print_leaderboard(summarize([result("p\x1b[2J", "m\x1b]0;title\x07", 0)]), console,
                      title="t\x1b]8;;http://x\x1b\\")
    text = console.file.getvalue()
    assert "\x1b[2J" not in text and "\x1b]0" not in text and "\x1b]8" not in text
    assert "\\x1b[2J" in text


# -- comparisons -------------------------------------------------------------------------


def test_flip_lines_list_regressions_first(compare_one: CompareOne) -> None:
    comparison = compare_one([True] * 20 + [False] * 10,
                             [False] * 8 + [True] * 12 + [True] + [False] * 9)
    lines = flip_lines(comparison)
    assert lines[0] == "pass → FAIL  c00  (a × p)"
    assert lines[1] == "    before: a answer 0" and lines[2] == "    now:    a answer 0"
    assert lines[-3] == "fail → pass  c20  (a × p)"
    assert len(lines) == 9 * 3
    assert flip_lines(comparison, 2)[6] == "    ... and 6 more regressed in a × p"


def test_flip_lines_of_repeats_show_fractions_and_flaky_cases(compare_one: CompareOne) -> None:
    comparison = compare_one([[True, True]] * 20, [[True, False]] * 12 + [[True, True]] * 8)
    assert flip_lines(comparison)[0] == "2/2 pass → 1/2 pass  c00  (a × p)  [flaky]"


def test_print_comparison_shows_table_warnings_flips_and_verdict(compare_one: CompareOne
                                                                 ) -> None:
    comparison = compare_one([True] * 8, [False] * 8, before_model="m1", after_model="m2")
    comparison.rows[0].regressed[0].after.output = "[bold]<b>not markup</b>"
    buffer = io.StringIO()
    print_comparison(comparison, Console(file=buffer, width=150), flips=3)
    text = buffer.getvalue()
    assert "new vs baseline base" in text
    assert "100.0% → 0.0%" in text and "8/0" in text and "worse" in text
    assert "warning: a × p: model changed (m1 → m2)" in text
    assert "now:    [bold]<b>not markup</b>" in text
    assert "... and 5 more regressed in a × p" in text
    assert text.rstrip().endswith("(8 worse, 0 better, p=0.00391)")


def test_print_comparison_says_what_the_gate_can_detect(compare_one: CompareOne) -> None:
    buffer = io.StringIO()
    print_comparison(compare_one([True] * 200, [True] * 200), Console(file=buffer, width=150))
    assert "with 200 cases this gate sees drops of 3 points or more" in buffer.getvalue()
    assert "verdict: no significant change at alpha 0.05" in buffer.getvalue()


def test_printed_comparisons_escape_control_characters(compare_one: CompareOne) -> None:
    comparison = compare_one([True] * 3, [False] * 3)
    evil = "\x1b[2J\x1b]0;pwned\x07\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\"
    flips = comparison.rows[0].regressed
    flips[0].after.output = evil
    flips[1].after.error = "HTTP 500: " + evil
    buffer = io.StringIO()
    print_comparison(comparison, Console(file=buffer, width=150, force_terminal=True), flips=3)
    text = buffer.getvalue()
    assert "\x1b[2J" not in text and "\x1b]" not in text and "\x07" not in text
    assert "\\x1b[2J" in text  # shown, not sent
