"""Reading a model's text safely: reasoning stripped, regexes and JSON bounded.

Model outputs are untrusted input. A reasoning model's ``<think>`` block may hold guesses
(and braces) that must not be taken for its answer; a pattern may backtrack
catastrophically on a crafted output; JSON may be huge or nested deeply. These helpers are
shared by the assertion handlers and the chain-of-thought answer extraction
(:mod:`promptkit.builders.cot`).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import regex

from .verdicts import EvaluationError, quoted

__all__ = [
    "MAX_JSON_CHARS",
    "REGEX_TIMEOUT_S",
    "compile_pattern",
    "parse_json",
    "search",
    "strip_reasoning",
]

REGEX_TIMEOUT_S = 1.0
"""A ``regex`` assertion that takes longer than this on one output fails that case
(catastrophic backtracking must not stall a run); the ``regex`` package stops the match."""

MAX_JSON_CHARS = 1_000_000
"""Outputs longer than this are not parsed as JSON (``is-json`` fails)."""

_THINK_BLOCK = re.compile(r"<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(?:think|thinking)>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(?:think|thinking)>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """Remove a reasoning model's thinking from its output.

    Drops every ``<think>…</think>`` (or ``<thinking>``) block; then everything up to a
    closing tag left without its opener (templates that put ``<think>`` in the prompt, so
    the output starts mid-thought); then an unclosed ``<think>`` and everything after it
    (the model ran out of tokens while thinking, so there is no answer).

    Returns:
        The remaining text, stripped of surrounding whitespace.
    """
    text = _THINK_BLOCK.sub("", text)
    closings = list(_THINK_CLOSE.finditer(text))
    if closings:
        text = text[closings[-1].end():]
    opening = _THINK_OPEN.search(text)
    if opening:
        text = text[:opening.start()]
    return text.strip()


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """Compile a user's pattern with the ``regex`` package, cached.

    The ``regex`` package (not ``re``) because its matches take a timeout; cached so an
    assertion or extraction compiles once per distinct (rendered) pattern per run.

    Raises:
        regex.error: The pattern is invalid.
    """
    return regex.compile(pattern)


def search(pattern: regex.Pattern[str], text: str) -> regex.Match[str] | None:
    """``pattern.search(text)`` stopped after :data:`REGEX_TIMEOUT_S` seconds.

    Raises:
        EvaluationError: the match took too long.
    """
    try:
        return pattern.search(text, timeout=REGEX_TIMEOUT_S)
    except TimeoutError:
        raise EvaluationError(f"regex /{quoted(pattern.pattern, 40)[1:-1]}/ took longer "
                              f"than {REGEX_TIMEOUT_S:g}s on this output") from None


def parse_json(text: str) -> Any:
    """``json.loads`` with a size cap and no RecursionError on deeply nested input.

    Raises:
        ValueError: not JSON, too large or nested too deeply (the message says which).
    """
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"{len(text):,} characters is more than the {MAX_JSON_CHARS:,} "
                         "parsed as JSON")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
