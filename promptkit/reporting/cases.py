"""The rows of a report's case table, one per result, made as the results stream by.

:class:`CaseRows` reads the results once and yields a :class:`CaseRow` for each of the
first ``limit``, counting the rest, so a 100,000-case run is never held in memory. A row
carries what a reader checks a case with, and why it passed or failed: its outcome, its
output (with a short preview when it is long), the prompt as sent (each chat message
labelled with its role, or the completions text), the few-shot examples chosen, the
extracted answer and the self-consistency votes, the reasoning a model sent apart, the
tool calls (arguments as indented JSON, or the text as sent flagged as invalid JSON), why
the model stopped when it was not a plain stop, a conversation's messages turn by turn,
each assertion's verdict with its reason, error and turn, and the case's variables.

Texts longer than ``TEXT_CHARS`` are cut (the row says how much was left out; the
``.jsonl`` output keeps them whole), so a long prompt repeated on thousands of rows
cannot make the page unwieldy.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..results import CaseResult
from .views import seconds, tool_call_line

PREVIEW_CHARS = 160  # an output longer than this, or of several lines, is folded
ANSWER_PREVIEW_CHARS = 80  # of the answer, shown where the output is
TEXT_CHARS = 20_000  # of one shown text: a message, an example's field, the reasoning

Status = Literal["pass", "fail", "error"]


@dataclass
class Block:
    """A labelled text: a chat message (``label`` its role), a field of a few-shot
    example (its name), or the completions prompt (no label). ``cut`` counts the
    characters left out of a long text."""

    label: str
    text: str
    cut: int = 0


def block(label: str, text: str) -> Block:
    """A :class:`Block` of ``text``, cut to ``TEXT_CHARS``."""
    return Block(label, text[:TEXT_CHARS], max(0, len(text) - TEXT_CHARS))


def check_name(assertion: Mapping[str, Any]) -> str:
    """What an assertion record is called in reports: its ``metric`` when it has one,
    else its ``type``."""
    return str(assertion.get("metric") or assertion.get("type") or "assertion")


def is_informational(assertion: Mapping[str, Any]) -> bool:
    """Whether an assertion record has weight 0: reported, but never failing its case."""
    return assertion.get("weight", 1) == 0


@dataclass
class CheckView:
    """One assertion's outcome on a case: its name (``metric``, else ``type``), its type,
    whether it passed, its score, why (``reason``) and what stopped it (``error``);
    ``informational`` for weight 0 (it never fails the case); ``turn`` for an assertion
    of a conversation's later turn (2, 3, ...)."""

    name: str
    type: str
    passed: bool
    score: str  # "0.210", or "" when the record has none
    reason: str  # "" when none
    error: str | None = None
    informational: bool = False
    turn: int | None = None  # a conversation's later turn whose answer it checked

    @property
    def status(self) -> Status:
        return "error" if self.error is not None else ("pass" if self.passed else "fail")


@dataclass
class ToolCallView:
    """One tool call: its ``name``, its ``id`` (``""`` when none), its arguments as
    indented JSON, or, when they were not JSON (``invalid``), the text as sent; ``line``
    is the call on one line (``→ get_weather({"city": "Paris"})``)."""

    name: str
    id: str
    arguments: Block
    invalid: bool
    line: str


@dataclass
class MessageView:
    """One message of a conversation: its ``role``, its text (``None`` for an answer that
    only calls tools), the ``tool_calls`` of an answer, and for a ``tool`` message the
    call it answers (``answers``: ``get_weather · call_1``)."""

    role: str
    text: Block | None
    tool_calls: list[ToolCallView] = field(default_factory=list)
    answers: str = ""


@dataclass
class TurnView:
    """One turn of a conversation: turn 1 answers the prompt, each later turn opens with
    its user message; ``messages`` are the answers, tool calls and tool results in it."""

    number: int
    messages: list[MessageView] = field(default_factory=list)


@dataclass
class CaseRow:
    """One result as the case table shows it.

    ``number`` is its place in the table (1, 2, ...), which names its parts on the page.
    ``latency`` is the request's; a ``cached`` answer keeps the one recorded when it was
    first asked for (``—`` when the cache predates latencies), as the leaderboard and the
    ``.csv`` output count it. ``output`` is the answer, or ``kind: message`` for an error;
    ``preview`` is set when it is too long or has several lines to show in full (it is
    then folded). ``prompt`` is the prompt as sent (``chat`` says whether as messages),
    ``examples`` the few-shot examples chosen, each a block per field; ``votes`` are
    ``(answer, samples)``, most voted first. ``tool_calls`` are the answer's (every
    turn's, in a conversation), ``finish_reason`` why the model stopped when it was not
    ``stop``, ``conversation`` every message after the prompt, by turn. Each is empty (or
    ``None``) when the result did not record it.
    """

    prompt_id: str
    provider_id: str
    case_id: str
    repeat: int
    status: Status
    flipped: bool
    score: str
    latency: str
    output: Block
    preview: str | None
    variables: str  # the case's variables as indented JSON
    checks: list[CheckView] = field(default_factory=list)
    number: int = 0
    prompt: list[Block] = field(default_factory=list)
    chat: bool = False
    examples: list[list[Block]] = field(default_factory=list)
    answer: Block | None = None
    answer_preview: str = ""
    votes: list[tuple[str, int]] = field(default_factory=list)
    reasoning: Block | None = None
    cached: bool = False  # served from the response cache: ``latency`` is the first call's
    tool_calls: list[ToolCallView] = field(default_factory=list)
    finish_reason: str | None = None  # "length", "tool_calls"...; None for "stop" or unknown
    conversation: list[TurnView] = field(default_factory=list)

    @property
    def checks_passed(self) -> str:
        """``2/3 passed``, over the checks that decide the case; informational ones
        (weight 0) are counted apart: ``1/1 passed, 0/1 informational``."""
        deciding = [check for check in self.checks if not check.informational]
        shown = f"{sum(check.passed for check in deciding)}/{len(deciding)} passed"
        extra = [check for check in self.checks if check.informational]
        if extra:
            shown += f", {sum(check.passed for check in extra)}/{len(extra)} informational"
        return shown

    @property
    def prompt_summary(self) -> str:
        """``prompt · 3 messages`` or ``prompt · text``."""
        if not self.chat:
            return "prompt · text"
        return f"prompt · {len(self.prompt)} message" + ("" if len(self.prompt) == 1 else "s")

    @property
    def calls_summary(self) -> str:
        """The tool calls on one line, ``; ``-separated (cut at ``PREVIEW_CHARS``)."""
        text = "; ".join(call.line for call in self.tool_calls)
        return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"

    @property
    def conversation_summary(self) -> str:
        """``conversation · 2 turns, 5 messages``."""
        messages = sum(len(turn.messages) for turn in self.conversation)
        turns = len(self.conversation)
        return (f"conversation · {turns} turn{'' if turns == 1 else 's'}, "
                f"{messages} message{'' if messages == 1 else 's'}")

    @property
    def votes_summary(self) -> str:
        """``3 of 5 votes`` for the leading answer, or ``""`` without votes."""
        if not self.votes:
            return ""
        return f"{self.votes[0][1]} of {sum(count for _, count in self.votes)} votes"


def preview(text: str, limit: int = PREVIEW_CHARS) -> str | None:
    """The first words of a long or multi-line text, on one line; ``None`` for a text short
    enough to show as it is."""
    if len(text) <= limit and "\n" not in text:
        return None
    return " ".join(text.split())[:limit]


def check_view(assertion: Mapping[str, Any]) -> CheckView:
    """An assertion record of a result (``type``, ``metric``, ``passed``, ``score``,
    ``reason``, ``error``)."""
    error, score = assertion.get("error"), assertion.get("score")
    return CheckView(check_name(assertion), str(assertion.get("type") or "assertion"),
                     bool(assertion.get("passed")),
                     f"{score:.3f}" if isinstance(score, int | float) else "",
                     str(assertion.get("reason") or ""), None if error is None else str(error),
                     is_informational(assertion), assertion_turn(assertion))


def assertion_turn(assertion: Mapping[str, Any]) -> int | None:
    """The conversation turn an assertion record checked (2, 3, ...), or ``None`` for the
    case's own assertions (they check the last answer)."""
    turn = assertion.get("turn")
    return turn if isinstance(turn, int) and not isinstance(turn, bool) else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


def _content_text(content: Any) -> str:
    """A message's content: its text, or its parts' texts with ``[image_url]`` and the
    like standing for the rest (an inline image is no text to read)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return _json(content)
    parts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
        elif isinstance(part, Mapping):
            parts.append(f"[{part.get('type', 'part')}]")
        else:
            parts.append(str(part))
    return "\n".join(parts)


def _message(message: Any) -> Block:
    if not isinstance(message, Mapping):
        return block("", _json(message))
    text = _content_text(message.get("content"))
    extra = {key: value for key, value in message.items() if key not in ("role", "content")}
    if extra:  # a name, tool calls: shown after the text
        text = f"{text}\n{_json(extra)}" if text else _json(extra)
    return block(str(message.get("role") or "message"), text)


def prompt_blocks(prompt: str | list[Any] | None) -> tuple[list[Block], bool]:
    """The prompt as sent, as blocks, and whether it was chat messages."""
    if prompt is None:
        return [], False
    if isinstance(prompt, str):
        return [block("", prompt)], False
    if isinstance(prompt, list):
        return [_message(message) for message in prompt], True
    return [block("", _json(prompt))], False


def tool_call_view(call: Any) -> ToolCallView:
    """A tool call as a result records it: ``{"id", "name", "arguments"}``, with
    ``arguments`` ``None`` and ``raw_arguments`` the text when it was not JSON."""
    if not isinstance(call, Mapping):
        return ToolCallView("?", "", block("", _json(call)), True, f"→ ?({call})")
    arguments = call.get("arguments")
    invalid = arguments is None and call.get("raw_arguments") is not None
    text = str(call["raw_arguments"]) if invalid else _json({} if arguments is None
                                                            else arguments)
    return ToolCallView(str(call.get("name") or "?"), str(call.get("id") or ""),
                        block("", text), invalid, tool_call_line(call))


def _sent_call(call: Any) -> dict[str, Any]:
    """A tool call as a conversation carries it (OpenAI's ``{"id", "function": {"name",
    "arguments": text}}``), as a result records one: arguments parsed, or kept as
    ``raw_arguments`` when they are not JSON."""
    if not isinstance(call, Mapping):
        return {"id": None, "name": "?", "arguments": None, "raw_arguments": _json(call)}
    function = call.get("function") if isinstance(call.get("function"), Mapping) else {}
    recorded: dict[str, Any] = {"id": call.get("id"), "name": function.get("name")}
    text = function.get("arguments")
    if not isinstance(text, str):
        recorded["arguments"] = text
        return recorded
    try:
        recorded["arguments"] = json.loads(text)
    except ValueError:
        recorded["arguments"], recorded["raw_arguments"] = None, text
    return recorded


def _conversation_message(message: Any, names: dict[str, str]) -> MessageView:
    """One message of a conversation; ``names`` maps the call ids seen so far to their
    tools, so a tool message says which call it answers."""
    if not isinstance(message, Mapping):
        return MessageView("message", block("", _json(message)))
    role = str(message.get("role") or "message")
    calls = [_sent_call(call) for call in message.get("tool_calls") or []]
    names.update({str(call["id"]): str(call["name"] or "?") for call in calls if call["id"]})
    text = _content_text(message.get("content"))
    extra = {key: value for key, value in message.items()
             if key not in ("role", "content", "tool_calls", "tool_call_id")}
    if extra:  # a name, a refusal: shown after the text
        text = f"{text}\n{_json(extra)}" if text else _json(extra)
    answers = ""
    if role == "tool":
        call_id = str(message.get("tool_call_id") or "")
        answers = " · ".join(part for part in (names.get(call_id, ""), call_id) if part)
    return MessageView(role, block("", text) if text or not calls else None,
                       [tool_call_view(call) for call in calls], answers)


def conversation_turns(messages: list[Any] | None) -> list[TurnView]:
    """A conversation's messages by turn: turn 1 answers the prompt, and each user
    message opens the next."""
    turns: list[TurnView] = []
    names: dict[str, str] = {}
    for message in messages or []:
        if not turns or (isinstance(message, Mapping) and message.get("role") == "user"):
            turns.append(TurnView(len(turns) + 1))
        turns[-1].messages.append(_conversation_message(message, names))
    return turns


def example_blocks(example: Any) -> list[Block]:
    """A few-shot example (a pool row), a block per field."""
    if not isinstance(example, Mapping):
        return [block("", example if isinstance(example, str) else _json(example))]
    return [block(str(name), value if isinstance(value, str) else _json(value))
            for name, value in example.items()]


def _votes(votes: Mapping[str, int] | None) -> list[tuple[str, int]]:
    # Most voted first; equal counts by answer, so identical results show identically.
    return sorted(((str(answer)[:TEXT_CHARS], int(count))
                   for answer, count in (votes or {}).items()),
                  key=lambda vote: (-vote[1], vote[0]))


def case_row(result: CaseResult, flipped: bool = False, number: int = 0) -> CaseRow:
    """One result as the case table shows it (``number``: its place in the table)."""
    status: Status = "error" if result.error is not None else (
        "pass" if result.passed else "fail")
    output = (result.output if result.error is None
              else f"{result.error_kind or 'error'}: {result.error}") or ""
    prompt, chat = prompt_blocks(result.prompt)
    answer = None if result.answer is None else block("", result.answer)
    short = None if result.answer is None else preview(result.answer, ANSWER_PREVIEW_CHARS)
    return CaseRow(
        result.prompt_id, result.provider_id, result.case_id, result.repeat, status, flipped,
        score=f"{result.score:.3f}",
        latency=seconds(result.latency_s),
        output=block("output", output), preview=preview(output),
        variables=_json(result.vars),
        checks=[check_view(a) for a in result.assertions], number=number,
        prompt=prompt, chat=chat,
        examples=[example_blocks(example) for example in result.examples or []],
        answer=answer,
        answer_preview=f"{short}…" if short is not None else (result.answer or ""),
        votes=_votes(result.votes),
        reasoning=None if not result.reasoning else block("", result.reasoning),
        cached=result.cached,
        tool_calls=[tool_call_view(call) for call in result.tool_calls or []],
        finish_reason=None if result.finish_reason in (None, "stop") else result.finish_reason,
        conversation=conversation_turns(result.conversation))


class CaseRows:
    """The case rows of ``results``, read once when iterated: the first ``limit`` become
    rows; ``shown`` and ``left_out`` count them as they go (final once iteration ends).

    Args:
        results: The results, in store order.
        flipped: ``(prompt_id, provider_id, case_id)`` of the cases a comparison flipped.
        limit: The most rows to make.
    """

    def __init__(self, results: Iterable[CaseResult],
                 flipped: Collection[tuple[str, str, str]] = (), limit: int | None = None):
        self.results = results
        self.flipped = flipped
        self.limit = limit
        self.shown = 0
        self.left_out = 0

    def __iter__(self) -> Iterator[CaseRow]:
        for result in self.results:
            if self.limit is not None and self.shown >= self.limit:
                self.left_out += 1
                continue
            self.shown += 1
            key = (result.prompt_id, result.provider_id, result.case_id)
            yield case_row(result, key in self.flipped, self.shown)
