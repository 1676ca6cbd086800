"""What an assertion handler is given: the model's :class:`Output` and a :class:`ScoringContext`.

The context carries the case's variables and the two providers a handler may call, behind
the :class:`Judge` and :class:`Embedder` protocols; the runner supplies both, tests pass
plain async functions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Embedder", "Judge", "Output", "ScoringContext"]


@dataclass
class Output:
    """What the model produced for one request, with the measurements the runner took."""

    text: str
    latency_s: float | None = None
    ttft_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    # Function calls the answer asks for: {"id", "name", "arguments"} (arguments parsed
    # from JSON; None, with "raw_arguments" holding the text, when they were not JSON).
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None


class Judge(Protocol):
    """Sends chat messages to the provider with this id and returns its answer text.

    ``response_format`` is an OpenAI-style ``response_format`` for the request body (the
    ``llm-judge`` handler passes a JSON schema of its verdict), or None. A judge written as
    ``judge(provider_id, messages)``, without the keyword, is still called, without it.
    """

    async def __call__(
        self,
        provider_id: str,
        messages: list[dict[str, Any]],
        *,
        response_format: dict[str, Any] | None = None,
    ) -> str: ...


PlainJudge = Callable[[str, list[dict[str, Any]]], Awaitable[str]]
"""A judge that takes no ``response_format`` (called with two arguments)."""


class Embedder(Protocol):
    """Returns one embedding vector per text, from the provider with this id."""

    async def __call__(self, provider_id: str, texts: list[str]) -> list[list[float]]: ...


def _render_verbatim(text: str, variables: Mapping[str, Any]) -> str:
    return text


@dataclass
class ScoringContext:
    """What assertions may use besides the output.

    Attributes:
        vars: The case's fields.
        render: Renders a ``{{ field }}`` string with the case's fields; the runner passes a
            sandboxed Jinja renderer. The default returns the string unchanged.
        judge: Calls a provider for ``llm-judge``.
        embed: Calls a provider for ``similar``.
        tools: The tools the prompt offered (OpenAI tool definitions, ``{type: function,
            function: {name, description, parameters}}``), from its template.
        output_schema: The JSON Schema its template's ``output:`` asks the answer to fit.
    """

    vars: Mapping[str, Any]
    render: Callable[[str, Mapping[str, Any]], str] = _render_verbatim
    judge: Judge | PlainJudge | None = None
    embed: Embedder | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    output_schema: dict[str, Any] | None = None
