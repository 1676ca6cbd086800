"""What endpoints answer, checked before anyone uses it.

A non-streamed answer is parsed by :func:`parse_response`; a streamed one is assembled
event by event by :class:`StreamedAnswer`, which can tell a stream that ended with
``data: [DONE]`` (complete) from one that stopped before it (dropped). Either way a body
that is not a completion, ``content: null`` without tool calls or a refusal, ``usage``
counts that are not numbers, or text with unpaired surrogates raise :class:`RequestError`
(``bad_response``), so no such answer is cached, stored or scored.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any

from ..redact import shorten
from ..results import ErrorKind


@dataclass
class Completion:
    """A usable answer: what gets cached and scored."""

    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning: str | None = None
    usage_estimated: bool = False
    refusal: str | None = None
    # How long the request that produced it took (kept in the cache, so a cached answer
    # still shows the latency it was measured with).
    latency_s: float | None = None
    ttft_s: float | None = None
    # The function calls the answer asks for (see :func:`tool_call`), None without any.
    tool_calls: list[dict[str, Any]] | None = None

    def to_record(self) -> dict[str, Any]:
        return dict(self.__dict__)


def asks_json_output(body: dict[str, Any]) -> bool:
    """Whether a request asks for JSON output (a response format or a grammar)."""
    return body.get("response_format") is not None or body.get("grammar") is not None


def breaks_json_output(completion: Completion) -> bool:
    """Whether an answer to such a request is not JSON (an answer that only calls tools
    never breaks it: the format is for text answers)."""
    if completion.tool_calls and not completion.text:
        return False
    try:
        json.loads(completion.text)
    except ValueError:
        return True
    return False


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """One function call as results keep it: ``{"id", "name", "arguments"}`` with the
    arguments parsed from their JSON text, plus ``"raw_arguments"`` (the text as sent,
    ``arguments`` None) when that text is not a JSON object (not JSON, ``NaN``, ``null``,
    a list: nothing an app could call a function with).

    Raises:
        RequestError: the name or arguments are not text (``bad_response``).
    """
    if not isinstance(name, str) or not name:
        raise RequestError("bad_response", "invalid response: a tool call has no function "
                           "name")
    if arguments is None:
        arguments = ""
    if isinstance(arguments, dict):  # some servers send the object itself
        return {"id": call_id if isinstance(call_id, str) else None, "name": name,
                "arguments": arguments}
    if not isinstance(arguments, str):
        raise RequestError("bad_response", "invalid response: tool call arguments are not "
                           "text")
    call: dict[str, Any] = {"id": call_id if isinstance(call_id, str) else None, "name": name}
    from ..scoring.reading import parse_json  # capped, no NaN: as answers are read

    try:
        parsed = parse_json(arguments) if arguments.strip() else {}
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        call["arguments"] = parsed
    else:
        call["arguments"], call["raw_arguments"] = None, arguments
    return call


def _message_tool_calls(calls: Any) -> list[dict[str, Any]] | None:
    """The tool calls of a non-streamed chat message."""
    if not calls:
        return None
    if not isinstance(calls, list):
        raise RequestError("bad_response", "invalid response: 'tool_calls' is not a list")
    found = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise RequestError("bad_response", "invalid response: a tool call has no "
                               "'function' object")
        found.append(tool_call(call.get("id"), function.get("name"),
                               function.get("arguments")))
    return found


class _CallParts:
    """One streamed tool call, assembled from its deltas (matched by ``index``)."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.arguments: list[str] = []
        self.whole: dict[str, Any] | None = None  # arguments sent as an object

    def add(self, delta: dict[str, Any]) -> None:
        if isinstance(delta.get("id"), str):
            self.id = delta["id"]
        function = delta.get("function") or {}
        if not isinstance(function, dict):
            raise RequestError("bad_response", "invalid response: a tool call delta has no "
                               "'function' object")
        name, arguments = function.get("name"), function.get("arguments")
        if isinstance(name, str):
            self.name += name
        if isinstance(arguments, str):
            self.arguments.append(arguments)
        elif isinstance(arguments, dict):
            self.whole = arguments
        elif arguments is not None:
            raise RequestError("bad_response", "invalid response: tool call arguments are "
                               "not text")


class RequestError(Exception):
    """One failed attempt, classified."""

    def __init__(self, kind: ErrorKind, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after


@functools.cache
def raw_events_class() -> type:
    """An SDK stream class that yields each server-sent event as it came, ``[DONE]`` too."""
    from openai import AsyncStream

    class RawEvents(AsyncStream[object]):
        async def __stream__(self) -> Any:  # type: ignore[override]
            async for event in self._iter_events():
                yield event

    return RawEvents


class StreamedAnswer:
    """Assembles the first choice of a streamed completion, event by event."""

    def __init__(self, chat: bool):
        self.chat = chat
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.finish: str | None = None
        self.usage: Any = None
        self.events = 0
        self.done = False
        self.calls: dict[int, _CallParts] = {}
        self.refusal: list[str] = []
        # A content or text field was a string, even "": an empty answer is an answer (as
        # "content": "" is unstreamed); only a stream whose content is all null has none.
        self.has_text = False

    def add(self, data: str) -> bool:
        """Take one event's data; returns whether it carried text (for time to first token)."""
        if data.startswith("[DONE]"):
            self.done = True
            return False
        if not data.strip():
            return False
        self.events += 1
        try:
            chunk = json.loads(data)
        except ValueError:
            raise RequestError("bad_response", f"invalid response: a stream event is not "
                               f"JSON: {shorten(data, 120)}") from None
        if not isinstance(chunk, dict):
            raise RequestError("bad_response", f"invalid response: unexpected stream event "
                               f"{shorten(repr(chunk), 120)}")
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise RequestError("server", f"error in the stream: {shorten(str(message))}")
        self.usage = chunk.get("usage") or self.usage
        text = False
        choices = chunk.get("choices")
        choices = [] if choices is None else choices
        if not isinstance(choices, list):
            raise RequestError("bad_response", "invalid response: 'choices' is not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise RequestError("bad_response", "invalid response: a choice is not an object")
            if choice.get("index", 0) != 0:
                continue
            delta = (choice.get("delta") or {}) if self.chat else choice
            if not isinstance(delta, dict):
                raise RequestError("bad_response", "invalid response: a delta is not an object")
            piece = delta.get("content") if self.chat else delta.get("text")
            think = delta.get("reasoning_content") if self.chat else None
            for value in (piece, think):
                if value is not None and not isinstance(value, str):
                    raise RequestError("bad_response", "invalid response: the content is not "
                                       "text")
            self.has_text = self.has_text or isinstance(piece, str)
            if piece:
                self.parts.append(piece)
            if think:
                self.reasoning.append(think)
            if self.chat:
                self._add_calls(delta.get("tool_calls"))
                if isinstance(delta.get("refusal"), str):
                    self.refusal.append(delta["refusal"])
            self.finish = choice.get("finish_reason") or self.finish
            text = text or bool(piece or think)
        return text

    def _add_calls(self, deltas: Any) -> None:
        if not deltas:
            return
        if not isinstance(deltas, list):
            raise RequestError("bad_response", "invalid response: 'tool_calls' is not a list")
        for position, delta in enumerate(deltas):
            if not isinstance(delta, dict):
                raise RequestError("bad_response", "invalid response: a tool call delta is "
                                   "not an object")
            index = delta.get("index", position)
            if not isinstance(index, int) or isinstance(index, bool):
                raise RequestError("bad_response", "invalid response: a tool call delta's "
                                   "index is not a number")
            self.calls.setdefault(index, _CallParts()).add(delta)

    def completion(self) -> Completion:
        if self.events == 0 and not self.done:
            raise RequestError("bad_response", "invalid response: the stream held no events "
                               "(is this an OpenAI-compatible endpoint?)")
        if not self.done:
            raise RequestError("connection", "the stream ended before data: [DONE] (a dropped "
                               "stream)")
        text = "".join(self.parts)
        calls = [tool_call(part.id, part.name, part.whole if part.whole is not None
                           else "".join(part.arguments))
                 for _, part in sorted(self.calls.items())] or None
        if not self.has_text and not calls and not self.refusal:
            _no_content()
        completion = Completion(text, self.finish, reasoning="".join(self.reasoning) or None,
                                refusal="".join(self.refusal) or None, tool_calls=calls)
        _add_usage(completion, self.usage)
        _check_text(completion)
        return completion


def _no_content() -> None:
    raise RequestError("bad_response", "invalid response: the answer has no content (no "
                       "text, no tool calls, no refusal)")


def _check_text(completion: Completion) -> None:
    """Text JSON can carry but UTF-8 cannot (a lone surrogate such as \\ud800) is refused
    here, before it reaches the cache, the run store or a report."""
    for value in (completion.text, completion.reasoning, completion.refusal):
        if value is None:
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError("bad_response", "invalid response: the answer holds an "
                               "unpaired surrogate (not valid Unicode text)") from None


def _token_count(usage: dict[str, Any], key: str) -> int | None:
    value = usage.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value >= 0 and value == int(value)):
        raise RequestError("bad_response", f"invalid response: usage.{key} is "
                           f"{shorten(repr(value), 40)}, not a count")
    return int(value)


def _add_usage(completion: Completion, usage: Any) -> None:
    if usage is None:
        return
    if not isinstance(usage, dict):
        raise RequestError("bad_response", "invalid response: 'usage' is not an object")
    completion.input_tokens = _token_count(usage, "prompt_tokens")
    completion.output_tokens = _token_count(usage, "completion_tokens")


def parse_response(response: Any, chat: bool) -> Completion:
    """The first choice of a completion response (a JSON object), checked."""
    refusal = calls = None
    try:
        choice = response["choices"][0]
        if chat:
            message = choice["message"]
            calls = message.get("tool_calls")
            text, reasoning = message.get("content"), message.get("reasoning_content")
            refusal = message.get("refusal")
            if text is None and (message.get("tool_calls") or isinstance(refusal, str)):
                text = ""  # a tool call or a refusal is an answer without text
        else:
            text, reasoning = choice.get("text"), None
        finish = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise RequestError("bad_response", f"invalid response: {shorten(repr(response), 120)}"
                           ) from None
    if text is None:
        _no_content()
    if not isinstance(text, str) or not isinstance(reasoning, str | None):
        raise RequestError("bad_response", "invalid response: the content is not text")
    completion = Completion(text, finish, reasoning=reasoning,
                            refusal=refusal if isinstance(refusal, str) else None,
                            tool_calls=_message_tool_calls(calls))
    _add_usage(completion, response.get("usage"))
    _check_text(completion)
    return completion
