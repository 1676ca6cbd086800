"""Text checks: ``equals``, ``contains``, ``icontains``, ``starts-with``, ``regex``,
``contains-any`` and ``contains-all``.

Each is pass/fail on the output text, with its value rendered with the case's fields.
``equals`` ignores surrounding whitespace and ``starts-with`` leading whitespace (models
often add a newline); ``regex`` searches with the ``regex`` package and a timeout
(:func:`promptkit.scoring.reading.search`).
"""

from __future__ import annotations

import regex

from .assertion import Assertion
from .context import Output, ScoringContext
from .reading import compile_pattern, search
from .registry import register_assertion
from .verdicts import EvaluationError, GradingResult, answered, binary, quoted

__all__ = [
    "contains",
    "contains_all",
    "contains_any",
    "equals",
    "icontains",
    "regex_search",
    "starts_with",
]


@register_assertion("equals", takes="text")
def equals(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The output, stripped, is the value, stripped."""
    # Surrounding whitespace is noise: models often end with a newline.
    return answered(output.text.strip() == a.value.strip(), f"output equals {quoted(a.value)}")


@register_assertion("contains", takes="text")
def contains(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The output contains the value."""
    return answered(a.value in output.text, f"output contains {quoted(a.value)}")


@register_assertion("icontains", takes="text")
def icontains(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The output contains the value, ignoring case."""
    found = a.value.casefold() in output.text.casefold()
    return answered(found, f"output contains {quoted(a.value)} ignoring case")


@register_assertion("starts-with", takes="text")
def starts_with(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The output, without leading whitespace, starts with the value."""
    return answered(output.text.lstrip().startswith(a.value),
                    f"output starts with {quoted(a.value)}")


def _check_pattern(a: Assertion) -> None:
    # A templated pattern is only known per case; the handler reports it if it is invalid.
    if "{{" in a.value or "{%" in a.value:
        return
    try:
        compile_pattern(a.value)
    except regex.error as exc:
        raise ValueError(f"invalid regex {a.value!r}: {exc}") from exc


@register_assertion("regex", takes="text", check=_check_pattern)
def regex_search(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The pattern matches somewhere in the output."""
    try:
        pattern = compile_pattern(a.value)
    except regex.error as exc:
        raise EvaluationError(f"invalid regex {quoted(a.value)}: {exc}") from None
    found = search(pattern, output.text) is not None
    return answered(found, f"output matches /{a.value}/")


def _found_and_missing(a: Assertion, output: Output) -> tuple[list[str], list[str]]:
    found = [item for item in a.value if item in output.text]
    missing = [item for item in a.value if item not in output.text]
    return found, missing


@register_assertion("contains-any", takes="texts")
def contains_any(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The output contains at least one of the values."""
    found, missing = _found_and_missing(a, output)
    return binary(bool(found), f"output contains {found}, not {missing}")


@register_assertion("contains-all", takes="texts")
def contains_all(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The output contains every one of the values."""
    found, missing = _found_and_missing(a, output)
    return binary(not missing, f"output contains {found}, not {missing}")
