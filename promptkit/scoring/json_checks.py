"""JSON checks: ``is-json``, ``json-schema`` and ``json-path``; how JSON values compare.

``is-json`` parses the whole output strictly (:func:`promptkit.scoring.reading.parse_json`:
size-capped, depth-safe), optionally against a schema in ``value``. ``json-schema`` and
``json-path`` read the *answer* more leniently (:func:`parse_answer`): the text as it is,
else without a reasoning model's thinking, else the one fenced block it holds (models wrap
JSON in a json-tagged fence even when told not to); their reasons say which was read.
``json-schema`` validates it against ``value`` or the template's ``output:`` schema;
``json-path`` looks up a path (:func:`parse_path`, a dotted path or a JSONPath
subset) and checks what it finds.

Schemas go through ``jsonschema`` (any draft it knows, picked by ``$schema``) and are
checked before a run, each ``$ref`` too: it must lead somewhere in the schema (other
schemas are never fetched). Their patterns match under a timeout
(:func:`promptkit.scoring.reading.validate_json`). :func:`differences` and
:func:`render_expected` are shared with the tool-call checks (:mod:`.tool_checks`):
arguments are JSON too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import jsonschema
import referencing.exceptions
import regex

from ..jsonschemas import unresolved_ref
from ..terminal import cut
from .assertion import Assertion
from .context import Output, ScoringContext
from .reading import compile_pattern, parse_json, search, strip_reasoning, validate_json
from .registry import register_assertion
from .verdicts import EvaluationError, GradingResult, binary, quoted

__all__ = [
    "PathNotFound",
    "TemplatedText",
    "check_schema",
    "differences",
    "format_path",
    "is_json",
    "json_path",
    "json_schema",
    "lookup",
    "parse_answer",
    "parse_path",
    "render_expected",
    "schema_problem",
    "shown",
    "violation",
]

# -- comparing JSON values -------------------------------------------------------------------


class TemplatedText(str):
    """An expected text rendered from a ``{{ field }}`` template.

    Rendering turns a case's ``3`` or ``true`` into text, so a templated text also equals
    a number, boolean or null whose JSON is that text; a literal ``"3"`` equals only ``"3"``.
    """


def render_expected(value: Any, ctx: ScoringContext) -> Any:
    """``value`` with every text in it (in lists and mappings too) rendered with the case's
    fields; texts that held a template come back as :class:`TemplatedText`."""
    if isinstance(value, str):
        rendered = ctx.render(value, ctx.vars)
        return TemplatedText(rendered) if ("{{" in value or "{%" in value) else rendered
    if isinstance(value, list):
        return [render_expected(item, ctx) for item in value]
    if isinstance(value, dict):
        return {key: render_expected(item, ctx) for key, item in value.items()}
    return value


def _same_scalar(expected: Any, actual: Any) -> bool:
    if isinstance(expected, TemplatedText) and not isinstance(actual, str | list | dict):
        try:
            expected = json.loads(expected)
        except ValueError:
            return False
    if isinstance(expected, bool) or isinstance(actual, bool):  # True is not 1 in JSON
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    return expected == actual  # 1 == 1.0, as JSON numbers


def shown(value: Any, limit: int = 60) -> str:
    """A value in a reason: a text quoted (``'Paris'``), anything else as JSON."""
    if isinstance(value, str):
        return quoted(value, limit)
    return cut(json.dumps(value, ensure_ascii=False, default=str), limit)


def differences(expected: Any, actual: Any, *, exact: bool, where: str = "") -> list[str]:
    """How ``actual`` differs from ``expected``; empty when it matches.

    A mapping matches when every key it has is present with a matching value (a subset,
    recursively), or with ``exact`` when the keys are the same too. Lists match item by
    item; numbers numerically; a boolean only a boolean. ``where`` names the place
    (``city``, ``stops[0].name``); each difference reads ``'city' is 'Paris', expected
    'Berlin'``.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{_named(where)} is {shown(actual)}, expected an object"]
        found = []
        for key, value in expected.items():
            inner = f"{where}.{key}" if where else str(key)
            if key not in actual:
                found.append(f"{_named(inner)} is missing")
            else:
                found += differences(value, actual[key], exact=exact, where=inner)
        if exact:
            found += [f"{_named(f'{where}.{key}' if where else str(key))} is not expected"
                      for key in actual if key not in expected]
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{_named(where)} is {shown(actual)}, expected {shown(expected)}"]
        return [problem for index, (want, got) in enumerate(zip(expected, actual, strict=True))
                for problem in differences(want, got, exact=exact, where=f"{where}[{index}]")]
    if _same_scalar(expected, actual):
        return []
    return [f"{_named(where)} is {shown(actual)}, expected {shown(expected)}"]


def _named(where: str) -> str:
    return repr(where) if where else "the value"


# -- reading the answer as JSON --------------------------------------------------------------

_FENCED = re.compile(r"^```[^\n`]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def parse_answer(text: str) -> tuple[Any, str]:
    """The answer's JSON, and where it was found: ``"the answer"``, ``"the answer after its
    reasoning"`` or ``"its fenced block"`` (the only fenced block of the answer).

    Raises:
        ValueError: none of them is JSON (the message says why the text as it is is not,
            and when several fenced blocks left it unclear which to read).
    """
    try:
        return parse_json(text), "the answer"
    except ValueError as exc:
        first_error = str(exc)
    answer = strip_reasoning(text)
    if answer != text.strip():
        try:
            return parse_json(answer), "the answer after its reasoning"
        except ValueError:
            pass
    blocks = _FENCED.findall(answer)
    if len(blocks) == 1:
        try:
            return parse_json(blocks[0]), "its fenced block"
        except ValueError:
            pass
    elif blocks:
        first_error += f" (it has {len(blocks)} fenced blocks; only a single one is read)"
    raise ValueError(first_error)


# -- JSON schemas ----------------------------------------------------------------------------


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a valid JSON Schema, or one whose every ``$ref`` resolves;
    None when it is."""
    if not isinstance(schema, dict | bool):
        return "a JSON schema is a mapping"
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"invalid JSON schema: {exc.message}"
    problem = unresolved_ref(schema, allow_metaschemas=True)
    return problem[0] if problem is not None else None


def violation(instance: Any, schema: dict[str, Any]) -> str | None:
    """How ``instance`` breaks ``schema`` (``at $.city: 3 is not of type 'string'``), or
    None when it fits.

    Raises:
        EvaluationError: the schema itself is invalid, a ``$ref`` leads nowhere, or a
            pattern took too long (:func:`promptkit.scoring.reading.validate_json`).
    """
    try:
        validate_json(instance, schema)
    except jsonschema.ValidationError as exc:
        return f"at {exc.json_path}: {cut(exc.message, 200)}"
    except jsonschema.SchemaError as exc:
        raise EvaluationError(f"invalid JSON schema: {exc.message}") from None
    except referencing.exceptions.Unresolvable:
        raise EvaluationError(schema_problem(schema) or "a $ref of the schema leads nowhere"
                              ) from None
    return None


def check_schema(a: Assertion) -> None:
    """The check of ``is-json`` and ``json-schema``: ``value``, when given, is a valid schema."""
    if a.value is not None and (problem := schema_problem(a.value)) is not None:
        raise ValueError(problem)


def _validate_schema_value(a: Assertion) -> None:
    if a.value is not None and not isinstance(a.value, dict):
        raise ValueError(f"value: {a.base_type} takes an optional JSON schema (a mapping)")


@register_assertion("is-json", validate=_validate_schema_value, check=check_schema)
def is_json(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The output is JSON, and matches the schema in ``value`` when there is one."""
    try:
        parsed = parse_json(output.text)
    except ValueError as exc:
        return binary(False, f"output is not JSON: {exc}")
    if a.value is None:
        return binary(True, "output is JSON")
    problem = violation(parsed, a.value)
    if problem is not None:
        return binary(False, f"JSON does not match the schema {problem}")
    return binary(True, "output is JSON matching the schema")


@register_assertion("json-schema", validate=_validate_schema_value, check=check_schema)
def json_schema(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The answer's JSON fits ``value``, or by default the template's ``output:`` schema."""
    schema = a.value if a.value is not None else ctx.output_schema
    if schema is None:
        raise EvaluationError("json-schema has no schema: give one in value, or an output: "
                              "schema in the template's front matter")
    try:
        parsed, source = parse_answer(output.text)
    except ValueError as exc:
        return binary(False, f"the answer is not JSON: {exc}")
    problem = violation(parsed, schema)
    if problem is not None:
        return binary(False, f"{source} does not match the schema {problem}")
    return binary(True, f"{source} is JSON matching the schema")


# -- paths into JSON -------------------------------------------------------------------------

_DOTTED_KEY = re.compile(r"""[^.\[\]\s'"*?]+""")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_QUOTED_KEY = re.compile(r"""\[\s*(?:'([^']*)'|"([^"]*)")\s*\]""")
_NUMBER = re.compile(r"\d+")


class PathNotFound(Exception):
    """A path leads nowhere in a document; the message says where it broke."""


def parse_path(path: str) -> list[str | int]:
    """The steps of a path: keys (texts) and list indexes (integers).

    Takes a dotted path (``items[0].price``) or a JSONPath without wildcards or filters
    (``$.items[0].price``, ``$['unit price']``, ``$[-1]``; ``$`` alone is the whole
    document). A dotted key that is a number also indexes a list (``items.0.price``).

    Raises:
        ValueError: not such a path (the message shows where it could not be read).
    """
    text = path.strip()
    if not text:
        raise ValueError("the path is empty ($ is the whole answer)")
    position = 1 if text.startswith("$") else 0
    steps: list[str | int] = []
    while position < len(text):
        char = text[position]
        match = None
        if char == "." and not text.startswith("..", position):
            match = _DOTTED_KEY.match(text, position + 1)
        elif char == "[":
            match = _INDEX.match(text, position) or _QUOTED_KEY.match(text, position)
        elif position == 0:
            match = _DOTTED_KEY.match(text)
        if match is None:
            raise ValueError(f"cannot read {path!r} from {text[position:]!r}: write keys as "
                             "a.b or ['a b'] and indexes as [0] (no wildcards, filters or ..)")
        if match.re is _INDEX:
            steps.append(int(match.group(1)))
        elif match.re is _QUOTED_KEY:
            steps.append(next(group for group in match.groups() if group is not None))
        else:
            steps.append(match.group(0))
        position = match.end()
    return steps


def format_path(steps: list[str | int]) -> str:
    """``["items", 0, "unit price"]`` → ``$.items[0]['unit price']``."""
    text = "$"
    for step in steps:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if _DOTTED_KEY.fullmatch(step) else f"[{step!r}]"
    return text


def lookup(document: Any, steps: list[str | int]) -> Any:
    """What ``steps`` lead to in ``document``.

    Raises:
        PathNotFound: a key or index is not there (the message names the place it
            broke and what is there: the keys of an object, the length of a list).
    """
    node = document
    for depth, step in enumerate(steps):
        here = format_path(steps[:depth])
        if isinstance(node, list) and (isinstance(step, int) or _NUMBER.fullmatch(step)):
            index = int(step)
            if not -len(node) <= index < len(node):
                raise PathNotFound(f"{here} has {len(node)} items, no [{index}]")
            node = node[index]
        elif isinstance(node, dict) and isinstance(step, str):
            if step not in node:
                raise PathNotFound(f"{here} has no key {step!r} ({_keys(node)})")
            node = node[step]
        else:
            wanted = "a list" if isinstance(step, int) else "an object"
            raise PathNotFound(f"{here} is {_kind(node)}, not {wanted}")
    return node


def _keys(node: dict[str, Any], most: int = 20) -> str:
    if not node:
        return "it has no keys"
    names = ", ".join(repr(key) for key in list(node)[:most])
    return f"keys: {names}" + (", …" if len(node) > most else "")


def _kind(node: Any) -> str:
    if isinstance(node, dict):
        return f"an object ({_keys(node)})"
    if isinstance(node, list):
        return f"a list of {len(node)} items"
    return shown(node)


# -- json-path -------------------------------------------------------------------------------


def _validate_json_path(a: Assertion) -> None:
    if a.path is None:
        raise ValueError("path: json-path needs the path to look up, e.g. $.items[0].price")
    try:
        parse_path(a.path)
    except ValueError as exc:
        raise ValueError(f"path: {exc}") from None
    if a.regex is not None and "{{" not in a.regex and "{%" not in a.regex:
        try:  # a templated pattern is only known per case: the handler reports it
            compile_pattern(a.regex)
        except regex.error as exc:
            raise ValueError(f"regex: invalid regex {a.regex!r}: {exc}") from None
    if a.contains is not None and not isinstance(a.contains, str | int | float | bool):
        raise ValueError("contains: json-path takes a text, number or boolean to look for")


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _contains(found: Any, wanted: Any) -> bool:
    if isinstance(found, str):
        return _as_text(wanted) in found
    if isinstance(found, list):
        return any(not differences(wanted, item, exact=True) for item in found)
    if isinstance(found, dict):
        return _as_text(wanted) in found
    return False


def _path_checks(a: Assertion, ctx: ScoringContext) -> list[tuple[str, Callable[[Any], bool]]]:
    """``(description, test)`` of each check the assertion gives, with texts rendered."""
    checks: list[tuple[str, Callable[[Any], bool]]] = []
    if a.value is not None:
        expected = render_expected(a.value, ctx)
        checks.append((f"equals {shown(expected)}",
                       lambda found: not differences(expected, found, exact=True)))
    if a.contains is not None:
        wanted = render_expected(a.contains, ctx)
        checks.append((f"contains {shown(wanted)}", lambda found: _contains(found, wanted)))
    if a.regex is not None:
        source = ctx.render(a.regex, ctx.vars)
        try:
            pattern = compile_pattern(source)
        except regex.error as exc:
            raise EvaluationError(f"invalid regex {quoted(source)}: {exc}") from None
        checks.append((f"matches /{source}/",
                       lambda found: search(pattern, _as_text(found)) is not None))
    if a.json_type is not None:
        checker = jsonschema.Draft202012Validator.TYPE_CHECKER
        checks.append((f"is of type {a.json_type}",
                       lambda found: checker.is_type(found, a.json_type)))
    return checks


@register_assertion("json-path", params=("path", "contains", "regex", "json_type"),
                    renders=("value", "contains", "regex"), validate=_validate_json_path)
def json_path(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """What ``path`` finds in the answer's JSON passes every check given (``value``,
    ``contains``, ``regex``, ``json_type``); with none, the path must exist."""
    steps = parse_path(a.path or "")
    where = format_path(steps)
    checks = _path_checks(a, ctx)
    try:
        parsed, source = parse_answer(output.text)
    except ValueError as exc:
        return binary(False, f"the answer is not JSON: {exc}")
    try:
        found = lookup(parsed, steps)
    except PathNotFound as exc:
        return binary(False, f"{where} is not in {source}: {exc}")
    failed = [description for description, test in checks if not test(found)]
    if failed:
        return binary(False, f"{where} is {shown(found)}; it fails: {', '.join(failed)}")
    held = f"; it {', '.join(d for d, _ in checks)}" if checks else ""
    return binary(True, f"{where} is {shown(found)} in {source}{held}")

