"""The records an eval run produces: one :class:`CaseResult` per request, one :class:`RunInfo`.

These are what the run store saves, what reports aggregate and what output files
contain. ``RESULT_FORMAT`` is bumped whenever a field changes meaning.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

RESULT_FORMAT = 1

ErrorKind = Literal[
    "rate_limit",  # 429 still failing after retries
    "server",  # 5xx still failing after retries
    "timeout",  # attempt or total timeout
    "connection",  # refused, reset, dropped stream
    "client",  # other 4xx: bad request, auth; not retried
    "bad_response",  # 200 with invalid JSON, HTML, or an unexpected shape
    "render",  # the template could not be rendered for this case
    "scoring",  # an assertion could not be evaluated (e.g. its text names a missing field)
    "grader",  # a judge or embeddings provider did not answer: an outage, like the above
    "internal",  # an unexpected error in promptkit while running this case (a bug)
]

OUTAGE_KINDS: frozenset[str] = frozenset({"rate_limit", "server", "timeout", "connection",
                                          "grader"})
"""Error kinds that say nothing about the prompt: the endpoint (or a grader) did not
answer. Comparisons leave such cases out; thresholds still count them as failures."""

RunStatus = Literal["running", "finished", "interrupted", "failed"]


@dataclass
class CaseResult:
    """One prompt × provider × case × repeat: the request's outcome and its scores.

    ``error`` is set when no usable output was obtained (or scoring failed); such a
    result never passes. Latencies are seconds, ``cost`` is USD.
    """

    prompt_id: str
    provider_id: str
    case_id: str
    case_index: int
    repeat: int = 0
    vars: dict[str, Any] = field(default_factory=dict)
    output: str | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    passed: bool = False
    score: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    latency_s: float | None = None
    ttft_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    cached: bool = False
    attempts: int = 0
    requests: int = 1  # API calls behind this result (self-consistency makes several)
    # Seconds spent generating, summed over this result's requests (latency − TTFT each):
    # parallel samples overlap in wall time, so their tokens/s needs the sum. None when
    # some samples came from the cache.
    generation_s: float | None = None
    template_sha256: str | None = None
    answer: str | None = None  # the extracted (or voted) answer, with chain-of-thought
    votes: dict[str, int] | None = None  # self-consistency: answer -> samples that gave it
    reasoning: str | None = None  # what a reasoning model sent apart (reasoning_content)
    usage_estimated: bool = False  # the server reported no usage: tokens counted by tiktoken
    prompt: str | list[dict[str, Any]] | None = None  # as sent: chat messages or text
    examples: list[dict[str, Any]] | None = None  # the few-shot examples chosen
    # The function calls of the (final) answer: {"id", "name", "arguments"} with the
    # arguments parsed, plus "raw_arguments" when they were not JSON.
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None  # of the (final) answer: "stop", "length", "tool_calls"
    # A multi-turn case: every message after the rendered prompt, in order (assistant
    # answers with their tool calls, tool results, later user turns); None for one turn.
    conversation: list[dict[str, Any]] | None = None
    category: str | None = None  # the case's group (its ``category``, or the spec's field)
    started_at: float | None = None  # epoch seconds its first request was sent (not cached)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.prompt_id, self.provider_id, self.case_id, self.repeat)

    def to_dict(self) -> dict[str, Any]:
        # A shallow copy: the nested values are plain JSON data already, and
        # dataclasses.asdict's deep copy is a hot spot at thousands of results.
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class RunInfo:
    """One run of one eval spec."""

    run_id: str
    eval_path: str
    spec_hash: str
    status: RunStatus
    started_at: float
    finished_at: float | None = None
    config: dict[str, Any] = field(default_factory=dict)  # resolved spec, never secrets
    planned: int | None = None  # expected number of results, when known
    format: int = RESULT_FORMAT


def spec_order(prompt_ids: Sequence[str], provider_ids: Sequence[str]
               ) -> Callable[[Any], tuple[int, int]]:
    """A sort key putting rows (anything with ``prompt_id`` and ``provider_id``) in the
    spec's prompt then provider order; the store yields ids sorted by name. Unknown ids
    go last."""
    prompts = {p: i for i, p in enumerate(prompt_ids)}
    providers = {p: i for i, p in enumerate(provider_ids)}
    return lambda row: (prompts.get(row.prompt_id, len(prompts)),
                        providers.get(row.provider_id, len(providers)))


CALL_CHARS = 80  # of a tool call's arguments in its one-line form


def tool_call_line(call: Mapping[str, Any], limit: int | None = CALL_CHARS) -> str:
    """A tool call on one line: ``→ get_weather({"city": "Paris"})``, its arguments as
    one-line JSON cut at ``limit`` characters (``None``: whole); arguments that were not
    JSON are the text as sent, flagged: ``→ get_weather(invalid JSON: {city: Paris)``."""
    arguments = call.get("arguments")
    if arguments is None and call.get("raw_arguments") is not None:
        text = f"invalid JSON: {call['raw_arguments']}"
    else:
        text = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False,
                          default=str)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return f"→ {call.get('name') or '?'}({text})"


def shown_output(result: CaseResult) -> str | None:
    """What a result answered, for a reader: its text, else its tool calls on one line
    each (an answer that only calls tools has no text)."""
    if result.output or not result.tool_calls:
        return result.output
    return "; ".join(tool_call_line(call) for call in result.tool_calls)
