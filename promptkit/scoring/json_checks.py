"""JSON checks: ``is-json``, optionally against a JSON schema.

The whole output must parse strictly as JSON (:func:`promptkit.scoring.reading.parse_json`:
size-capped, depth-safe); a ``value`` mapping is a JSON schema the parsed output must match
(``jsonschema``, any draft it knows, picked by ``$schema``). The schema itself is checked
before a run.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from .assertion import Assertion
from .context import Output, ScoringContext
from .reading import parse_json
from .registry import register_assertion
from .verdicts import EvaluationError, GradingResult, binary

__all__ = ["is_json"]


def _validate_schema_value(a: Assertion) -> None:
    if a.value is not None and not isinstance(a.value, dict):
        raise ValueError("value: is-json takes an optional JSON schema (a mapping)")


def _check_schema(a: Assertion) -> None:
    if a.value is None:
        return
    try:
        jsonschema.validators.validator_for(a.value).check_schema(a.value)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"invalid JSON schema: {exc.message}") from exc


def _matches_schema(instance: Any, schema: dict[str, Any]) -> GradingResult:
    try:
        jsonschema.validate(instance, schema)
    except jsonschema.ValidationError as exc:
        return binary(False, f"JSON does not match the schema at {exc.json_path}: {exc.message}")
    except jsonschema.SchemaError as exc:
        raise EvaluationError(f"invalid JSON schema: {exc.message}") from None
    return binary(True, "output is JSON matching the schema")


@register_assertion("is-json", validate=_validate_schema_value, check=_check_schema)
def is_json(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The output is JSON, and matches the schema in ``value`` when there is one."""
    try:
        parsed = parse_json(output.text)
    except ValueError as exc:
        return binary(False, f"output is not JSON: {exc}")
    if a.value is None:
        return binary(True, "output is JSON")
    return _matches_schema(parsed, a.value)
