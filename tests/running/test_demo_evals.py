"""The shipped tool-choice and extraction demos: evals/tools.yaml against the test endpoint
playing a model that calls tools, evals/extract.yaml on the bundled local model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import promptkit
from promptkit.testing import FakeEndpoint, RecordedRequest, Reply

REPO = Path(__file__).parents[2]
CASES = [json.loads(line) for line in (REPO / "evals" / "data" / "tools.jsonl").open()]


def expected_calls(request_text: str) -> list[dict]:
    case = next(c for c in CASES if c["request"] == request_text)
    return case["assert"][0]["value"]


def tool_user(request: RecordedRequest):
    """Calls what each case expects when the system prompt has the rules; without them,
    reaches for web_search whenever the request is in Chinese."""
    messages = request.body["messages"]
    text = messages[-1]["content"]
    calls = expected_calls(text)
    ruled = "Call get_weather for any question" in messages[0]["content"]
    if not ruled and not text.isascii():
        calls = [{"name": "web_search", "arguments": {"query": text}}]
    if not calls:
        return "Happy to help."
    return Reply.tool_calls([{"name": call["name"], "arguments": {
        **call.get("arguments", {}), **({"title": "t"} if call["name"] == "create_event"
                                        else {})}} for call in calls])


def test_the_tools_demo_scores_tool_choice_in_english_and_chinese(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    assert len(CASES) >= 20 and sum(not c["request"].isascii() for c in CASES) >= 10
    endpoint.respond_with(tool_user)
    with promptkit.evaluate(REPO / "evals" / "tools.yaml", base_url=endpoint.base_url,
                            model="m", use_cache=False, store_dir=tmp_path) as report:
        rows = {row.prompt_id: row for row in report.rows}
        results = list(report.results())
    assert rows["rules"].pass_rate == 1.0
    # terse: the 12 English cases, and of the Chinese only the two that do want a search
    assert rows["terse"].pass_rate == pytest.approx(14 / 22)
    assert rows["rules"].best and not rows["rules"].tied  # ★: significantly better
    sent = endpoint.requests[0].body
    assert [tool["function"]["name"] for tool in sent["tools"]] == [
        "get_weather", "create_event", "web_search"]
    failed = next(r for r in results if r.prompt_id == "terse" and r.case_id == "zh-weather-1")
    assert failed.tool_calls[0]["name"] == "web_search"
    assert "not made: get_weather" in failed.assertions[0]["reason"]


@pytest.mark.local_model
def test_the_extract_demo_answers_valid_json_under_its_schema(tmp_path: Path) -> None:
    with promptkit.evaluate(REPO / "evals" / "extract.yaml", store_dir=tmp_path,
                            use_cache=False) as report:
        rows = {row.prompt_id: row for row in report.rows}
        results = list(report.results())
    valid = {prompt: [r.metrics.get("json-schema") == 1.0 for r in results
                      if r.prompt_id == prompt] for prompt in rows}
    assert len(valid["schema"]) == len(valid["asked"]) == 24
    schema_rate = sum(valid["schema"]) / 24
    asked_rate = sum(valid["asked"]) / 24
    print(f"valid JSON: {schema_rate:.0%} with the schema, {asked_rate:.0%} asked")
    assert schema_rate >= 0.9 and schema_rate > asked_rate
    sent = next(r for r in results if r.prompt_id == "schema")
    assert sent.error is None and isinstance(json.loads(sent.output), dict)
