"""Conversations: a case's later user turns and the tool results that close an agent loop.

Three reserved case keys make a case a conversation:

* ``turns``: later user messages, each a string or ``{content, assert}`` (assertions of
  that turn's answer). They are sent as literal text, never rendered as templates.
* ``tool_results``: ``{tool_name: value}``; each tool call of the model is answered with
  a ``tool`` message holding the value (JSON unless a string), and the model is asked
  again.
* ``tool_handler``: ``module:function`` called with each tool call (``{"id", "name",
  "arguments"}``) and the case's variables; what it returns is the tool's result.

The runner sends the rendered prompt, appends each answer and what follows it (tool
results, then the next turn), and asks again, at most ``max_turns`` requests per case.
This module holds the pieces: reading and checking the keys, and the messages.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import warn
from ..redact import redact

__all__ = ["CONVERSATION_KEYS", "DEFAULT_MAX_TURNS", "Turn", "assistant_message",
           "case_turns", "converses", "load_tool_handler", "tool_message", "tool_result"]

CONVERSATION_KEYS = ("turns", "tool_results", "tool_handler")
DEFAULT_MAX_TURNS = 8
"""Requests to the model per case, when neither the spec nor the variant says."""


@dataclass
class Turn:
    """One later user message and the assertions of the answer to it (as written)."""

    content: str
    asserts: list[Any] = field(default_factory=list)


def converses(reserved: Mapping[str, Any]) -> bool:
    """Whether a case with these reserved keys is a conversation."""
    return any(reserved.get(key) not in (None, "", [], {}) for key in CONVERSATION_KEYS)


def case_turns(raw: Any) -> list[Turn]:
    """A case's ``turns``, checked.

    Raises:
        ValueError: ``(message, key path within the case)``.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("turns must be a list of user messages (texts, or mappings with "
                         "content and assert)", ["turns"])
    turns = []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            turns.append(Turn(item))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            raise ValueError("a turn is a text, or a mapping with a text content (and an "
                             "assert list)", ["turns", index])
        unknown = sorted(set(item) - {"content", "assert"})
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (a turn takes content and assert)",
                             ["turns", index, unknown[0]])
        asserts = item.get("assert") or []
        if not isinstance(asserts, list):
            raise ValueError("a turn's assert must be a list of assertions",
                             ["turns", index, "assert"])
        turns.append(Turn(item["content"], asserts))
    return turns


def check_tool_results(raw: Any, declared: set[str]) -> None:
    """A case's ``tool_results`` names only tools the prompts declare.

    Raises:
        ValueError: ``(message, key path within the case)``.
    """
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise ValueError("tool_results must map tool names to their results",
                         ["tool_results"])
    for name in raw:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none: no template of this eval has tools"
            raise ValueError(f"tool_results names {name!r}, a tool no prompt declares "
                             f"(declared: {known})", ["tool_results", name])


@functools.cache
def load_tool_handler(reference: str) -> Callable[..., Any]:
    """The function ``module:function`` names (imported from the spec's folder or the
    working directory, as ``python`` assertions are).

    Raises:
        ValueError: not ``module:function``, or it cannot be imported or called.
    """
    module_name, _, attribute_path = reference.partition(":") if isinstance(
        reference, str) else ("", "", "")
    if not (module_name and attribute_path):
        raise ValueError(f"tool_handler must be 'module:function', not {reference!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for name in attribute_path.split("."):
            target = getattr(target, name)
    except Exception as exc:  # an import runs user code: any failure is a config error
        raise ValueError(f"cannot load tool_handler {reference!r}: "
                         f"{type(exc).__name__}: {exc}") from None
    if not callable(target):
        raise ValueError(f"tool_handler {reference!r} is not callable")
    return target


def assistant_message(text: str, calls: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The answer as the next request carries it (OpenAI's chat format)."""
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls
                               else None}
    if calls:
        message["tool_calls"] = [
            {"id": call.get("id") or f"call_{index}", "type": "function",
             "function": {"name": call["name"],
                          "arguments": call.get("raw_arguments") if call.get("arguments")
                          is None else json.dumps(call["arguments"], ensure_ascii=False)}}
            for index, call in enumerate(calls, 1)]
    return message


def tool_message(call_id: str, value: Any) -> dict[str, Any]:
    """A tool's result, as the ``tool`` message answering the call ``call_id``."""
    content = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                              default=str)
    return {"role": "tool", "tool_call_id": call_id, "content": redact(content)}


async def tool_result(call: dict[str, Any], reserved: Mapping[str, Any],
                      variables: Mapping[str, Any]) -> Any:
    """What answers one tool call: the case's ``tool_results`` entry, else its
    ``tool_handler``'s answer, else an error the model can read (as an app would send).

    A plain function runs in a worker thread, so a slow one holds up only its own case. One
    that raises answers with the error too (the model may recover, and the case's
    assertions judge the outcome), and a warning names it once: a bug in a handler should
    not pass unseen.
    """
    results = reserved.get("tool_results") or {}
    if call["name"] in results:
        return results[call["name"]]
    reference = reserved.get("tool_handler") or None
    if reference is None:
        return {"error": f"no result for tool {call['name']!r} in this case"}
    handler = load_tool_handler(reference)
    try:
        if inspect.iscoroutinefunction(handler):
            value = await handler(dict(call), dict(variables))
        else:
            value = await asyncio.to_thread(handler, dict(call), dict(variables))
            if inspect.isawaitable(value):
                value = await value
    except Exception as exc:
        problem = redact(f"{type(exc).__name__}: {exc}")
        warn(f"tool_handler {reference} raised {problem}; the model got the error as the "
             "tool's result")
        return {"error": problem}
    return value


@dataclass
class Conversation:
    """What a conversation produced, for the runner to record and score.

    Attributes:
        messages: Every message after the rendered prompt, in order.
        answers: Per request: the completion, or None when it failed, and its outcome
            (None when the cache answered).
        turn_answers: Per turn (1: the answer to the prompt, 2: to the first of ``turns``,
            ...): the turn's last answer text and every tool call made in the turn.
        stopped: Why ``max_turns`` ended it early (None: it ended when the case did).
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[Any, Any]] = field(default_factory=list)
    turn_answers: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    stopped: str | None = None

    @property
    def completions(self) -> list[Any]:
        return [completion for completion, _ in self.answers if completion is not None]


Ask = Callable[[list[dict[str, Any]]], Any]
"""Sends the messages so far; returns ``(completion or None, outcome or None)``."""


async def converse(prompt: list[dict[str, Any]], turns: list[Turn],
                   reserved: Mapping[str, Any], variables: Mapping[str, Any],
                   max_turns: int, ask: Ask) -> Conversation:
    """Run one conversation: the prompt, each answer's tool calls answered while the case
    has results for them, then each later turn, at most ``max_turns`` requests.

    Tool calls are answered before a later turn too (with the case's results, else an error
    the model can read): a chat API refuses a user message right after unanswered calls.
    """
    talk = Conversation()
    loops = bool(reserved.get("tool_results") or reserved.get("tool_handler"))
    pending = list(turns)
    text, calls, calling = "", [], False
    while True:
        if len(talk.answers) == max_turns:
            if calling:  # the turn in progress was still calling tools
                talk.turn_answers.append((text, calls))
                talk.stopped = "before a final answer: the model was still calling tools"
                if pending:
                    talk.stopped += f", with {len(pending)} later turn(s) not asked"
            else:
                talk.stopped = f"with {len(pending) + 1} later turn(s) not answered"
            return talk
        completion, outcome = await ask([*prompt, *talk.messages])
        talk.answers.append((completion, outcome))
        if completion is None:
            return talk
        text, made = completion.text, completion.tool_calls or []
        calls += made
        talk.messages.append(assistant_message(text, made))
        if made and (loops or pending):
            sent = talk.messages[-1]["tool_calls"]
            for call, message in zip(made, sent, strict=True):
                value = await tool_result(call, reserved, variables)
                talk.messages.append(tool_message(message["id"], value))
            if loops:
                calling = True
                continue
        talk.turn_answers.append((text, calls))
        text, calls, calling = "", [], False
        if not pending:
            return talk
        talk.messages.append({"role": "user", "content": pending.pop(0).content})
