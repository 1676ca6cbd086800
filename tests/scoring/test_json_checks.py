"""is-json: strict, bounded parsing, and JSON schemas (jsonschema is a dependency)."""

from __future__ import annotations

import pytest

from promptkit.errors import ConfigError
from promptkit.scoring.assertion import Assertion, check_assertions


async def test_is_json_bounds_what_it_parses(run_one):
    deep = await run_one("[" * 100_000 + "]" * 100_000, type="is-json")
    assert not deep.passed and "nested too deeply" in deep.reason and deep.error is None
    huge = await run_one('"' + "x" * 1_000_001 + '"', type="is-json")
    assert not huge.passed and "more than the 1,000,000 parsed as JSON" in huge.reason


@pytest.mark.parametrize(
    ("output", "passed"),
    [('{"a": 1}', True), ("[1, 2]", True), ("  42 ", True), ("{'a': 1}", False), ("", False)],
)
async def test_is_json(run_one, output, passed):
    result = await run_one(output, type="is-json")
    assert (result.passed, result.error) == (passed, None)
    assert (await run_one(output, type="not-is-json")).passed is not passed


async def test_is_json_schema(run_one):
    schema = {"type": "object", "required": ["a"]}
    result = await run_one('{"a": 1}', type="is-json", value=schema)
    assert (result.passed, result.reason) == (True, "output is JSON matching the schema")
    result = await run_one('{"b": 1}', type="is-json", value=schema)
    assert not result.passed
    assert result.error is None
    assert result.reason == "JSON does not match the schema at $: 'a' is a required property"


def test_check_assertions_rejects_an_invalid_schema():
    with pytest.raises(ConfigError, match=r"assert\[0\]\.value: invalid JSON schema"):
        check_assertions([Assertion(type="is-json", value={"type": "nonsense"})], set())
