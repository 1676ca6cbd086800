"""Tool-call checks: ``tool-call`` and ``tool-call-f1``, on the function calls of an answer.

An answer's calls are ``output.tool_calls``: ``{"id", "name", "arguments"}`` with the
arguments parsed from JSON (None, and the text in ``raw_arguments``, when they were not
JSON or not a JSON object). A call whose arguments are not a JSON object fits nothing: it
fails ``tool-call`` whatever the options (``schema: false`` and no ``arguments`` too: an
app could not run it), and ``tool-call-f1`` counts it as not expected.
Expected arguments compare as JSON values
(:func:`promptkit.scoring.json_checks.differences`): a subset by default (every key given
must be there with an equal value, recursively), the same keys with ``match: exact``. Their
texts, and the function names, are rendered with the case's fields first.

``tool-call`` passes when a call of ``name`` fits the arguments given and the tool's own
``parameters`` schema (from the template's ``tools:``; ``schema: false`` skips it, a
mapping replaces it), and the calls number ``count`` and follow ``order`` when those are
given. ``tool-call-f1`` scores the calls made against a list of expected calls: its score
is the F1 of precision and recall, and its reason gives all three.
"""

from __future__ import annotations

import json
from typing import Any

from ..terminal import cut
from .assertion import Assertion
from .context import Output, ScoringContext
from .json_checks import differences, render_expected, schema_problem, violation
from .reading import parse_json
from .registry import register_assertion
from .verdicts import EvaluationError, GradingResult, binary, quoted, thresholded

__all__ = ["tool_call", "tool_call_f1"]

Call = dict[str, Any]


def _unusable_arguments(call: Call) -> tuple[bool, str] | None:
    """None when a call's arguments are a JSON object; else whether they are JSON at all,
    and their text."""
    arguments = call.get("arguments")
    if isinstance(arguments, dict):
        return None
    if arguments is not None:  # results of older runs kept a list or number as it was
        return True, json.dumps(arguments, ensure_ascii=False, default=str)
    raw = call.get("raw_arguments")
    if raw is None:  # ... and a JSON null as None, with no text
        return True, "null"
    try:
        parse_json(str(raw))
    except ValueError:
        return False, str(raw)
    return True, str(raw).strip()


def _arguments_fault(call: Call) -> str | None:
    """Why a call's arguments are unusable (``arguments not JSON: '{"city": Par'``,
    ``arguments are not a JSON object: null``), or None when they are a JSON object."""
    unusable = _unusable_arguments(call)
    if unusable is None:
        return None
    is_json, text = unusable
    if is_json:
        return f"arguments are not a JSON object: {cut(text, 60)}"
    return f"arguments not JSON: {quoted(text)}"


def _label(call: Call) -> str:
    """``get_weather({"city": "Paris"})``, ``get_weather(invalid JSON: {"city": Par)`` or
    ``get_weather(not an object: null)``, cut short."""
    unusable = _unusable_arguments(call)
    if unusable is None:
        shown_arguments = cut(json.dumps(call["arguments"], ensure_ascii=False), 60)
    else:
        is_json, text = unusable
        shown_arguments = f"{'not an object' if is_json else 'invalid JSON'}: {cut(text, 60)}"
    return f"{call.get('name')}({shown_arguments})"


def _names(calls: list[Call]) -> str:
    """``[get_weather, search]``, or ``none``."""
    return f"[{', '.join(str(call.get('name')) for call in calls)}]" if calls else "none"


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _in_order(order: list[str], names: list[str]) -> bool:
    """Whether ``order`` appears in ``names`` in that order (other names may come between)."""
    position = 0
    for name in names:
        if position < len(order) and name == order[position]:
            position += 1
    return position == len(order)


def _function(tool: Any) -> dict[str, Any]:
    """The ``function`` of an OpenAI tool definition (a bare function is taken as is)."""
    if isinstance(tool, dict):
        inner = tool.get("function")
        return inner if isinstance(inner, dict) else tool
    return {}


def _argument_problems(call: Call, expected: dict[str, Any] | None, exact: bool,
                       schema: dict[str, Any] | None) -> list[str]:
    """What is wrong with one call's arguments; empty when it fits."""
    if (fault := _arguments_fault(call)) is not None:
        return [fault]
    arguments = call["arguments"]
    problems = []
    if expected is not None:
        problems += [f"argument {difference}"
                     for difference in differences(expected, arguments, exact=exact)]
    if schema is not None and (problem := violation(arguments, schema)) is not None:
        problems.append(f"arguments break the tool schema {problem}")
    return problems


# -- tool-call --------------------------------------------------------------------------------


def _validate_tool_call(a: Assertion) -> None:
    if not a.name:
        raise ValueError("name: tool-call needs the name of the function that must be called")
    if a.value is not None:
        raise ValueError("value: tool-call takes name, arguments, match, schema, count and "
                         "order, not value")
    if a.arguments is not None and not isinstance(a.arguments, dict):
        raise ValueError("arguments: tool-call takes a mapping of argument names to values")
    if a.match is not None and a.arguments is None:
        raise ValueError("match: says how arguments compare; give arguments too")
    if isinstance(a.schema_, dict) and (problem := schema_problem(a.schema_)) is not None:
        raise ValueError(f"schema: {problem}")
    if a.order is not None and not a.order:
        raise ValueError("order: give the function names in the order they must be called")


def _schema_for(a: Assertion, name: str, ctx: ScoringContext) -> dict[str, Any] | None:
    """The schema the arguments must fit: the assertion's, else the tool's own ``parameters``
    (None when ``schema: false``, or by default when the template offers no such tool).

    Raises:
        EvaluationError: ``schema: true`` and the template offers no tool ``name``.
    """
    if a.schema_ is False:
        return None
    if isinstance(a.schema_, dict):
        return a.schema_
    tool = next((_function(t) for t in ctx.tools if _function(t).get("name") == name), None)
    if tool is None:
        if a.schema_ is True:
            offered = [str(_function(t).get("name")) for t in ctx.tools]
            raise EvaluationError(f"schema: true, but the template offers no tool {name!r} "
                                  f"(tools: {', '.join(offered) or 'none'})")
        return None
    parameters = tool.get("parameters")
    return parameters if isinstance(parameters, dict) else None


def _call_problem(a: Assertion, name: str, calls: list[Call], ctx: ScoringContext
                  ) -> tuple[str | None, Call | None]:
    """Why no call of ``name`` fits the arguments and schema, or the call that does."""
    mine = [(index, call) for index, call in enumerate(calls, 1) if call.get("name") == name]
    if not mine:
        return f"no call of {name} — calls made: {_names(calls)}", None
    expected = render_expected(a.arguments, ctx) if a.arguments is not None else None
    schema = _schema_for(a, name, ctx)
    problems = {}
    for index, call in mine:
        found = _argument_problems(call, expected, a.match == "exact", schema)
        if not found:
            return None, call
        problems[index] = ", ".join(found)
    if len(mine) == 1:
        return next(iter(problems.values())), None
    listed = "; ".join(f"call {index}: {problem}" for index, problem in problems.items())
    return f"none of the {len(mine)} calls of {name} fits ({listed})", None


@register_assertion("tool-call", validate=_validate_tool_call,
                    params=("name", "arguments", "match", "schema_", "count", "order"),
                    renders=("name", "arguments", "order"))
def tool_call(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """A call of ``name`` fits ``arguments`` and the schema; ``count`` and ``order`` hold."""
    name = ctx.render(a.name or "", ctx.vars)
    calls = output.tool_calls
    problems, notes = [], []
    if a.count is not None:
        made = sum(call.get("name") == name for call in calls)
        if made != a.count:
            problems.append(f"{name} called {_times(made)}, expected {a.count}")
        notes.append(f"{name} called {_times(made)}")
    if a.order is not None:
        order = [ctx.render(item, ctx.vars) for item in a.order]
        shown_order = f"[{', '.join(order)}]"
        if not _in_order(order, [call.get("name") for call in calls]):
            problems.append(f"calls {_names(calls)} are not in the order {shown_order}")
        notes.append(f"calls in the order {shown_order}")
    if a.count == 0:  # must not be called: there is no call to look into
        verdict = f"{name} not called; calls made: {_names(calls)}"
        return binary(not problems, "; ".join(problems) or verdict)
    problem, fitting = _call_problem(a, name, calls, ctx)
    if problem is not None:
        problems.insert(0, problem)
    if problems or fitting is None:
        return binary(False, "; ".join(problems))
    return binary(True, f"called {_label(fitting)}" + (f"; {', '.join(notes)}" if notes else ""))


# -- tool-call-f1 -----------------------------------------------------------------------------


def _validate_expected_calls(a: Assertion) -> None:
    if not isinstance(a.value, list):
        raise ValueError("value: tool-call-f1 needs the list of expected calls, e.g. "
                         "[{name: get_weather, arguments: {city: Paris}}]")
    for index, item in enumerate(a.value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not item["name"]:
            raise ValueError(f"value[{index}]: an expected call is a mapping with a name "
                             "(and optional arguments)")
        unknown = sorted(set(item) - {"name", "arguments"})
        if unknown:
            raise ValueError(f"value[{index}]: {unknown[0]!r} is not a key of an expected "
                             "call (name, arguments)")
        if item.get("arguments") is not None and not isinstance(item["arguments"], dict):
            raise ValueError(f"value[{index}].arguments: a mapping of argument names to "
                             "values")


def _fits(expected: dict[str, Any], call: Call, exact: bool) -> bool:
    """Whether a call made fits an expected one: same name, arguments a JSON object (even
    when none are expected: an app could not run the call) holding those expected."""
    arguments = call.get("arguments")
    if call.get("name") != expected["name"] or not isinstance(arguments, dict):
        return False
    wanted = expected.get("arguments")
    return wanted is None or not differences(wanted, arguments, exact=exact)


def _matching(expected: list[dict[str, Any]], calls: list[Call], exact: bool) -> dict[int, int]:
    """Expected call index -> made call index, as many pairs as there can be.

    A made call matches at most one expected call. Taking the first fit greedily could
    let a loose expectation (no arguments) take the call a stricter one needs, so this
    finds a maximum matching (augmenting paths; the lists are short).
    """
    fits = [[j for j, call in enumerate(calls) if _fits(want, call, exact)] for want in expected]
    owner: dict[int, int] = {}  # made call -> the expected call it matches

    def claim(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or claim(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(expected)):
        claim(i, set())
    return {i: j for j, i in owner.items()}


def _expected_label(expected: dict[str, Any]) -> str:
    arguments = expected.get("arguments")
    if arguments is None:
        return str(expected["name"])
    return f"{expected['name']}({cut(json.dumps(arguments, ensure_ascii=False), 60)})"


@register_assertion("tool-call-f1", threshold=1.0, params=("match",), renders=("value",),
                    validate=_validate_expected_calls)
def tool_call_f1(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The F1 of the calls made against the expected ones (by name and arguments)."""
    expected = render_expected(a.value, ctx)
    calls = output.tool_calls
    pairs = _matching(expected, calls, a.match == "exact")
    precision = len(pairs) / len(calls) if calls else 1.0
    recall = len(pairs) / len(expected) if expected else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    verdict = thresholded("tool-call F1", f1, a.pass_mark if a.pass_mark is not None else 1.0)
    parts = [verdict.reason,
             f"precision {precision:.3f} ({len(pairs)} of {len(calls)} calls made were "
             "expected)",
             f"recall {recall:.3f} ({len(pairs)} of {len(expected)} expected calls made)"]
    missing = [_expected_label(want) for i, want in enumerate(expected) if i not in pairs]
    matched_calls = set(pairs.values())
    extra = [_label(call) for j, call in enumerate(calls) if j not in matched_calls]
    if missing:
        parts.append(f"not made: {', '.join(missing)}")
    if extra:
        parts.append(f"not expected: {', '.join(extra)}")
    return GradingResult(verdict.passed, f1, "; ".join(parts))
