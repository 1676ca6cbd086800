"""Fine-tuning data from a stored run: a real eval against the test endpoint (a variant
with tools, conversations, an errored case), exported as SFT lines and preference pairs,
every message checked against the openai SDK's own message type."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter, ValidationError

from promptkit.cli import cli
from promptkit.errors import PromptkitError
from promptkit.redact import forget_secrets
from promptkit.reporting.exports import export_preference, export_sft
from promptkit.results import CaseResult
from promptkit.running.plan import plan_eval
from promptkit.running.runner import RunOptions, run_eval
from promptkit.running.spec import load_spec
from promptkit.running.storage import RunStore
from promptkit.testing import FakeEndpoint, RecordedRequest, Reply

MESSAGE = TypeAdapter(ChatCompletionMessageParam)

PLAIN = """\
{% message "system" %}Answer briefly.{% endmessage %}
{% message "user" %}{{ question }}{% endmessage %}
"""
TOOLS = """\
---
tools:
  - type: function
    function:
      name: get_weather
      description: The weather in a city
      parameters: {type: object, properties: {city: {type: string}}, required: [city]}
---
{% message "system" %}Use the tools when they help.{% endmessage %}
{% message "user" %}{{ question }}{% endmessage %}
"""
SPEC = """\
templates: templates
prompts:
  - id: plain
    template: plain@1
  - id: tools
    template: tools@1
{extra_prompt}providers:
  - id: fake
    base_url: {base_url}
    model: m
    stream: false
    retries: 0
    api_key_env: EXPORT_TEST_KEY
dataset: data.jsonl
"""
PLAIN2 = "  - id: plain2\n    template: plain@1\n    params: {max_tokens: 50}\n"
KEY = "sk-export-test-0123456789"
CASES = [
    # plain answers in words (fails), tools calls get_weather (passes)
    {"id": "weather", "question": "Weather in Paris?",
     "assert": [{"type": "tool-call", "name": "get_weather"}]},
    # both pass; plain's "Paris." scores lower than tools' "Paris"
    {"id": "capital", "question": "Capital of France?",
     "assert": [{"type": "levenshtein", "value": "Paris", "threshold": 0.5}]},
    {"id": "same", "question": "Say ok.", "assert": [{"type": "contains", "value": "ok"}]},
    # plain gets an HTTP 500
    {"id": "broken", "question": "Break.", "assert": [{"type": "contains", "value": "ok"}]},
    # a conversation: a later turn
    {"id": "chat", "question": "Hi", "turns": ["And tomorrow?"],
     "assert": [{"type": "contains", "value": "rain"}]},
    # a conversation: tools calls get_weather and answers from its result, which carries
    # the key (tool results are stored as the case gave them, not redacted)
    {"id": "loop", "question": "Rain in Paris?",
     "tool_results": {"get_weather": {"sky": "rain", "token": KEY}},
     "assert": [{"type": "icontains", "value": "rain"}]},
]


def variant(request: RecordedRequest) -> str:
    if request.body.get("tools"):
        return "tools"
    return "plain2" if request.body.get("max_tokens") == 50 else "plain"


def respond(request: RecordedRequest) -> Reply | str:
    messages = request.messages
    question, which = messages[1]["content"], variant(request)
    if question == "Weather in Paris?":
        return Reply.tool_calls([{"name": "get_weather", "arguments": {"city": "Paris"}}]) \
            if which == "tools" else "It is sunny."
    if question == "Capital of France?":
        return "Paris." if which == "plain" else "Paris"
    if question == "Break.":
        return Reply.status(500) if which == "plain" else "ok"
    if question == "Hi":  # an answer echoing the key (redacted as it arrives)
        return f"Hello {KEY}" if len(messages) == 2 else "rain tomorrow"
    if question == "Rain in Paris?":
        if which == "tools" and messages[-1]["role"] != "tool":
            return Reply.tool_calls([{"name": "get_weather", "arguments": {"city": "Paris"}}])
        return "Rain today."
    return "ok"


@pytest.fixture
def project(tmp_path: Path, endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An eval of two variants (plain, tools) over CASES, run once; the folder."""
    monkeypatch.setenv("EXPORT_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    run_project(tmp_path, endpoint)
    return tmp_path


def run_project(folder: Path, endpoint: FakeEndpoint, extra_prompt: str = "") -> str:
    for name, text in (("plain", PLAIN), ("tools", TOOLS)):
        (folder / "templates" / name).mkdir(parents=True, exist_ok=True)
        (folder / "templates" / name / "v1.jinja").write_text(text)
    (folder / "data.jsonl").write_text("".join(json.dumps(case) + "\n" for case in CASES))
    spec = folder / "eval.yaml"
    spec.write_text(SPEC.format(base_url=endpoint.base_url, extra_prompt=extra_prompt))
    endpoint.respond_with(respond)
    outcome = asyncio.run(run_eval(plan_eval(load_spec(spec)), RunOptions(use_cache=False)))
    forget_secrets()  # as in a later `promptkit export`: it knows no key until it reads one
    return outcome.run.run_id


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_message(message: dict[str, Any]) -> None:
    """``message`` is a ChatCompletionMessageParam: the SDK's TypedDicts validate lazily
    inside lists (tool calls), so those are read to the end, and no key is left over."""
    validated = MESSAGE.validate_python(message)
    for key, value in validated.items():
        if not isinstance(value, str | dict | type(None)):
            validated[key] = list(value)
    assert set(validated) == set(message), f"keys the SDK does not know: {message}"


def export(*args: str) -> Any:
    return CliRunner().invoke(cli, ["export", *args, "--store-dir", ".promptkit"])


def test_the_message_check_can_fail() -> None:
    check_message({"role": "user", "content": "hi"})
    bad_arguments = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}
    for bad in ({"role": "robot", "content": "hi"}, {"role": "tool", "content": "x"},
                {"role": "user", "content": None}, bad_arguments):
        with pytest.raises(ValidationError):
            check_message(bad)
    with pytest.raises(AssertionError, match="keys the SDK does not know"):
        check_message({"role": "user", "content": "hi", "mood": "sad"})


def test_sft_writes_passing_results_as_sent_with_tool_calls_and_conversations(
        project: Path) -> None:
    outcome = export("sft", "last", "-o", "sft.jsonl")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stderr == "wrote 10 lines to sft.jsonl; skipped 1 failed, 1 errored\n"
    written = lines(project / "sft.jsonl")
    assert len(written) == 10 and all(set(line) == {"messages"} for line in written)
    for line in written:
        for message in line["messages"]:
            check_message(message)
    by_question = {(line["messages"][0]["content"], line["messages"][1]["content"]):
                   line["messages"] for line in written}
    tool_call = by_question["Use the tools when they help.", "Weather in Paris?"][-1]
    assert tool_call == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert by_question["Answer briefly.", "Capital of France?"][-1] == {
        "role": "assistant", "content": "Paris."}
    chat = by_question["Answer briefly.", "Hi"]
    assert [m["role"] for m in chat] == ["system", "user", "assistant", "user", "assistant"]
    assert chat[2]["content"] == "Hello [redacted]" and chat[3]["content"] == "And tomorrow?"
    loop = by_question["Use the tools when they help.", "Rain in Paris?"]
    assert [m["role"] for m in loop] == ["system", "user", "assistant", "tool", "assistant"]
    assert loop[3]["content"] == '{"sky": "rain", "token": "[redacted]"}'
    assert loop[-1]["content"] == "Rain today."
    assert KEY not in (project / "sft.jsonl").read_text()


def test_sft_filters_by_prompt_provider_and_min_score(project: Path) -> None:
    counts = export_sft("plain.jsonl", prompt="plain", provider="fake", min_score=0.9)
    assert (counts.written, dict(counts.skipped)) == (
        3, {"failed": 1, "errored": 1, "below_min_score": 1})
    assert counts.describe() == ("wrote 3 lines to plain.jsonl; skipped 1 failed, "
                                 "1 below --min-score, 1 errored")
    assert {line["messages"][1]["content"] for line in lines(project / "plain.jsonl")} == {
        "Say ok.", "Hi", "Rain in Paris?"}
    assert export_sft("all.jsonl", min_score=0.5).written == 10


def test_preference_pairs_the_better_answer_and_counts_what_it_left_out(
        project: Path) -> None:
    refused = export("preference", "-o", "pref.jsonl")
    assert refused.exit_code == 2 and len(refused.stderr.splitlines()) == 1
    assert "sent different messages" in refused.stderr and "--input a" in refused.stderr
    assert not (project / "pref.jsonl").exists()

    outcome = export("preference", "--input", "b", "-o", "pref.jsonl")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stderr == ("wrote 2 lines to pref.jsonl; skipped 1 errored, 1 tie, "
                              "2 conversations\n")
    weather, capital = lines(project / "pref.jsonl")
    for line in (weather, capital):
        assert set(line) == {"input", "preferred_output", "non_preferred_output"}
        assert line["input"]["messages"][0]["content"] == "Use the tools when they help."
        for message in [*line["input"]["messages"], *line["preferred_output"],
                        *line["non_preferred_output"]]:
            check_message(message)
    # passed beats failed; with both passing, the higher score wins
    assert weather["preferred_output"][0]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert weather["non_preferred_output"] == [{"role": "assistant", "content": "It is sunny."}]
    assert capital["preferred_output"] == [{"role": "assistant", "content": "Paris"}]
    assert capital["non_preferred_output"] == [{"role": "assistant", "content": "Paris."}]

    export_preference("pref_a.jsonl", input_side="a")
    assert lines(project / "pref_a.jsonl")[0]["input"]["messages"][0]["content"] == \
        "Answer briefly."


def test_preference_needs_a_and_b_when_a_run_has_more_variants(
        tmp_path: Path, endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORT_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    run_project(tmp_path, endpoint, extra_prompt=PLAIN2)
    refused = export("preference", "-o", "pref.jsonl")
    assert refused.exit_code == 2
    assert refused.stderr == ("promptkit: error: run {} has 3 prompt variants (plain, tools, "
                              "plain2); pick the two to pair with --a and --b\n").format(
        RunStore(tmp_path / ".promptkit" / "runs.db").get_run("last").run_id)
    for args, needle in ((["--a", "plain"], "give both --a and --b"),
                         (["--a", "plain", "--b", "plain"], "pick two different"),
                         (["--a", "plain", "--b", "nope"], "has no prompt 'nope'"),
                         (["--a", "plain", "--b", "plain2", "--provider", "x"],
                          "has no provider 'x' (its providers: fake)")):
        outcome = export("preference", *args, "-o", "pref.jsonl")
        assert outcome.exit_code == 2 and needle in outcome.stderr, outcome.stderr
    # the same template: the same prompt, so no --input is needed
    outcome = export("preference", "--a", "plain", "--b", "plain2", "-o", "pref.jsonl")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stderr == ("wrote 1 line to pref.jsonl; skipped 1 errored, 2 ties, "
                              "2 conversations\n")
    (capital,) = lines(tmp_path / "pref.jsonl")
    assert capital["preferred_output"][0]["content"] == "Paris"


def test_repeats_answering_the_same_are_written_once(project: Path,
                                                     endpoint: FakeEndpoint) -> None:
    spec = project / "eval.yaml"
    spec.write_text(spec.read_text() + "repeat: 2\n")
    endpoint.respond_with(respond)
    asyncio.run(run_eval(plan_eval(load_spec(spec)), RunOptions(use_cache=False)))
    counts = export_sft("twice.jsonl", prompt="tools")
    assert (counts.written, dict(counts.skipped)) == (6, {"duplicate": 6})
    assert export_preference("pref.jsonl", input_side="b").written == 2  # repeat 0 only


def test_a_run_stored_before_results_kept_their_prompt_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with RunStore(tmp_path / ".promptkit" / "runs.db") as store:
        run = store.create_run(str(tmp_path / "eval.yaml"), "h", {
            "prompts": [{"id": "a"}, {"id": "b"}], "providers": [{"id": "p"}]})
        for prompt in ("a", "b"):
            store.add_result(run.run_id, CaseResult(prompt, "p", "c0", 0, output="hi",
                                                    passed=True, score=1.0))
            store.add_result(run.run_id, CaseResult(prompt, "p", "c1", 1, error="HTTP 500",
                                                    error_kind="server"))
        store.finish_run(run.run_id, "finished")
    for kind in ("sft", "preference"):
        outcome = export(kind, run.run_id[:10], "-o", "out.jsonl")
        assert outcome.exit_code == 2
        assert outcome.stderr == (f"promptkit: error: run {run.run_id} was stored before "
                                  "results kept the prompt as sent, so its fine-tuning data "
                                  "cannot be rebuilt; run the eval again to export it\n")
        assert not (tmp_path / "out.jsonl").exists()


def test_only_errors_write_an_empty_file(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with RunStore(tmp_path / ".promptkit" / "runs.db") as store:
        run = store.create_run(str(tmp_path / "eval.yaml"), "h", {})
        store.add_result(run.run_id, CaseResult("a", "p", "c0", 0, error="no template",
                                                error_kind="render"))
    counts = export_sft("out.jsonl", store_dir=".promptkit")
    assert counts.describe() == "wrote 0 lines to out.jsonl; skipped 1 errored"
    assert (tmp_path / "out.jsonl").read_text() == ""


def test_outputs_that_would_destroy_an_input_are_refused(project: Path) -> None:
    before = (project / "data.jsonl").read_text()
    (project / "baseline.jsonl").write_text('{"promptkit_baseline": 1}\n')
    (project / "templates" / "plain" / "x.jsonl").write_text("")
    for output, needle in (("data.jsonl", "would overwrite an input"),
                           ("baseline.jsonl", "would overwrite a baseline file"),
                           ("templates/plain/x.jsonl", "inside the template store"),
                           ("sft.json", "fine-tuning data is written as .jsonl"),
                           ("missing/sft.jsonl", "folder does not exist")):
        for kind in ("sft", "preference"):
            outcome = export(kind, "--input", "b", "-o", output) if kind == "preference" \
                else export(kind, "-o", output)
            assert outcome.exit_code == 2 and needle in outcome.stderr, (output, outcome.stderr)
    assert (project / "data.jsonl").read_text() == before


def test_an_unknown_run_is_one_line_exit_2(project: Path) -> None:
    outcome = export("sft", "nope", "-o", "sft.jsonl")
    assert outcome.exit_code == 2 and outcome.stderr.startswith("promptkit: error: no run")
    assert len(outcome.stderr.splitlines()) == 1
    with pytest.raises(PromptkitError, match="has no prompt 'nope'"):
        export_sft("sft.jsonl", prompt="nope")


def test_help_says_what_is_written() -> None:
    outcome = CliRunner().invoke(cli, ["export", "--help"])
    assert outcome.exit_code == 0 and "fine-tuning data" in outcome.output
    for kind in ("sft", "preference"):
        assert "--output" in CliRunner().invoke(cli, ["export", kind, "--help"]).output


@pytest.mark.parametrize("args", [("sft", "last", "--min-score", "2", "-o", "x.jsonl"),
                                  ("preference", "last", "--input", "c", "-o", "p.jsonl"),
                                  ("sft", "last")])
def test_export_option_mistakes_are_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    from helpers import promptkit as run_cli

    proc = run_cli("export", *args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
