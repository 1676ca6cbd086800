"""How the fake endpoint answers one request: :class:`Reply` and its kinds.

A :class:`Reply` only describes an answer (text, JSON text, tool calls, echo, an HTTP error, a
raw body, a stream of events, malformed JSON, an HTML page, a hang, a dropped stream, each
maybe after some latency); :class:`~promptkit.testing.fake.FakeEndpoint` sends it.
:meth:`Reply.from_dict` builds one from a JSON object (a line of ``python -m promptkit.testing
--script``).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["SCRIPT_KEYS", "Reply", "ReplyKind", "ToolCall", "Usage", "json_text"]

ReplyKind = Literal[
    "text", "tool_calls", "echo", "status", "malformed_json", "html", "hang", "drop_stream",
    "raw", "events",
]
Usage = dict[str, int] | Literal[False] | None

# What a JSON value may be: (the Python types json.loads gives, how the error names them).
_NUMBER = ((int, float), "a number")
_INTEGER = ((int,), "an integer")
_STRING = ((str,), "a string")
_OPTIONAL_STRING = ((str, type(None)), "a string or null")
_HEADERS = ((dict,), "an object of strings")
_USAGE = ((dict, bool, type(None)), "an object, false or null")
_ANY = ((dict, list, str, int, float, bool, type(None)), "any JSON value")

SCRIPT_KEYS: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "text": {"content": ((str, list), "a string or a list of strings"),
             "finish_reason": _STRING, "reasoning_content": _OPTIONAL_STRING, "usage": _USAGE,
             "latency": _NUMBER, "chunk_delay": _NUMBER},
    "json": {"value": _ANY, "finish_reason": _STRING, "usage": _USAGE, "latency": _NUMBER,
             "chunk_delay": _NUMBER},
    "tool_calls": {"tool_calls": ((list,), "a list of objects"), "text": _OPTIONAL_STRING,
                   "finish_reason": _STRING, "reasoning_content": _OPTIONAL_STRING,
                   "usage": _USAGE, "latency": _NUMBER, "chunk_delay": _NUMBER},
    "echo": {"usage": _USAGE, "latency": _NUMBER, "chunk_delay": _NUMBER},
    "status": {"code": _INTEGER, "body": ((dict, str, type(None)), "an object, a string or null"),
               "retry_after": ((int, float, type(None)), "a number or null"),
               "headers": _HEADERS, "latency": _NUMBER},
    "raw": {"body": ((dict, str), "an object or a string"), "status": _INTEGER,
            "headers": _HEADERS, "latency": _NUMBER},
    "events": {"events": ((list,), "a list of objects and strings"),
               "done": ((bool,), "true or false"), "latency": _NUMBER, "chunk_delay": _NUMBER},
    "malformed_json": {"latency": _NUMBER},
    "html": {"status": _INTEGER, "latency": _NUMBER},
    "hang": {},
    "drop_stream": {"after_chunks": _INTEGER, "content": _OPTIONAL_STRING, "latency": _NUMBER},
}
"""The keys of a :meth:`Reply.from_dict` object besides ``kind``, per kind: the arguments of
the class method of that name (``events`` takes its events as a list), with their JSON types.
Every kind is a :data:`ReplyKind` but ``json``, which builds a ``text`` reply."""

TOOL_CALL_KEYS = ("name", "arguments", "id")

# What RFC 9110 lets a response header carry: a token for the name; visible ASCII, spaces,
# tabs and Latin-1 bytes for the value (the server writes the head as Latin-1). Above all no
# CR or LF, which would end the header and start another, or the body.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def json_text(value: Any, *, ensure_ascii: bool = True) -> str:
    """``value`` as JSON text that any JSON parser reads: ``json.dumps`` without ``NaN``.

    Raises:
        TypeError: JSON cannot encode ``value`` (a set, an object...).
        ValueError: ``value`` holds NaN or an infinity, which ``json.dumps`` would write as
            ``NaN`` or ``Infinity``, not JSON; or it holds itself.
    """
    return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=False)


@dataclass(frozen=True)
class ToolCall:
    """One function call of a :meth:`Reply.tool_calls` reply.

    Attributes:
        name: The function's name.
        arguments: The arguments as the JSON text sent (valid JSON or not).
        id: The call's id; ``None`` until the endpoint numbers it (``call_1``, ``call_2``...).
    """

    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """How :class:`FakeEndpoint` answers one completion request; build it with a class method.

    Every kind but ``hang`` waits ``latency`` seconds before the first byte (the time to first
    token when streaming), on the server's event loop, so other requests are not held up.
    """

    kind: ReplyKind
    content: tuple[str, ...] | None = None
    latency: float = 0.0
    usage: Usage = None
    finish_reason: str = "stop"
    reasoning_content: str | None = None
    chunk_delay: float = 0.0
    status_code: int = 200
    body: dict[str, Any] | str | None = None
    retry_after: float | None = None
    after_chunks: int = 2
    headers: tuple[tuple[str, str], ...] = ()
    sse_events: tuple[Any, ...] = ()
    done: bool = True
    calls: tuple[ToolCall, ...] = ()

    def __post_init__(self) -> None:
        if not (self.latency >= 0 and self.chunk_delay >= 0):  # NaN too
            raise ValueError("latency and chunk_delay must be >= 0")
        if not 100 <= self.status_code <= 599:
            raise ValueError(f"not an HTTP status code: {self.status_code}")
        for name, value in self.headers:
            _check_header(name, value)

    @classmethod
    def text(
        cls,
        content: str | Sequence[str],
        *,
        finish_reason: str = "stop",
        reasoning_content: str | None = None,
        usage: Usage = None,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> Reply:
        """A normal completion answering ``content``.

        Args:
            content: The answer. A sequence gives choice ``i`` of an ``n > 1`` request
                ``content[i % len(content)]`` (e.g. to test self-consistency voting).
            finish_reason: ``"stop"``, ``"length"``, ``"content_filter"``...
            reasoning_content: Sent as ``message.reasoning_content`` (the field DeepSeek, vLLM
                and llama.cpp use for reasoning models); streamed before the content.
            usage: ``None`` estimates tokens as whitespace-separated words (prompt: all
                message contents or the prompt; completion: every choice's content and
                reasoning), which is good enough for tests. A dict overrides those counts
                (``total_tokens`` is recomputed unless given). ``False`` omits ``usage``,
                like servers that do not report it.
            latency: Seconds before the first byte.
            chunk_delay: Seconds between streamed chunks.
        """
        contents = (content,) if isinstance(content, str) else tuple(content)
        if not contents:
            raise ValueError("content must not be an empty sequence")
        return cls(
            "text",
            content=contents,
            latency=latency,
            usage=usage,
            finish_reason=finish_reason,
            reasoning_content=reasoning_content,
            chunk_delay=chunk_delay,
        )

    @classmethod
    def json(
        cls,
        value: Any,
        *,
        finish_reason: str = "stop",
        usage: Usage = None,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> Reply:
        """A normal completion answering ``value`` as JSON text: :meth:`text` of
        ``json.dumps(value, ensure_ascii=False)`` (non-ASCII characters as a model writes them).

        Raises:
            TypeError: JSON cannot encode ``value`` (``ValueError`` if it holds NaN, an
                infinity or itself).
        """
        return cls.text(json_text(value, ensure_ascii=False), finish_reason=finish_reason,
                        usage=usage, latency=latency, chunk_delay=chunk_delay)

    @classmethod
    def tool_calls(
        cls,
        tool_calls: Sequence[Mapping[str, Any]],
        *,
        text: str | None = None,
        finish_reason: str = "tool_calls",
        reasoning_content: str | None = None,
        usage: Usage = None,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> Reply:
        """An answer calling functions, as a chat completion's ``message.tool_calls``.

        Each call is ``{"id": "call_N", "type": "function", "function": {"name": ...,
        "arguments": <JSON text>}}``. A streamed answer sends them as OpenAI does: for each call
        a delta with its ``index``, ``id``, ``type``, ``function.name`` and empty
        ``arguments``, then the arguments in several fragments with the same ``index``.
        Chat completions only (a legacy completions request gets a 400).

        Args:
            tool_calls: One mapping per call: ``name`` (required), ``arguments`` (a str is
                sent as is, valid JSON or not; anything else as ``json.dumps``; ``{}`` when
                omitted) and ``id`` (when omitted the endpoint numbers the calls ``call_1``,
                ``call_2``... on from the calls already in the conversation, so ids stay
                unique across turns).
            text: ``message.content`` besides the calls (streamed before them); ``None``
                sends ``"content": null``, as OpenAI does.
            finish_reason: ``"tool_calls"``; some servers (Ollama) send ``"stop"``.
            reasoning_content: As for :meth:`text`.
            usage: As for :meth:`text`; the estimate counts the calls' names and arguments.
            latency: Seconds before the first byte.
            chunk_delay: Seconds between streamed chunks.

        Raises:
            ValueError: No calls, a call that is not a mapping, lacks a ``name`` or has
                another key, or arguments holding NaN or an infinity; the message says which
                call, in one line.
            TypeError: JSON cannot encode a call's arguments.
        """
        if not tool_calls:
            raise ValueError("tool_calls must not be empty (a reply without calls is text)")
        calls = tuple(_tool_call(position, call) for position, call in enumerate(tool_calls))
        return cls(
            "tool_calls",
            content=None if text is None else (text,),
            latency=latency,
            usage=usage,
            finish_reason=finish_reason,
            reasoning_content=reasoning_content,
            chunk_delay=chunk_delay,
            calls=calls,
        )

    @classmethod
    def echo(cls, *, usage: Usage = None, latency: float = 0.0, chunk_delay: float = 0.0) -> Reply:
        """Answer with the last user message (chat) or the prompt (completions).

        Args:
            usage: As for :meth:`text`.
            latency: Seconds before the first byte.
            chunk_delay: Seconds between streamed chunks.
        """
        return cls("echo", latency=latency, usage=usage, chunk_delay=chunk_delay)

    @classmethod
    def status(
        cls,
        code: int,
        *,
        body: dict[str, Any] | str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        latency: float = 0.0,
    ) -> Reply:
        """An HTTP error with an OpenAI-style body ``{"error": {"message", "type", "code"}}``.

        Args:
            code: The HTTP status, e.g. 429 or 500.
            body: A dict is sent verbatim as the JSON body; a string replaces the message.
            retry_after: Seconds for the ``Retry-After`` header (omitted when ``None``).
            headers: More response headers, sent as given (e.g. a garbage ``Retry-After``
                or ``retry-after-ms``).
            latency: Seconds before answering.

        Raises:
            ValueError: A header name or value an HTTP response cannot carry (CR, LF,
                another control character, or not Latin-1); a dict body holding NaN, an
                infinity or itself.
            TypeError: JSON cannot encode a dict body.
        """
        if isinstance(body, dict):
            json_text(body)  # refused now, not once the request is being answered
        return cls("status", latency=latency, status_code=code, body=body,
                   retry_after=retry_after, headers=tuple((headers or {}).items()))

    @classmethod
    def raw(
        cls,
        body: str | bytes | dict[str, Any],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        latency: float = 0.0,
    ) -> Reply:
        """Any body, sent as given with ``Content-Type: application/json`` (a dict as JSON).

        For answers no well-behaved server sends: a string holding ``"\\ud800"`` (a lone
        surrogate), ``"usage": {"prompt_tokens": "many"}``, ``"content": null``... (a body
        that is not JSON at all is a string; a dict must be JSON).

        Raises:
            TypeError: JSON cannot encode a dict body.
            ValueError: A dict body holds NaN, an infinity or itself; a header name or value
                an HTTP response cannot carry (CR, LF, another control character, or not
                Latin-1).
        """
        text = json_text(body) if isinstance(body, dict) else body
        return cls("raw", latency=latency, status_code=status,
                   body=text.decode() if isinstance(text, bytes) else text,
                   headers=tuple((headers or {}).items()))

    @classmethod
    def events(
        cls,
        *events: dict[str, Any] | str,
        done: bool = True,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> Reply:
        """A server-sent-event stream of exactly these events, then ``data: [DONE]`` when
        ``done``, and a complete HTTP body either way (unlike :meth:`drop_stream`).

        A dict is sent as JSON, a string as the ``data:`` text. Streaming requests only.

        Raises:
            TypeError: A dict cannot be encoded as JSON (``ValueError`` if it holds NaN, an
                infinity or itself), found now as :meth:`raw` finds it, not once the stream
                has started.
        """
        for event in events:
            if isinstance(event, dict):
                json_text(event)
        return cls("events", latency=latency, chunk_delay=chunk_delay, sse_events=events,
                   done=done)

    @classmethod
    def malformed_json(cls, *, latency: float = 0.0) -> Reply:
        """Status 200 and ``Content-Type: application/json``, but a truncated JSON body.

        A streaming request gets a ``text/event-stream`` whose ``data:`` line is not JSON.
        """
        return cls("malformed_json", latency=latency)

    @classmethod
    def html(cls, status: int = 200, *, latency: float = 0.0) -> Reply:
        """An HTML page (what a misconfigured proxy or a wrong base URL returns)."""
        return cls("html", latency=latency, status_code=status)

    @classmethod
    def hang(cls) -> Reply:
        """Never answer: hold the connection until the client goes away or the server stops."""
        return cls("hang")

    @classmethod
    def drop_stream(
        cls, after_chunks: int = 2, *, content: str | None = None, latency: float = 0.0
    ) -> Reply:
        """Close the TCP connection in the middle of the answer.

        A streaming request gets ``after_chunks`` SSE chunks (in chat, the first one carries
        only the role), then the connection closes without ``[DONE]`` and without the final empty
        HTTP chunk, so clients see a truncated body. A non-streaming request gets the headers
        and half the JSON body, then the close.

        Args:
            after_chunks: How many SSE chunks to send before closing.
            content: The answer being cut off; ``None`` echoes the prompt.
            latency: Seconds before the first byte.
        """
        contents = None if content is None else (content,)
        return cls("drop_stream", content=contents, latency=latency, after_chunks=after_chunks)

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> Reply:
        """The reply a JSON object describes: ``kind`` names the class method and the other
        keys are its arguments (:data:`SCRIPT_KEYS`); without ``kind`` it is ``"tool_calls"``
        when the object has a ``tool_calls`` key, else ``"text"``.

        ``{"content": "Paris"}`` is ``Reply.text("Paris")``; ``{"tool_calls": [{"name": "f",
        "arguments": {"x": 1}}]}`` is ``Reply.tool_calls([{"name": "f", "arguments": {"x":
        1}}])``; ``{"kind": "json", "value": {"city": "Paris"}}`` is ``Reply.json({"city":
        "Paris"})``; ``{"kind": "status", "code": 429, "retry_after": 1}`` is
        ``Reply.status(429, retry_after=1)``; ``{"kind": "events", "events": [{"a": 1},
        "text"], "done": false}`` is ``Reply.events({"a": 1}, "text", done=False)``.

        Raises:
            ValueError: An unknown kind or key, a missing argument, a value of the wrong JSON
                type or out of range; the message says which, in one line.
        """
        arguments = dict(fields)
        kind = arguments.pop("kind", "tool_calls" if "tool_calls" in arguments else "text")
        if not isinstance(kind, str) or kind not in SCRIPT_KEYS:
            raise ValueError(f"unknown kind {kind!r} (kinds: {', '.join(SCRIPT_KEYS)})")
        keys = SCRIPT_KEYS[kind]
        for key, value in arguments.items():
            if key not in keys:
                known = f"keys: {', '.join(keys)}" if keys else f"{kind} takes none"
                raise ValueError(f"{kind}: unknown key {key!r} ({known})")
            _check_json_type(kind, key, value, *keys[key])
        builder = getattr(cls, kind)
        missing = [name for name, parameter in inspect.signature(builder).parameters.items()
                   if parameter.default is parameter.empty and name not in arguments
                   and parameter.kind is not parameter.VAR_POSITIONAL]
        if missing:
            raise ValueError(f"{kind}: missing {missing[0]!r}")
        events = arguments.pop("events", ())
        try:
            return builder(*events, **arguments)
        except ValueError as exc:
            reason = str(exc)  # "tool_calls[0]: ..." names its kind already
            raise ValueError(reason if reason.startswith(kind) else f"{kind}: {reason}") from None


def _tool_call(position: int, call: Any) -> ToolCall:
    """One call of :meth:`Reply.tool_calls`, its arguments as the JSON text to send."""
    where = f"tool_calls[{position}]"
    if not isinstance(call, Mapping):
        raise ValueError(f"{where} must be an object like {{\"name\": \"get_weather\", "
                         f"\"arguments\": {{\"city\": \"Paris\"}}}}, not {_json_type(call)}")
    unknown = [key for key in call if key not in TOOL_CALL_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(TOOL_CALL_KEYS)})")
    name, call_id = call.get("name"), call.get("id")
    if "name" not in call:
        raise ValueError(f"{where}: missing 'name'")
    if not isinstance(name, str) or not name:
        shown = "an empty string" if name == "" else _json_type(name)
        raise ValueError(f"{where}: 'name' must be a function name, not {shown}")
    if call_id is not None and not isinstance(call_id, str):
        raise ValueError(f"{where}: 'id' must be a string, not {_json_type(call_id)}")
    arguments = call.get("arguments", {})
    if not isinstance(arguments, str):
        try:
            arguments = json_text(arguments, ensure_ascii=False)
        except ValueError as exc:
            raise ValueError(f"{where}: 'arguments': {exc}") from None
    return ToolCall(name, arguments, call_id)


def _check_header(name: Any, value: Any) -> None:
    """Refuse a header the response head cannot carry as given (it would split or garble it)."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"headers: {name!r} is not an HTTP header name (letters, digits and "
                         "!#$%&'*+-.^_`|~ only)")
    if not isinstance(value, str):
        raise ValueError(f"headers: {name!r} must be a string, not {_json_type(value)}")
    if not _HEADER_VALUE.fullmatch(value):
        raise ValueError(f"headers: {name!r}: {value!r} cannot be sent in an HTTP header "
                         "(Latin-1 text without CR, LF or other control characters)")


def _check_json_type(kind: str, key: str, value: Any, types: tuple[type, ...], name: str) -> None:
    """Refuse a value of the wrong JSON type (true is not a number, 1 is not true)."""
    wrong_bool = isinstance(value, bool) and (bool not in types or (value and key == "usage"))
    if wrong_bool or not isinstance(value, types):  # usage may be false, never true
        raise ValueError(f"{kind}: {key!r} must be {name}, not {_json_type(value)}")
    items = value.values() if isinstance(value, dict) and key == "headers" else value
    if isinstance(value, list | dict) and key in ("content", "events", "headers", "tool_calls"):
        allowed = {"events": (str, dict), "tool_calls": (dict,)}.get(key, (str,))
        odd = [item for item in items if not isinstance(item, allowed)]
        if odd:
            held = f"{_json_type(value)} holding {_json_type(odd[0])}"
            raise ValueError(f"{kind}: {key!r} must be {name}, not {held}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return json.dumps(value)
    names = { int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
