"""Tests for promptkit.testing.payloads: the OpenAI bodies and chunks, as pure functions."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from promptkit.testing import Reply, fake_embedding
from promptkit.testing.payloads import (
    chat_chunks,
    completion_chunks,
    dict_as_events,
    echo_text,
    error_body,
    message_deltas,
    prompt_text,
    tool_results,
    usage,
)

BASE = {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "m"}


def test_fake_embedding_is_a_unit_vector_identical_across_processes() -> None:
    vector = fake_embedding("The cat sat")
    assert len(vector) == 64 and len(fake_embedding("x", 8)) == 8
    assert math.isclose(sum(value * value for value in vector), 1.0)
    assert fake_embedding("the CAT sat") == vector  # case-insensitive
    code = ("import json; from promptkit.testing import fake_embedding; "
            "print(json.dumps(fake_embedding('The cat sat')))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(other.stdout) == vector


def test_error_body_has_the_type_and_code_the_openai_sdk_reads() -> None:
    def error(status: int) -> dict:
        content_type, body = error_body(status, "why")
        assert content_type == "application/json"
        return json.loads(body)["error"]

    assert error(429) == {"message": "why", "type": "requests", "param": None,
                          "code": "rate_limit_exceeded"}
    assert (error(503)["type"], error(503)["code"]) == ("server_error", None)
    assert error(400)["type"] == "invalid_request_error"


def test_prompt_and_echo_text_read_messages_parts_prompts_and_inputs() -> None:
    body = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},
    ]}
    assert prompt_text(body) == "Be brief.\na\n"
    assert echo_text(body, prompt_text(body)) == "a"
    assert prompt_text({"prompt": ["x", "y"]}) == "x\ny"
    assert prompt_text({"input": "z"}) == "z"
    assert prompt_text(None) == prompt_text([1]) == ""
    assert echo_text({"prompt": "p"}, "p") == "p"


def test_usage_counts_words_unless_overridden_or_omitted() -> None:
    reply = Reply.text("a b", reasoning_content="r")
    assert usage("one two three", ["a b", "a b"], reply) == {
        "prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}
    assert usage("x", ["a"], Reply.text("a", usage={"completion_tokens": 7})) == {
        "prompt_tokens": 1, "completion_tokens": 7, "total_tokens": 8}
    assert usage("x", ["a"], Reply.text("a", usage={"total_tokens": 0}))["total_tokens"] == 0
    assert usage("x", ["a"], Reply.text("a", usage=False)) is None


def test_chunks_concatenate_back_to_exactly_the_text() -> None:
    text = "  Paris,\nof course.  "
    reply = Reply.text(text, reasoning_content="think  first")
    chunks = chat_chunks(BASE, [text], reply, None)
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}  # as OpenAI
    assert "".join(d.get("content", "") for d in deltas) == text
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "think  first"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in chunks)

    counts = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    legacy = completion_chunks(BASE, [text, "b"], reply, counts)
    assert "".join(c["choices"][0]["text"] for c in legacy[:-1] if c["choices"][0]["index"] == 0) \
        == text
    assert legacy[-1] == {**BASE, "choices": [], "usage": counts}
    assert all(chunk["usage"] is None for chunk in legacy[:-1])


def test_a_chat_completion_dict_streams_as_openai_would_then_its_usage() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    completion = {**BASE, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
         "finish_reason": "tool_calls"},
        {"message": {"role": "assistant", "content": "hi there"}, "logprobs": {"content": []}},
    ], "usage": {"total_tokens": 3}}
    header = {**BASE, "object": "chat.completion.chunk"}

    def event(index: int, delta: dict, logprobs=None, finish=None) -> dict:
        return {**header, "choices": [{"index": index, "delta": delta, "logprobs": logprobs,
                                       "finish_reason": finish}]}

    def fragment(piece: str) -> dict:
        return event(0, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})

    first_call = {"index": 0, **call, "function": {"name": "f", "arguments": ""}}
    assert dict_as_events(completion) == [
        event(0, {"role": "assistant", "content": None, "tool_calls": [first_call]}),
        fragment('{"'), fragment("a"), fragment('":'), fragment(" "), fragment("1"),
        fragment("}"),
        event(0, {}, finish="tool_calls"),
        event(1, {"role": "assistant", "content": ""}),
        event(1, {"content": "hi "}), event(1, {"content": "there"}),
        event(1, {}, logprobs={"content": []}),
        {**header, "choices": [], "usage": {"total_tokens": 3}},
    ]
    assert completion["choices"][0]["message"]["tool_calls"] == [call]  # not changed


def test_message_deltas_put_text_before_calls_and_send_odd_calls_whole() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    odd = {"id": "c2", "function": {"name": "g", "arguments": {"not": "text"}}}
    message = {"role": "assistant", "content": "Checking.", "reasoning_content": "hm",
               "refusal": None, "tool_calls": [call, odd, "junk"]}
    assert message_deltas(message) == [
        {"role": "assistant", "refusal": None, "content": ""},
        {"reasoning_content": "hm"},
        {"content": "Checking."},
        {"tool_calls": [{"index": 0, **call, "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
        {"tool_calls": [{"index": 1, **odd}]},
        {"tool_calls": ["junk"]},
    ]
    assert message_deltas({"content": None, "tool_calls": "junk"}) == [
        {"role": "assistant", "content": None, "tool_calls": "junk"}]


def test_tool_results_are_keyed_by_call_id_and_by_function_name() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather"}},
            {"id": "call_2", "type": "function", "function": {"name": "weather"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "tool", "tool_call_id": "call_9", "name": "clock", "content": "noon"},
        {"role": "tool", "tool_call_id": ["odd"], "content": "ignored"},
    ]
    assert tool_results(messages) == {"call_1": "sunny", "call_2": "rain", "weather": "rain",
                                      "call_9": "noon", "clock": "noon"}


def test_any_other_dict_streams_as_one_event() -> None:
    for body in ({"error": {"message": "x"}}, {"choices": []}, {"choices": [{"text": "a"}]},
                 {**BASE, "object": "chat.completion.chunk",
                  "choices": [{"index": 0, "delta": {"content": "a"}}]}):
        assert dict_as_events(body) == [body]
