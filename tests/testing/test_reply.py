"""Tests for promptkit.testing.reply: building replies, also from JSON (a script line).

Sending them is test_fake's job."""

from __future__ import annotations

import dataclasses
import inspect
from typing import get_args

import pytest

from promptkit.testing import Reply
from promptkit.testing.reply import SCRIPT_KEYS, ReplyKind, ToolCall


def test_text_keeps_one_or_several_contents_as_a_tuple() -> None:
    assert Reply.text("Paris").content == ("Paris",)
    assert Reply.text(["42", "41"]).content == ("42", "41")
    with pytest.raises(ValueError, match="empty"):
        Reply.text([])


@pytest.mark.parametrize(
    "build",
    [
        lambda: Reply.text("x", latency=-1),
        lambda: Reply.echo(chunk_delay=-0.1),
        lambda: Reply.status(99),
        lambda: Reply.status(600),
        lambda: Reply.raw("{}", status=1000),
    ],
)
def test_impossible_latencies_and_status_codes_are_refused(build) -> None:
    with pytest.raises(ValueError):
        build()


def test_tool_calls_keep_their_arguments_as_the_json_text_to_send() -> None:
    reply = Reply.tool_calls([
        {"name": "get_weather", "arguments": {"city": "北京"}},
        {"name": "search", "arguments": '{"q": '},  # a str is sent as is, valid JSON or not
        {"name": "now", "id": "call_mine"},
    ])
    assert (reply.kind, reply.content, reply.finish_reason) == ("tool_calls", None, "tool_calls")
    assert reply.calls == (ToolCall("get_weather", '{"city": "北京"}'),
                           ToolCall("search", '{"q": '), ToolCall("now", "{}", "call_mine"))
    assert Reply.tool_calls([{"name": "f"}], text="On it.").content == ("On it.",)
    with pytest.raises(ValueError, match=r"^tool_calls\[0\] must be an object like"):
        Reply.tool_calls(["get_weather"])  # type: ignore[list-item]


def test_json_is_text_holding_the_value_as_json() -> None:
    assert Reply.json({"city": "北京", "n": [1, None]}, latency=1) == Reply.text(
        '{"city": "北京", "n": [1, null]}', latency=1)
    with pytest.raises(TypeError, match="set"):
        Reply.json({1, 2})


def test_status_and_raw_keep_bodies_and_headers_as_given() -> None:
    error = Reply.status(429, retry_after=2, headers={"retry-after-ms": "5"})
    assert (error.kind, error.status_code, error.body) == ("status", 429, None)
    assert (error.retry_after, error.headers) == (2, (("retry-after-ms", "5"),))
    assert Reply.raw({"a": [1]}).body == '{"a": [1]}'
    assert Reply.raw(b"bytes").body == "bytes"
    assert Reply.raw("\ud800", status=201).status_code == 201


def test_events_drop_stream_and_the_rest_record_their_kind() -> None:
    events = Reply.events({"a": 1}, "text", done=False, chunk_delay=0.1)
    assert (events.sse_events, events.done, events.chunk_delay) == (({"a": 1}, "text"), False, 0.1)
    dropped = Reply.drop_stream(3, content="cut")
    assert (dropped.after_chunks, dropped.content) == (3, ("cut",))
    assert Reply.drop_stream().content is None
    assert Reply.html(502).status_code == 502
    kinds = [Reply.echo(), Reply.malformed_json(), Reply.hang(), Reply.html()]
    assert [reply.kind for reply in kinds] == ["echo", "malformed_json", "hang", "html"]


def test_events_that_json_cannot_encode_are_refused_when_built_as_raw_bodies_are() -> None:
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        Reply.events({"a": {1}})
    with pytest.raises(TypeError, match="set"):
        Reply.raw({"a": {1}})


NAN, INFINITY = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Reply.raw({"score": NAN}), "^Out of range float values"),
        (lambda: Reply.events({"choices": []}, {"score": INFINITY}), "^Out of range float"),
        (lambda: Reply.json([1, -INFINITY]), "^Out of range float values"),
        (lambda: Reply.status(500, body={"error": {"score": NAN}}), "^Out of range float"),
        (lambda: Reply.tool_calls([{"name": "f", "arguments": {"x": NAN}}]),
         r"^tool_calls\[0\]: 'arguments': Out of range float values"),
        (lambda: Reply.from_dict({"kind": "raw", "body": {"x": NAN}}), "^raw: Out of range"),
        (lambda: Reply.text("x", latency=NAN), "^latency and chunk_delay must be >= 0"),
    ],
)
def test_nan_and_infinities_are_refused_when_built_since_json_has_no_text_for_them(
    build, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_a_status_body_json_cannot_encode_is_refused_when_built_too() -> None:
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        Reply.status(500, body={"error": {1}})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-a": "1\r\nset-cookie: a=b"},
         r"headers: 'x-a': '1\\r\\nset-cookie: a=b' cannot be sent in an HTTP header "
         r"\(Latin-1 text without CR, LF or other control characters\)"),
        ({"x-a": "1\n"}, r"headers: 'x-a': '1\\n' cannot be sent"),
        ({"x-a": "nul\x00"}, r"headers: 'x-a': 'nul\\x00' cannot be sent"),
        ({"x-a": "snow \u2603"}, "headers: 'x-a': 'snow \u2603' cannot be sent"),  # not Latin-1
        ({"x-a\r\nx-b": "1"}, r"headers: 'x-a\\r\\nx-b' is not an HTTP header name"),
        ({"x a": "1"}, "headers: 'x a' is not an HTTP header name"),
        ({"x-a:": "1"}, "headers: 'x-a:' is not an HTTP header name"),
        ({"": "1"}, "headers: '' is not an HTTP header name"),
        ({"retry-after": 5}, "headers: 'retry-after' must be a string, not an integer"),
    ],
)
def test_headers_an_http_response_cannot_carry_are_refused(headers, message: str) -> None:
    for build in (lambda: Reply.raw("{}", headers=headers),
                  lambda: Reply.status(429, headers=headers)):
        with pytest.raises(ValueError, match=f"^{message}") as caught:
            build()
        assert "\n" not in str(caught.value)


def test_odd_headers_an_http_response_can_carry_are_kept() -> None:
    headers = {"retry-after": "soon, maybe", "x-latin-1": "caf\xe9", "x-empty": "",
               "x-tab": "a\tb", "x-token!#$%&'*+.^_`|~": "ok"}
    assert Reply.raw("{}", headers=headers).headers == tuple(headers.items())
    assert Reply.status(503, headers=headers).headers == tuple(headers.items())


def test_replies_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Reply.echo().latency = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"content": "Paris"}, Reply.text("Paris")),
        ({"kind": "text", "content": ["42", "41"], "finish_reason": "length",
          "reasoning_content": "hmm", "usage": False, "latency": 0.5, "chunk_delay": 0.1},
         Reply.text(["42", "41"], finish_reason="length", reasoning_content="hmm", usage=False,
                    latency=0.5, chunk_delay=0.1)),
        ({"kind": "echo", "usage": {"prompt_tokens": 3}, "latency": 1},
         Reply.echo(usage={"prompt_tokens": 3}, latency=1)),
        ({"kind": "status", "code": 429, "retry_after": 1},
         Reply.status(429, retry_after=1)),
        ({"kind": "status", "code": 500, "body": {"error": "x"}, "headers": {"x-a": "b"},
          "latency": 0.2},
         Reply.status(500, body={"error": "x"}, headers={"x-a": "b"}, latency=0.2)),
        ({"kind": "raw", "body": {"choices": []}, "status": 201, "headers": {"x-a": "b"}},
         Reply.raw({"choices": []}, status=201, headers={"x-a": "b"})),
        ({"kind": "raw", "body": "not json"}, Reply.raw("not json")),
        ({"kind": "events", "events": [{"a": 1}, "text"], "done": False, "chunk_delay": 0.1},
         Reply.events({"a": 1}, "text", done=False, chunk_delay=0.1)),
        ({"kind": "events"}, Reply.events()),
        ({"kind": "malformed_json", "latency": 0.1}, Reply.malformed_json(latency=0.1)),
        ({"kind": "html", "status": 502}, Reply.html(502)),
        ({"kind": "hang"}, Reply.hang()),
        ({"kind": "drop_stream", "after_chunks": 3, "content": "cut", "latency": 0.1},
         Reply.drop_stream(3, content="cut", latency=0.1)),
        ({"tool_calls": [{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": "{"}]},
         Reply.tool_calls([{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": "{"}])),
        ({"kind": "tool_calls", "tool_calls": [{"name": "f", "id": "c9"}], "text": "On it.",
          "finish_reason": "stop", "reasoning_content": "hm", "usage": False, "latency": 0.1,
          "chunk_delay": 0.1},
         Reply.tool_calls([{"name": "f", "id": "c9"}], text="On it.", finish_reason="stop",
                          reasoning_content="hm", usage=False, latency=0.1, chunk_delay=0.1)),
        ({"kind": "json", "value": {"a": [1, "b"]}, "finish_reason": "length"},
         Reply.json({"a": [1, "b"]}, finish_reason="length")),
        ({"kind": "json", "value": None}, Reply.json(None)),
    ],
)
def test_from_dict_calls_the_kinds_class_method_with_the_other_keys(fields, expected) -> None:
    assert Reply.from_dict(fields) == expected


def test_script_keys_are_each_kinds_arguments() -> None:
    assert set(SCRIPT_KEYS) == set(get_args(ReplyKind)) | {"json"}
    for kind, keys in SCRIPT_KEYS.items():
        assert list(keys) == list(inspect.signature(getattr(Reply, kind)).parameters), kind


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "text: missing 'content'"),
        ({"kind": "txt"}, "unknown kind 'txt' (kinds: text, json, tool_calls, echo, status, "
                          "raw, events, malformed_json, html, hang, drop_stream)"),
        ({"kind": ["text"]}, "unknown kind ['text']"),
        ({"kind": "status"}, "status: missing 'code'"),
        ({"kind": "status", "code": 429, "retry-after": 1},
         "status: unknown key 'retry-after' (keys: code, body, retry_after, headers, latency)"),
        ({"kind": "hang", "latency": 1}, "hang: unknown key 'latency' (hang takes none)"),
        ({"kind": "status", "code": "429"}, "status: 'code' must be an integer, not a string"),
        ({"content": "x", "latency": True}, "text: 'latency' must be a number, not true"),
        ({"content": "x", "usage": True},
         "text: 'usage' must be an object, false or null, not true"),
        ({"content": ["a", 1]},
         "text: 'content' must be a string or a list of strings, not a list holding an integer"),
        ({"kind": "events", "events": [{}, None]},
         "events: 'events' must be a list of objects and strings, not a list holding null"),
        ({"kind": "raw", "body": None}, "raw: 'body' must be an object or a string, not null"),
        ({"kind": "status", "code": 99}, "status: not an HTTP status code: 99"),
        ({"content": "x", "latency": -1}, "text: latency and chunk_delay must be >= 0"),
        ({"content": []}, "text: content must not be an empty sequence"),
        ({"kind": "json"}, "json: missing 'value'"),
        ({"kind": "tool_calls"}, "tool_calls: missing 'tool_calls'"),
        ({"tool_calls": []}, "tool_calls must not be empty (a reply without calls is text)"),
        ({"tool_calls": {"name": "f"}},
         "tool_calls: 'tool_calls' must be a list of objects, not an object"),
        ({"tool_calls": ["get_weather"]},
         "tool_calls: 'tool_calls' must be a list of objects, not a list holding a string"),
        ({"tool_calls": [{"name": "f"}, {"arguments": {}}]}, "tool_calls[1]: missing 'name'"),
        ({"tool_calls": [{"name": ""}]},
         "tool_calls[0]: 'name' must be a function name, not an empty string"),
        ({"tool_calls": [{"name": 3}]}, "tool_calls[0]: 'name' must be a function name, not an "
                                        "integer"),
        ({"tool_calls": [{"name": "f", "id": 1}]}, "tool_calls[0]: 'id' must be a string, not "
                                                   "an integer"),
        ({"tool_calls": [{"name": "f", "args": {}}]},
         "tool_calls[0]: unknown key 'args' (keys: name, arguments, id)"),
        ({"tool_calls": [{"name": "f"}], "content": "x"},
         "tool_calls: unknown key 'content' (keys: tool_calls, text, finish_reason, "),
    ],
)
def test_from_dict_says_what_is_wrong_in_one_line(fields, message) -> None:
    with pytest.raises(ValueError) as caught:
        Reply.from_dict(fields)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
