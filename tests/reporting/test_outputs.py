"""Tests for promptkit.reporting.outputs: every output file format, written atomically."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import NASTY, handcrafted, result
from promptkit.errors import PromptkitError
from promptkit.reporting.outputs import write_output
from promptkit.reporting.summary import summarize
from promptkit.results import CaseResult, RunInfo


def store_order(results: list[CaseResult]) -> list[CaseResult]:
    """Results as ``RunStore.results`` yields them."""
    return sorted(results, key=lambda r: (r.prompt_id, r.provider_id, r.case_index, r.repeat))


RUN = RunInfo("run-1", "evals/x.yaml", "abc", "finished", 1.0, 2.0, config={"repeat": 1})


def test_json_output(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    results = handcrafted()
    write_output(path, summarize(results, 0.75), iter(results), RUN)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["run"]["run_id"] == "run-1"
    assert [row["label"] for row in document["summary"]["rows"]] == [
        "p1 × b", "p1 × a", "p2 × b", "p2 × a"]
    assert document["summary"]["best"] is None  # two cases make no winner
    assert document["summary"]["tied"] == ["p1 × b", "p1 × a", "p2 × b", "p2 × a"]
    assert "case_fractions" not in document["summary"]["rows"][0]
    assert document["summary"]["rows"][0]["flaky_cases"] == 0
    assert document["summary"]["all_thresholds_met"] is False
    assert document["summary"]["rows"][0]["cost"] is None
    assert len(document["results"]) == 9
    assert document["results"][6]["output"] == NASTY
    assert "中文" in path.read_text(encoding="utf-8")  # ensure_ascii=False


def test_json_output_with_no_results(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    write_output(path, summarize([]), [])
    assert json.loads(path.read_text())["results"] == []


def test_jsonl_output(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    results = [*handcrafted(), result("p3", "a", 0, vars={"article": "文章", "n": 3})]
    write_output(path, summarize(results), iter(results), RUN)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 10
    assert {line["run_id"] for line in lines} == {"run-1"}
    assert lines[-1]["vars"] == {"article": "文章", "n": 3}
    assert CaseResult.from_dict(lines[6]) == results[6]


CHECKS = [  # as the scoring engine records them
    {"type": "rouge-l", "metric": "rouge", "passed": False, "score": 0.21, "weight": 1.0,
     "reason": "rouge-l 0.21 < 0.4", "error": None},
    {"type": "max-words", "metric": "length", "passed": False, "score": 0.0, "weight": 1.0,
     "reason": "words 52 > 40", "error": None},
    {"type": "contains", "metric": "contains", "passed": True, "score": 1.0, "weight": 1.0,
     "reason": "found 'Paris'", "error": None},
    {"type": "max-tokens", "metric": "tokens", "passed": False, "score": 0.0, "weight": 0.0,
     "reason": "tokens 90 > 80", "error": None},  # informational: never fails a case
]


def explained() -> list[CaseResult]:
    """A chat result with its examples, votes and checks, and a completions one whose
    assertion errored."""
    return [
        CaseResult("few", "m", "c0", 0, output="Paris.", passed=False, score=0.4,
                   assertions=CHECKS, answer="Paris", votes={"Paris": 2, "Lyon": 1},
                   reasoning="the capital",
                   examples=[{"q": "Capital of Spain?", "a": "Madrid"}],
                   prompt=[{"role": "system", "content": "Answer in one word."},
                           {"role": "user", "content": "Capital of France?"}]),
        CaseResult("few", "m", "c1", 1, passed=False, prompt="Q: Capital of Italy?\nA:",
                   assertions=[
                       {"type": "python", "metric": "python", "passed": False, "score": 0.0,
                        "weight": 1.0, "reason": "", "error": "NameError: x"},
                       {"type": "llm-judge", "passed": False, "reason": "off topic",
                        "error": "HTTP 500"}]),  # no metric: an older record
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_results_carry_the_prompt_as_sent_and_why_they_failed(tmp_path: Path,
                                                               suffix: str) -> None:
    path = tmp_path / f"results{suffix}"
    results = explained()
    write_output(path, summarize(results), iter(results), RUN)
    text = path.read_text(encoding="utf-8")
    lines = ([json.loads(line) for line in text.splitlines()] if suffix == ".jsonl"
             else json.loads(text)["results"])
    assert lines[0]["prompt"] == results[0].prompt and lines[0]["prompt"][1] == {
        "role": "user", "content": "Capital of France?"}
    assert lines[1]["prompt"] == "Q: Capital of Italy?\nA:"  # completions: the text
    assert lines[0]["examples"] == [{"q": "Capital of Spain?", "a": "Madrid"}]
    assert (lines[0]["answer"], lines[0]["votes"], lines[0]["reasoning"]) == (
        "Paris", {"Paris": 2, "Lyon": 1}, "the capital")
    assert lines[0]["assertions"] == CHECKS
    assert [CaseResult.from_dict(line) for line in lines] == results


def test_csv_failed_checks_name_each_failed_assertion_and_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    results = [*explained(), result("p", "m", 2, passed=True, score=1.0,
                                    assertions=CHECKS[2:])]
    write_output(path, summarize(results), iter(results), RUN)
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [row["failed_checks"] for row in rows] == [
        "rouge: rouge-l 0.21 < 0.4; length: words 52 > 40",
        "python: error: NameError: x; llm-judge: off topic (error: HTTP 500)",
        ""]  # an informational check that failed is no reason
    header = next(csv.reader(path.open(encoding="utf-8")))
    assert header.index("failed_checks") == header.index("error") + 1


def test_csv_output_round_trips_awkward_text(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    results = [*handcrafted(), result("p3", "a", 0, vars={"q": 'say "hi", 你好'})]
    write_output(path, summarize(results), iter(results), RUN)
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 10
    assert rows[6]["output"] == NASTY
    assert rows[6]["passed"] == "false" and rows[0]["passed"] == "true"
    assert rows[1]["metric:rouge"] == "0.8" and rows[0]["metric:rouge"] == ""
    assert rows[2]["metric:judge"] == "1.0"
    assert rows[3]["error"] == "timed out after 60s" and rows[3]["error_kind"] == "timeout"
    assert rows[0]["cost"] == "" and rows[1]["cost"] == "0.001"
    assert json.loads(rows[-1]["vars"]) == {"q": 'say "hi", 你好'}
    assert {row["run_id"] for row in rows} == {"run-1"}


def test_junit_output(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    results = store_order(handcrafted())
    write_output(path, summarize(results), iter(results), RUN)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("9", "2", "2")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["p1.a", "p1.b", "p2.a", "p2.b"]
    assert [s.get("tests") for s in suites] == ["4", "2", "1", "2"]
    cases = list(root.iter("testcase"))
    assert len(cases) == 9
    assert len(list(root.iter("failure"))) == 2
    assert len(list(root.iter("error"))) == 2
    failed = next(c for c in cases if c.get("name") == "c1#0" and c.get("classname") == "p1.a")
    failure = failed.find("failure")
    assert failure is not None and failure.get("message") == "rouge-l: 0.40 < 0.5"
    assert failure.text == "rouge-l: 0.40 < 0.5"
    assert failed.get("time") == "2.000"
    error = next(c for c in cases if c.find("error") is not None).find("error")
    assert error is not None and error.get("type") == "timeout"


def test_junit_failures_name_the_metric_else_the_type_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    results = [*explained(), result("few", "m", 2, passed=False, score=0.0)]
    write_output(path, summarize(results), iter(results), RUN)
    failures = [case.find("failure") for case in ET.parse(path).getroot().iter("testcase")]
    assert [(f.get("message"), f.text) for f in failures if f is not None] == [
        ("rouge: rouge-l 0.21 < 0.4; length: words 52 > 40",) * 2,
        ("python: error: NameError: x; llm-judge: off topic (error: HTTP 500)",) * 2,
        ("failed",) * 2]  # failed with no assertion to blame


def test_junit_output_is_well_formed_with_hostile_text(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    hostile = [
        result("<p>&", "b\x00", 0, output="<script>alert(1)</script>\x00\x08", passed=False,
               assertions=[{"type": "regex", "passed": False, "reason": 'no "]]>" \x01'}]),
        result("<p>&", "b\x00", 1, error="bad\x00 <![CDATA[", error_kind="bad_response"),
    ]
    write_output(path, summarize(hostile), iter(hostile))
    root = ET.parse(path).getroot()  # raises on anything not well-formed
    case = root.find("testsuite/testcase")
    assert case is not None and case.get("classname") == "<p>&.b\ufffd"
    out = case.find("system-out")
    assert out is not None and out.text is not None and out.text.startswith("<script>")
    assert "\x00" not in path.read_text(encoding="utf-8")
    assert len(list(root.iter("error"))) == 1


def test_junit_output_of_ungrouped_results_keeps_every_case(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    results = handcrafted()  # interleaved: pairs recur, so some suites are split
    write_output(path, summarize(results), iter(results))
    root = ET.parse(path).getroot()
    assert len(list(root.iter("testcase"))) == 9


# -- tool calls and conversations ------------------------------------------------------


@pytest.fixture
def agent_results(tool_answer: CaseResult, conversation: CaseResult,
                  cut_short: CaseResult) -> list[CaseResult]:
    return [tool_answer, conversation, cut_short]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_results_carry_tool_calls_finish_reason_and_conversation(
        tmp_path: Path, suffix: str, agent_results: list[CaseResult]) -> None:
    path = tmp_path / f"results{suffix}"
    write_output(path, summarize(agent_results), iter(agent_results), RUN)
    text = path.read_text(encoding="utf-8")
    lines = ([json.loads(line) for line in text.splitlines()] if suffix == ".jsonl"
             else json.loads(text)["results"])
    calls, talk, stopped = lines
    assert calls["tool_calls"] == agent_results[0].tool_calls
    assert calls["tool_calls"][1]["arguments"] is None and calls["tool_calls"][1][
        "raw_arguments"].startswith('{"tz": ')  # the text as sent, not JSON
    assert (calls["finish_reason"], calls["conversation"]) == ("tool_calls", None)
    assert talk["conversation"] == agent_results[1].conversation
    assert [m["role"] for m in talk["conversation"]] == [
        "assistant", "tool", "assistant", "user", "assistant", "user", "assistant"]
    assert talk["conversation"][0]["tool_calls"][0]["function"] == {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}  # as sent back
    assert talk["conversation"][1]["tool_call_id"] == "call_1"
    assert [a.get("turn") for a in talk["assertions"]] == [None, 2]
    assert (talk["requests"], stopped["requests"]) == (4, 2)
    assert stopped["assertions"][0]["type"] == "max-turns"
    assert [CaseResult.from_dict(line) for line in lines] == agent_results


def test_csv_has_the_tool_calls_as_json_and_the_finish_reason(
        tmp_path: Path, agent_results: list[CaseResult]) -> None:
    path = tmp_path / "results.csv"
    results = [*agent_results, result("p", "m", 3)]
    write_output(path, summarize(results), iter(results), RUN)
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [json.loads(row["tool_calls"]) if row["tool_calls"] else None for row in rows] \
        == [r.tool_calls for r in results]
    assert "\n" not in rows[0]["tool_calls"]  # one line
    assert [row["finish_reason"] for row in rows] == ["tool_calls", "stop", "tool_calls", ""]
    assert [row["failed_checks"] for row in rows[1:3]] == [
        "turn 2: equals: expected 'Snow.', got 'Rain.'",
        "max-turns: max_turns (2) reached before a final answer: the model was still "
        "calling tools"]
    header = next(csv.reader(path.open(encoding="utf-8")))
    assert header[-4:] == ["output", "finish_reason", "tool_calls", "vars"]


def test_junit_names_the_turn_that_failed_and_the_calls_made(
        tmp_path: Path, agent_results: list[CaseResult]) -> None:
    path = tmp_path / "junit.xml"
    write_output(path, summarize(agent_results), iter(agent_results), RUN)
    cases = {case.get("name"): case for case in ET.parse(path).getroot().iter("testcase")}
    failure = cases["c1#0"].find("failure")
    assert failure is not None and failure.get("message") == (
        "turn 2: equals: expected 'Snow.', got 'Rain.'")
    stopped = cases["c2#0"].find("failure")
    assert stopped is not None and stopped.get("message") == (
        "max-turns: max_turns (2) reached before a final answer: the model was still "
        "calling tools")
    said = cases["c2#0"].find("system-out")  # no text: the calls it made instead
    assert said is not None and said.text == (
        '→ get_weather({"city": "Paris"})\n→ get_weather({"city": "Paris"})')
    out = cases["c1#0"].find("system-out")
    assert out is not None and out.text == (
        'You\'re welcome.\n→ get_weather({"city": "Paris"})')
    assert cases["c0#0"].find("system-out") is None  # it passed


def test_markdown_output_is_the_summary_and_reads_no_results(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    results = handcrafted()

    def unread() -> Iterator[CaseResult]:
        raise AssertionError("the Markdown summary needs no results")
        yield

    run = RunInfo("run-1", "e.yaml", "h", "finished", 0.0, config={"description": "Demo"})
    write_output(path, summarize(results, 0.75), unread(), run)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("## Demo — run run-1\n\n| prompt | provider |")
    assert "- threshold 75% NOT met by: p1 × a (50.0%)" in text
    write_output(path, summarize([]), [])
    assert path.read_text() == "## promptkit report\n\n- no results\n"


@pytest.mark.parametrize(("name", "message"), [
    ("report.txt",
     "unsupported output format '.txt' (use .json, .jsonl, .csv, .xml, .html or .md)"),
    ("report", "unsupported output format ''"),
])
def test_unsupported_suffix(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(PromptkitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_output(tmp_path / name, summarize([]), [])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".xml", ".html"])
def test_write_is_atomic(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"report{suffix}"
    results = store_order(handcrafted())
    write_output(path, summarize(results), iter(results))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    before = path.read_bytes()

    def crashing() -> Iterator[CaseResult]:
        yield results[0]
        raise RuntimeError("store went away")

    with pytest.raises(RuntimeError):
        write_output(path, summarize(results), crashing())
    assert path.read_bytes() == before  # the old report is intact
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_write_into_missing_folder_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(PromptkitError, match="cannot write"):
        write_output(tmp_path / "missing" / "r.json", summarize([]), [])


def test_lone_surrogate_in_output_does_not_abort_the_write(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    results = [result("p", "m", 0, output="half a pair: \ud83d")]
    write_output(path, summarize(results), results)
    assert json.loads(path.read_text(encoding="utf-8"))["output"] == "half a pair: \ud83d"


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(tmp_path: Path) -> None:
    import csv

    from promptkit.reporting.outputs import csv_cell

    evil = ['=HYPERLINK("http://x","y")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
            "\tTAB", "\rCR"]
    results = [result("=p", "@m", i, output=text, passed=False, score=0.0)
               for i, text in enumerate(evil)]
    results.append(result("p", "m", 9, output="-1.5", error="-3", passed=False))
    results.append(result("p", "m", 10, passed=False, assertions=[
        {"type": "regex", "metric": "=cmd|' /C calc'!A0", "passed": False, "reason": "x"}]))
    path = tmp_path / "results.csv"
    write_output(path, summarize(results), iter(results), RUN)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["output"] for row in rows[:6]] == ["'" + text for text in evil]
    assert {row["prompt_id"] for row in rows[:6]} == {"'=p"}
    assert rows[6]["output"] == "-1.5" and rows[6]["error"] == "-3"  # plain numbers stay
    assert rows[7]["failed_checks"] == "'=cmd|' /C calc'!A0: x"  # a metric named by a user
    assert csv_cell(-2) == -2 and csv_cell("x=1") == "x=1"
