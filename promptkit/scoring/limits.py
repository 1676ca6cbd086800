"""Limits: ``latency``, ``cost``, ``max-tokens`` and ``max-words``.

Each is pass/fail: the measurement must be at most ``value`` (the maximum itself passes).
A measurement the runner did not take (no price, no usage) is an error, not a pass.
``max-words`` counts each CJK character as a word
(:func:`promptkit.scoring.metrics.word_count`).
"""

from __future__ import annotations

from . import metrics
from .assertion import Assertion
from .context import Output, ScoringContext
from .registry import register_assertion
from .verdicts import GradingResult, limit

__all__ = ["cost", "latency", "max_tokens", "max_words"]


@register_assertion("latency", takes="maximum")
def latency(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The request took at most ``value`` milliseconds."""
    latency_ms = None if output.latency_s is None else output.latency_s * 1000
    return limit("latency", latency_ms, a.value, " ms")


@register_assertion("cost", takes="maximum")
def cost(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The request cost at most ``value`` USD."""
    return limit("cost", output.cost, a.value, " USD")


@register_assertion("max-tokens", takes="maximum")
def max_tokens(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The output has at most ``value`` tokens, as the endpoint counted them."""
    return limit("output tokens", output.output_tokens, a.value, "")


@register_assertion("max-words", takes="maximum")
def max_words(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The output has at most ``value`` words."""
    return limit("words", metrics.word_count(output.text), a.value, "")
