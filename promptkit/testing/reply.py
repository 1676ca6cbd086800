"""How the fake endpoint answers one request: :class:`Reply` and its kinds.

A :class:`Reply` only describes an answer (text, echo, an HTTP error, a raw body, a stream of
events, malformed JSON, an HTML page, a hang, a dropped stream, each maybe after some
latency); :class:`~promptkit.testing.fake.FakeEndpoint` sends it. :meth:`Reply.from_dict`
builds one from a JSON object (a line of ``python -m promptkit.testing --script``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["SCRIPT_KEYS", "Reply", "ReplyKind", "Usage"]

ReplyKind = Literal[
    "text", "echo", "status", "malformed_json", "html", "hang", "drop_stream", "raw", "events"
]
Usage = dict[str, int] | Literal[False] | None

# What a JSON value may be: (the Python types json.loads gives, how the error names them).
_NUMBER = ((int, float), "a number")
_INTEGER = ((int,), "an integer")
_STRING = ((str,), "a string")
_OPTIONAL_STRING = ((str, type(None)), "a string or null")
_HEADERS = ((dict,), "an object of strings")
_USAGE = ((dict, bool, type(None)), "an object, false or null")

SCRIPT_KEYS: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "text": {"content": ((str, list), "a string or a list of strings"),
             "finish_reason": _STRING, "reasoning_content": _OPTIONAL_STRING, "usage": _USAGE,
             "latency": _NUMBER, "chunk_delay": _NUMBER},
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
"""The keys of a :meth:`Reply.from_dict` object besides ``kind``, per kind: each kind's class
method's keyword arguments (``events`` takes its events as a list), with their JSON types."""


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

    def __post_init__(self) -> None:
        if self.latency < 0 or self.chunk_delay < 0:
            raise ValueError("latency and chunk_delay must be >= 0")
        if not 100 <= self.status_code <= 599:
            raise ValueError(f"not an HTTP status code: {self.status_code}")

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
        """
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
        surrogate), ``"usage": {"prompt_tokens": "many"}``, ``"content": null``...
        """
        text = json.dumps(body) if isinstance(body, dict) else body
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
            TypeError: A dict cannot be encoded as JSON (``ValueError`` if it holds itself),
                found now as :meth:`raw` finds it, not once the stream has started.
        """
        for event in events:
            if isinstance(event, dict):
                json.dumps(event)
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
        """The reply a JSON object describes: ``kind`` names the class method (``"text"`` when
        omitted) and the other keys are its arguments (:data:`SCRIPT_KEYS`).

        ``{"content": "Paris"}`` is ``Reply.text("Paris")``; ``{"kind": "status", "code": 429,
        "retry_after": 1}`` is ``Reply.status(429, retry_after=1)``; ``{"kind": "events",
        "events": [{"a": 1}, "text"], "done": false}`` is ``Reply.events({"a": 1}, "text",
        done=False)``.

        Raises:
            ValueError: An unknown kind or key, a missing argument, a value of the wrong JSON
                type or out of range; the message says which, in one line.
        """
        arguments = dict(fields)
        kind = arguments.pop("kind", "text")
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
            raise ValueError(f"{kind}: {exc}") from None


def _check_json_type(kind: str, key: str, value: Any, types: tuple[type, ...], name: str) -> None:
    """Refuse a value of the wrong JSON type (true is not a number, 1 is not true)."""
    wrong_bool = isinstance(value, bool) and (bool not in types or (value and key == "usage"))
    if wrong_bool or not isinstance(value, types):  # usage may be false, never true
        raise ValueError(f"{kind}: {key!r} must be {name}, not {_json_type(value)}")
    items = value.values() if isinstance(value, dict) and key == "headers" else value
    if isinstance(value, list | dict) and key in ("content", "events", "headers"):
        allowed = (str, dict) if key == "events" else (str,)
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
