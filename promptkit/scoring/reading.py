"""Reading a model's text safely: reasoning stripped, regexes and JSON bounded.

Model outputs are untrusted input. A reasoning model's ``<think>`` block may hold guesses
(and braces) that must not be taken for its answer; a pattern may backtrack
catastrophically on a crafted output, in an assertion or in a JSON schema's ``pattern``;
JSON may be huge, nested deeply or hold NaN. These helpers are shared by the assertion
handlers and the chain-of-thought answer extraction (:mod:`promptkit.builders.cot`).
"""

from __future__ import annotations

import contextvars
import functools
import json
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import jsonschema
import referencing
import regex

from .verdicts import EvaluationError, quoted

__all__ = [
    "MAX_JSON_CHARS",
    "REGEX_TIMEOUT_S",
    "compile_pattern",
    "parse_json",
    "search",
    "strip_reasoning",
    "validate_json",
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
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON does not have; a NaN would pass
    # every bound a schema sets (NaN > 5 is false), so such text is not JSON here.
    raise ValueError(f"it holds {name}, which JSON does not allow")


# -- JSON schemas with bounded patterns ---------------------------------------------------------

_PATTERN_DEADLINE: contextvars.ContextVar[float] = contextvars.ContextVar(
    "_PATTERN_DEADLINE", default=math.inf)


def _pattern_matches(pattern: str, text: str) -> bool:
    """Whether a schema's ``pattern`` matches ``text``, within what is left of the
    :data:`REGEX_TIMEOUT_S` one validation's patterns share.

    Raises:
        EvaluationError: the pattern is invalid, or the time ran out.
    """
    try:
        compiled = compile_pattern(pattern)
    except regex.error as exc:
        raise EvaluationError(f"invalid pattern {quoted(pattern, 40)} in the schema: "
                              f"{exc}") from None
    left = _PATTERN_DEADLINE.get() - time.monotonic()
    try:
        return compiled.search(text, timeout=max(min(left, REGEX_TIMEOUT_S), 0.001)) \
            is not None
    except TimeoutError:
        raise EvaluationError(f"pattern {quoted(pattern, 40)} took too long on "
                              f"{quoted(text, 40)} (a schema's patterns get "
                              f"{REGEX_TIMEOUT_S:g}s per check)") from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any
             ) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _pattern_matches(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
                        ) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _pattern_matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(jsonschema_keyword: Any, validator: Any, additional: Any,
                           instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    patterns = schema.get("patternProperties")
    if patterns and validator.is_type(instance, "object"):
        # jsonschema's keyword matches patternProperties itself, unbounded: hand it the
        # keys they cover as declared properties instead, and no patterns.
        covered = {key for key in instance
                   if any(_pattern_matches(pattern, key) for pattern in patterns)}
        declared = {**schema.get("properties", {}), **dict.fromkeys(covered, True)}
        schema = {key: value for key, value in schema.items() if key != "patternProperties"}
        schema["properties"] = declared
    yield from jsonschema_keyword(validator, additional, instance, schema)


@functools.cache
def _bounded(validator_class: type[Any]) -> type[Any]:
    """``validator_class`` with its patterns matched by :func:`_pattern_matches`."""
    own = validator_class.VALIDATORS
    keywords: dict[str, Any] = {"pattern": _pattern, "patternProperties": _pattern_properties}
    if "additionalProperties" in own:
        keywords["additionalProperties"] = functools.partial(_additional_properties,
                                                             own["additionalProperties"])
    return jsonschema.validators.extend(validator_class, keywords)


def validate_json(instance: Any, schema: Any) -> None:
    """``jsonschema.validate``, with the schema's patterns sharing :data:`REGEX_TIMEOUT_S`
    and no ``$ref`` fetched from elsewhere (only the JSON Schema metaschemas resolve
    outside the schema).

    The ``pattern``, ``patternProperties`` and ``additionalProperties`` keywords match with
    the ``regex`` package under a timeout (``unevaluatedProperties`` still matches
    ``patternProperties`` with jsonschema's own ``re``).

    Raises:
        jsonschema.ValidationError: ``instance`` does not fit.
        jsonschema.SchemaError: the schema is invalid.
        referencing.exceptions.Unresolvable: a ``$ref`` leads nowhere.
        EvaluationError: a pattern took too long, or is invalid.
    """
    validator_class = _bounded(jsonschema.validators.validator_for(schema))
    token = _PATTERN_DEADLINE.set(time.monotonic() + REGEX_TIMEOUT_S)
    try:
        jsonschema.validate(instance, schema, cls=validator_class,
                            registry=referencing.Registry())
    finally:
        _PATTERN_DEADLINE.reset(token)
