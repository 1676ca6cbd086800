"""The rows of a report's case table, one per result, made as the results stream by.

:class:`CaseRows` reads the results once and yields a :class:`CaseRow` for each of the
first ``limit``, counting the rest, so a 100,000-case run is never held in memory. A row
carries what a reader checks a case with, and why it passed or failed: its outcome, its
output (with a short preview when it is long), the prompt as sent (each chat message
labelled with its role, or the completions text), the few-shot examples chosen, the
extracted answer and the self-consistency votes, the reasoning a model sent apart, each
assertion's verdict with its reason and error, and the case's variables.

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
from .views import seconds

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
    ``informational`` for weight 0 (it never fails the case)."""

    name: str
    type: str
    passed: bool
    score: str  # "0.210", or "" when the record has none
    reason: str  # "" when none
    error: str | None = None
    informational: bool = False

    @property
    def status(self) -> Status:
        return "error" if self.error is not None else ("pass" if self.passed else "fail")


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
    ``(answer, samples)``, most voted first. Each is empty (or ``None``) when the result
    did not record it.
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

    @property
    def checks_passed(self) -> str:
        """``2/3 passed``."""
        return f"{sum(check.passed for check in self.checks)}/{len(self.checks)} passed"

    @property
    def prompt_summary(self) -> str:
        """``prompt · 3 messages`` or ``prompt · text``."""
        if not self.chat:
            return "prompt · text"
        return f"prompt · {len(self.prompt)} message" + ("" if len(self.prompt) == 1 else "s")

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
                     is_informational(assertion))


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
        cached=result.cached)


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
