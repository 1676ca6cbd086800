"""Tests for promptkit.reporting.cases: the case table's rows, made as results stream by."""

from __future__ import annotations

import json

from helpers import handcrafted, result
from promptkit.reporting.cases import (
    PREVIEW_CHARS,
    TEXT_CHARS,
    Block,
    CaseRows,
    case_row,
    check_name,
    check_view,
    conversation_turns,
)
from promptkit.results import CaseResult


def test_a_row_per_result_with_its_outcome_output_and_checks() -> None:
    failed, errored, cached = handcrafted()[2], handcrafted()[3], handcrafted()[4]
    row = case_row(failed, flipped=True)
    assert (row.prompt_id, row.provider_id, row.case_id, row.repeat) == ("p1", "a", "c1", 0)
    assert (row.status, row.flipped, row.score, row.latency) == ("fail", True, "0.500", "2.00s")
    assert (row.output.text, row.preview, row.prompt, row.examples) == ("answer 1", None, [],
                                                                         [])
    assert (row.answer, row.votes, row.reasoning) == (None, [], None)
    assert [(c.type, c.status, c.reason) for c in row.checks] == [
        ("rouge-l", "fail", "0.40 < 0.5"), ("llm-judge", "pass", "fine")]
    assert row.checks_passed == "1/2 passed"
    error = case_row(errored)
    assert (error.status, error.output.text, error.latency) == (
        "error", "timeout: timed out after 60s", "5.00s")
    assert (case_row(cached).latency, case_row(cached).cached) == ("—", True)  # none recorded
    assert not row.cached and not error.cached


def test_a_cached_answer_keeps_the_latency_it_was_measured_with() -> None:
    cached = result("p", "m", 0, passed=True, cached=True, requests=0, latency_s=0.85)
    row = case_row(cached)
    assert (row.latency, row.cached) == ("850ms", True)
    asked = case_row(result("p", "m", 0, passed=True, latency_s=0.85))
    assert (asked.latency, asked.cached) == ("850ms", False)


def test_long_or_multiline_outputs_get_a_one_line_preview() -> None:
    long = case_row(result("p", "m", 0, output="word " * 100, vars={"日期": "今天"}))
    assert long.preview == ("word " * 100)[:PREVIEW_CHARS]
    assert case_row(result("p", "m", 0, output="a\nb")).preview == "a b"
    assert json.loads(long.variables) == {"日期": "今天"} and "日期" in long.variables


def test_an_assertion_that_errored_shows_its_error() -> None:
    check = check_view({"type": "python", "passed": False, "reason": "", "error": "boom"})
    assert (check.status, check.reason, check.error) == ("error", "", "boom")
    both = check_view({"type": "llm-judge", "passed": False, "reason": "no verdict",
                       "error": "HTTP 500"})
    assert (both.status, both.reason, both.error) == ("error", "no verdict", "HTTP 500")
    assert check_view({}).type == "assertion" and check_view({}).status == "fail"


def test_a_check_is_named_by_its_metric_else_its_type_with_its_score() -> None:
    record = {"type": "rouge-l", "metric": "rouge", "passed": False, "score": 0.21,
              "weight": 1.0, "reason": "rouge-l 0.21 < 0.4", "error": None}
    check = check_view(record)
    assert (check.name, check.type, check.score, check.reason, check.status) == (
        "rouge", "rouge-l", "0.210", "rouge-l 0.21 < 0.4", "fail")
    assert check_name(record) == "rouge"
    assert check_name({"type": "contains", "metric": None}) == "contains"  # older records
    assert check_view({"type": "contains", "passed": True}).score == ""
    assert not check.informational
    assert check_view({**record, "weight": 0}).informational  # reported, never failing


def test_a_chat_prompt_is_a_block_per_message_labelled_with_its_role() -> None:
    row = case_row(CaseResult("p", "m", "c0", 0, output="x", prompt=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Describe:"},
                                     {"type": "image_url", "image_url": {"url": "data:..."}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t1"}]},
        {"role": "user", "content": "Thanks", "name": "ana"}]))
    assert row.chat and row.prompt_summary == "prompt · 4 messages"
    assert [b.label for b in row.prompt] == ["system", "user", "assistant", "user"]
    assert row.prompt[0].text == "Be brief."
    assert row.prompt[1].text == "Describe:\n[image_url]"  # no data URL in the page
    assert '"tool_calls"' in row.prompt[2].text and '"t1"' in row.prompt[2].text
    assert row.prompt[3].text.startswith("Thanks\n") and '"ana"' in row.prompt[3].text


def test_a_completions_prompt_is_one_unlabelled_block() -> None:
    row = case_row(CaseResult("p", "m", "c0", 0, output="x", prompt="Q: 2+2?\nA:"))
    assert row.prompt == [Block("", "Q: 2+2?\nA:")] and not row.chat
    assert row.prompt_summary == "prompt · text"


def test_examples_answer_votes_and_reasoning() -> None:
    row = case_row(CaseResult(
        "p", "m", "c0", 0, output="so 4", answer="4", votes={"5": 1, "4": 3, "3": 1},
        reasoning="2 and 2 make 4", examples=[{"q": "1+1", "a": "2", "n": 1},
                                              {"q": "2+3", "a": "5"}]))
    assert [[(b.label, b.text) for b in example] for example in row.examples] == [
        [("q", "1+1"), ("a", "2"), ("n", "1")], [("q", "2+3"), ("a", "5")]]
    assert row.answer == Block("", "4") and row.answer_preview == "4"
    assert row.votes == [("4", 3), ("3", 1), ("5", 1)]  # most first, then by answer
    assert row.votes_summary == "3 of 5 votes"
    assert row.reasoning == Block("", "2 and 2 make 4")
    long = case_row(CaseResult("p", "m", "c0", 0, answer="word " * 40))
    assert long.answer_preview == ("word " * 40)[:80] + "…" and long.votes_summary == ""


def test_long_texts_are_cut_and_say_how_much() -> None:
    text = "x" * (TEXT_CHARS + 7)
    row = case_row(CaseResult("p", "m", "c0", 0, output=text, prompt=text, reasoning=text,
                              examples=[{"article": text}]))
    for block in (row.output, row.prompt[0], row.reasoning, row.examples[0][0]):
        assert block is not None and (len(block.text), block.cut) == (TEXT_CHARS, 7)


def test_rows_stop_at_the_limit_and_count_the_rest() -> None:
    rows = CaseRows(iter(handcrafted()), {("p1", "a", "c1")}, limit=3)
    shown = list(rows)
    assert [row.case_id for row in shown] == ["c0", "c0", "c1"]
    assert [row.flipped for row in shown] == [False, False, True]
    assert [row.number for row in shown] == [1, 2, 3]  # names the row's parts on the page
    assert (rows.shown, rows.left_out) == (3, 6)
    everything = CaseRows(handcrafted())
    assert len(list(everything)) == 9 and everything.left_out == 0


# -- tool calls and conversations ------------------------------------------------------


def test_an_answer_of_tool_calls_shows_each_call_and_flags_arguments_that_are_not_json(
        tool_answer: CaseResult) -> None:
    row = case_row(tool_answer)
    unparsed = tool_answer.tool_calls[1]["raw_arguments"] if tool_answer.tool_calls else ""
    weather, time = row.tool_calls
    assert (weather.name, weather.id, weather.invalid) == ("get_weather", "call_1", False)
    assert weather.arguments == Block("", '{\n "city": "Paris"\n}')  # indented JSON
    assert weather.line == '→ get_weather({"city": "Paris"})'
    assert (time.name, time.invalid, time.arguments.text) == ("get_time", True, unparsed)
    assert time.line == f"→ get_time({f'invalid JSON: {unparsed}'[:80]}…)"  # cut short
    assert row.calls_summary == f'→ get_weather({{"city": "Paris"}}); {time.line}'
    assert (row.output.text, row.preview, row.finish_reason) == ("", None, "tool_calls")


def test_finish_reason_is_shown_unless_the_model_just_stopped() -> None:
    reasons = [case_row(result("p", "m", 0, finish_reason=reason)).finish_reason
               for reason in ("stop", None, "length", "content_filter")]
    assert reasons == [None, None, "length", "content_filter"]
    plain = case_row(result("p", "m", 0))
    assert (plain.tool_calls, plain.conversation) == ([], [])


def test_long_arguments_are_cut_on_one_line_and_whole_when_folded_out() -> None:
    city = "x" * 500
    row = case_row(result("p", "m", 0, output="", tool_calls=[
        {"id": None, "name": "get_weather", "arguments": {"city": city}}] * 3))
    assert row.tool_calls[0].line == '→ get_weather({"city": "' + "x" * 70 + "…)"
    assert city in row.tool_calls[0].arguments.text and row.tool_calls[0].id == ""
    assert len(row.calls_summary) == PREVIEW_CHARS + 1 and row.calls_summary.endswith("…")


def test_a_conversation_reads_turn_by_turn(conversation: CaseResult) -> None:
    row = case_row(conversation)
    assert row.conversation_summary == "conversation · 3 turns, 7 messages"
    assert [turn.number for turn in row.conversation] == [1, 2, 3]
    assert [[m.role for m in turn.messages] for turn in row.conversation] == [
        ["assistant", "tool", "assistant"], ["user", "assistant"], ["user", "assistant"]]
    called, answered, said = row.conversation[0].messages
    assert called.text is None  # an answer that only calls a tool
    assert [call.line for call in called.tool_calls] == ['→ get_weather({"city": "Paris"})']
    assert answered.answers == "get_weather · call_1"  # the call the tool result answers
    assert answered.text == Block("", '{"sky": "<b>sunny</b>"}')
    assert (said.text, said.tool_calls, said.answers) == (Block("", "Sunny in Paris."), [], "")
    assert [m.text.text for m in row.conversation[1].messages if m.text] == [
        "And tomorrow?", "Rain."]
    assert [(check.name, check.turn) for check in row.checks] == [
        ("contains", None), ("equals", 2)]  # the case's own check: the last answer


def test_a_conversations_odd_messages_are_still_shown() -> None:
    turns = conversation_turns([
        {"role": "assistant", "content": None, "refusal": "no",
         "tool_calls": [{"id": "c9", "function": {"name": "f", "arguments": "{oops"}}]},
        {"role": "tool", "tool_call_id": "unknown", "content": "?"}, "not a message"])
    refused, tool, odd = turns[0].messages
    assert refused.text == Block("", '{\n "refusal": "no"\n}')
    assert refused.tool_calls[0].invalid and refused.tool_calls[0].arguments.text == "{oops"
    assert tool.answers == "unknown"  # no call of that id: the id alone
    assert (odd.role, odd.text) == ("message", Block("", '"not a message"'))
    assert conversation_turns(None) == []
