"""What a responder is and what its answer means: the one contract of
:meth:`~promptkit.testing.FakeEndpoint.respond_with` and ``python -m promptkit.testing
--responder``.

:class:`RecordedRequest` is what a responder is called with; :func:`as_reply` turns what it
returns into a :class:`~promptkit.testing.Reply` (or refuses it); :func:`call_responder`
runs an ``async def`` responder to its end; :func:`in_new_thread` is how the endpoint calls
a responder without blocking its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import payloads
from .reply import Reply

__all__ = ["RecordedRequest", "Responder", "ResponderErrorHook", "UnsendableAnswer",
           "as_reply", "call_responder", "describe_exception", "in_new_thread"]

_Answer = str | dict[str, Any] | Reply | None
Responder = Callable[["RecordedRequest"], _Answer | Awaitable[_Answer]]
"""A function deciding each completion's reply: see :func:`as_reply` for what it returns. It
may be an ``async def`` function (see :func:`call_responder`)."""
ResponderErrorHook = Callable[["RecordedRequest", str], None]
"""Told of each request a responder failed: the request and the message of the 500 sent."""

@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request received by :class:`FakeEndpoint`.

    Attributes:
        method: ``"POST"``, ``"GET"``...
        path: The path without the query string, e.g. ``"/v1/chat/completions"``.
        headers: Header names lower-cased; repeated headers joined with ``", "``.
        body: The parsed JSON body, or ``None`` when empty or not JSON.
        prompt_text: All message contents joined by newlines (chat), the prompt
            (completions) or the inputs (embeddings); ``""`` otherwise.
        received_at: ``time.monotonic()`` when the request was fully read.

    The properties read the conversation a chat request carries, for responders whose
    answer depends on it (e.g. a tool call at turn 1, an answer from its result at turn 2).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    prompt_text: str
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The body's ``messages`` (the objects among them); ``[]`` when it has none."""
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

    @property
    def last_user_message(self) -> str | None:
        """The text of the last ``user`` message (its text parts joined); ``None`` if none."""
        users = [message for message in self.messages if message.get("role") == "user"]
        return payloads.message_text(users[-1]) if users else None

    @property
    def tool_results(self) -> dict[str, str]:
        """The text of each ``tool`` message, keyed both by its ``tool_call_id`` and by the
        name of the function that call named (a function called twice: its latest result)."""
        return payloads.tool_results(self.messages)

    @property
    def turn(self) -> int:
        """Which answer of the conversation is asked for: the assistant messages so far + 1."""
        return 1 + sum(message.get("role") == "assistant" for message in self.messages)


class UnsendableAnswer(ValueError):
    """A responder's answer the endpoint cannot send: the message is the 500's, in one line."""


def call_responder(responder: Responder, request: RecordedRequest) -> Any:
    """``responder(request)``; when that is a coroutine (an ``async def`` responder), run it
    to its end with ``asyncio.run`` in this thread, on an event loop of its own.

    The endpoint calls it in a new thread per request, so each call of an async responder
    gets a fresh event loop: create async clients inside the function (``async with``), as
    one kept from an earlier call belongs to a loop that is closed.
    """
    answer = responder(request)
    if inspect.iscoroutine(answer):
        return asyncio.run(answer)
    return answer


def as_reply(answer: object, request: RecordedRequest) -> Reply | None:
    """What a responder's answer means: the one contract of :meth:`FakeEndpoint.respond_with`
    and ``python -m promptkit.testing --responder``.

    - a ``str``: the answer text, ``Reply.text(answer)``;
    - a ``dict`` with a ``tool_calls`` key (and no ``choices``): a tool-call reply,
      ``Reply.from_dict(answer)``, e.g. ``{"tool_calls": [{"name": "get_weather",
      "arguments": {"city": "Paris"}}], "text": "Checking."}``, streamed or not;
    - any other ``dict``: a whole response body, ``Reply.raw(answer)`` (status 200, sent as
      given). When the request streams (``"stream": true``), a chat completion (its
      ``choices`` each hold a ``message``) is streamed as OpenAI streams it (text in
      pieces, tool calls as deltas), and any other dict as one event, either followed by
      ``data: [DONE]`` (:func:`~promptkit.testing.payloads.dict_as_events`);
    - a :class:`Reply`: sent as it is;
    - ``None``: the endpoint's :attr:`~FakeEndpoint.default`, returned as ``None``.

    Raises:
        UnsendableAnswer: Anything else, or a dict that cannot be sent: one JSON cannot encode
            (a set; NaN or an infinity, which ``json.dumps`` would write as ``NaN``, not JSON),
            or a ``{"tool_calls": [...]}`` with a mistake. The endpoint answers 500 with its
            message.
    """
    if answer is None or isinstance(answer, Reply):
        return answer
    if isinstance(answer, str):
        return Reply.text(answer)
    if not isinstance(answer, dict):
        raise UnsendableAnswer(f"the responder returned {type(answer).__name__}: return a str, "
                               "a dict, a Reply or None")
    try:  # a dict is JSON-encoded here, streamed or not, so that it fails before any byte
        if "tool_calls" in answer and "choices" not in answer:
            return Reply.from_dict(answer)
        if isinstance(request.body, dict) and request.body.get("stream"):
            return Reply.events(*payloads.dict_as_events(answer))
        return Reply.raw(answer)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = " ".join(str(exc).split())
        raise UnsendableAnswer(f"the responder's answer cannot be sent: {reason}") from None


def describe_exception(exc: BaseException) -> str:
    """``repr(exc)``, or its type's name when even that raises."""
    try:
        return repr(exc)
    except BaseException:
        return type(exc).__name__


async def in_new_thread(call: Callable[[], Reply | None]) -> Reply | None:
    """Run ``call`` in a new daemon thread and await its result.

    A thread per call, not a pool: however many calls block, none waits for a free worker,
    and a daemon thread blocked for ever neither stops the server nor delays the process's
    exit. ``call`` must not raise.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Reply | None] = loop.create_future()

    def deliver(result: Reply | None) -> None:
        if not done.done():  # not cancelled by the server stopping meanwhile
            done.set_result(result)

    def run() -> None:
        result = call()
        with contextlib.suppress(RuntimeError):  # the server stopped and closed its loop
            loop.call_soon_threadsafe(deliver, result)

    threading.Thread(target=run, name="promptkit-fake-responder", daemon=True).start()
    return await done
