"""is-json: strict, bounded parsing, and JSON schemas (jsonschema is a dependency);
json-schema and json-path on the answer's JSON."""

from __future__ import annotations

import re

import pydantic
import pytest

from promptkit.errors import ConfigError
from promptkit.scoring.assertion import Assertion, check_assertions
from promptkit.scoring.context import Output
from promptkit.scoring.engine import score
from promptkit.scoring.json_checks import format_path, parse_path


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


# --- json-schema -------------------------------------------------------------------------------

PERSON = {"type": "object", "properties": {"name": {"type": "string"},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"]}


@pytest.mark.parametrize(
    ("output", "passed", "reason"),
    [
        ('{"name": "Ada", "age": 36}', True, "the answer is JSON matching the schema"),
        ('{"name": "Ada", "age": "36"}', False,
         "the answer does not match the schema at $.age: '36' is not of type 'integer'"),
        ('Here it is:\n```json\n{"name": "Ada", "age": 36}\n```\n', True,
         "its fenced block is JSON matching the schema"),
        ('<think>A {guess}</think>\n{"name": "Ada"}', False,
         "the answer after its reasoning does not match the schema at $: 'age' is a required "
         "property"),
        ('```json\n{"name": "Ada", "age": 36}\n```\n```json\n{}\n```', False,
         "the answer is not JSON: Expecting value: line 1 column 1 (char 0) (it has 2 fenced "
         "blocks; only a single one is read)"),
        ("Ada, 36", False, "the answer is not JSON: Expecting value: line 1 column 1 (char 0)"),
    ],
)
async def test_json_schema_reads_the_answer_and_says_what_it_read(run_one, output, passed,
                                                                  reason):
    result = await run_one(output, type="json-schema", value=PERSON)
    assert (result.passed, result.reason, result.error) == (passed, reason, None)
    negated = await run_one(output, type="not-json-schema", value=PERSON)
    assert negated.passed is not passed


async def test_json_schema_defaults_to_the_templates_output_schema(run_one, make_ctx):
    ctx = make_ctx()
    ctx.output_schema = PERSON
    assert (await run_one('{"name": "Ada", "age": 36}', ctx, type="json-schema")).passed
    given = await run_one('{"name": "Ada", "age": 36}', ctx, type="json-schema",
                          value={"type": "array"})  # value wins over the template's
    assert given.reason == "the answer does not match the schema at $: {'name': 'Ada', " \
                           "'age': 36} is not of type 'array'"
    nothing = await run_one('{"name": "Ada"}', type="json-schema")
    assert (nothing.passed, nothing.error) == (False, "json-schema has no schema: give one in "
                                               "value, or an output: schema in the template's "
                                               "front matter")
    # not- cannot turn a missing schema into a pass
    assert not (await run_one('{"name": "Ada"}', type="not-json-schema")).passed


async def test_json_schema_takes_a_weight(make_ctx):
    assertions = [Assertion(type="json-schema", value=PERSON, weight=3),
                  Assertion(type="contains", value="Bob")]
    case = await score(Output(text='{"name": "Ada", "age": 36}'), assertions, make_ctx())
    assert not case.passed and case.score == 0.75


@pytest.mark.parametrize("output", ['{"n": NaN}', '{"n": Infinity}', '{"n": -Infinity}'])
async def test_nan_and_infinity_are_not_json(run_one, output):
    bounded = {"type": "object", "properties": {"n": {"type": "number", "maximum": 5}}}
    constant = output[6:-1]
    schema = await run_one(output, type="json-schema", value=bounded)
    assert (schema.passed, schema.reason) == (
        False, f"the answer is not JSON: it holds {constant}, which JSON does not allow")
    path = await run_one(output, type="json-path", path="n")
    assert (path.passed, path.reason) == (
        False, f"the answer is not JSON: it holds {constant}, which JSON does not allow")
    is_json = await run_one(output, type="is-json")
    assert (is_json.passed, is_json.reason) == (
        False, f"output is not JSON: it holds {constant}, which JSON does not allow")


async def test_a_schema_pattern_cannot_stall_the_run(run_one, make_ctx, monkeypatch):
    # re backtracks for ever on this one; the regex package sees through it
    answer = '"' + "a" * 40 + '!"'
    result = await run_one(answer, type="json-schema", value={"pattern": "^(a+)+$"})
    assert (result.passed, result.error) == (False, None)
    assert result.reason == (f"the answer does not match the schema at $: {answer[1:-1]!r} "
                             "does not match '^(a+)+$'")
    # one that stalls the regex package too fails with an error, which not- keeps failing
    import promptkit.scoring.reading as reading

    monkeypatch.setattr(reading, "REGEX_TIMEOUT_S", 0.05)
    slow = {"properties": {"code": {"pattern": "(a|aa)+$"}}}
    answer = '{"code": "' + "a" * 40 + 'b"}'
    for kind in ("json-schema", "not-json-schema", "is-json"):
        result = await run_one(answer, type=kind, value=slow)
        assert not result.passed
        assert result.error.startswith("pattern '(a|aa)+$' took too long on 'aaaa"), kind
    ctx = make_ctx()
    ctx.output_schema = slow
    assert "took too long" in (await run_one(answer, ctx, type="json-schema")).error


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$ref": "#/definitions/nope"}, "$ref '#/definitions/nope' points to nothing in the "
         "schema"),
        ({"properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"items": {"$ref": "#b"}}}},
         "$ref '#b' names no anchor of the schema"),
        ({"$ref": "http://127.0.0.1:9/person.json"}, "$ref 'http://127.0.0.1:9/person.json' is "
         "not in the schema: a $ref must lead into the schema itself (put the definition "
         "under $defs), as other documents are never fetched"),
        ({"$ref": "person.json"}, "$ref 'person.json' is not in the schema: a $ref must lead "
         "into the schema itself (put the definition under $defs), as other documents are "
         "never fetched"),
    ],
)
async def test_a_ref_that_leads_nowhere_is_refused_before_a_run(run_one, make_ctx, schema,
                                                                 message):
    with pytest.raises(ConfigError, match=re.escape(f"assert[0].value: {message}")):
        check_assertions([Assertion(type="json-schema", value=schema)], set())
    with pytest.raises(ConfigError, match=re.escape(f"assert[0].value: {message}")):
        check_assertions([Assertion(type="is-json", value=schema)], set())
    # a template's output schema is only met at scoring: the case gets the same message
    ctx = make_ctx()
    ctx.output_schema = schema
    result = await run_one('{"a": [1]}', ctx, type="json-schema")
    assert (result.passed, result.error) == (False, message)


async def test_refs_that_lead_into_the_schema_are_followed(run_one):
    schema = {"$defs": {"city": {"type": "string"}}, "type": "object",
              "properties": {"from": {"$ref": "#/$defs/city"}, "to": {"$ref": "#/$defs/city"},
                             "via": {"$ref": "#/properties/to"}}}
    check_assertions([Assertion(type="json-schema", value=schema)], set())
    assert (await run_one('{"from": "Oslo", "via": "Bergen"}', type="json-schema",
                          value=schema)).passed
    result = await run_one('{"from": "Oslo", "via": 3}', type="json-schema", value=schema)
    assert result.reason == "the answer does not match the schema at $.via: 3 is not of type " \
                            "'string'"
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#",
              "definitions": {"n": {"type": "integer"}}, "items": {"$ref": "#/definitions/n"},
              # the JSON Schema metaschemas are known without fetching them
              "properties": {"schema": {"$ref": "http://json-schema.org/draft-07/schema#"}}}
    check_assertions([Assertion(type="json-schema", value=draft7)], set())
    assert (await run_one("[1, 2]", type="json-schema", value=draft7)).passed


# --- json-path ---------------------------------------------------------------------------------

ORDER = ('{"customer": {"name": "Ada", "vip": true}, "items": [{"sku": "A1", "price": 9.5, '
         '"qty": 2}, {"sku": "B2", "price": 20, "qty": 1}], "unit price": 3, "tags": ["gift", '
         '"fragile"], "note": null}')


@pytest.mark.parametrize(
    ("fields", "passed"),
    [
        ({"path": "customer.name", "value": "Ada"}, True),
        ({"path": "$.customer.name", "value": "{{ name }}"}, True),
        ({"path": "$['customer']['name']", "value": "ada"}, False),
        ({"path": "items[1].price", "value": 20.0}, True),  # numbers compare numerically
        ({"path": "$.items[-1].sku", "value": "B2"}, True),
        ({"path": "items.0.qty", "value": "{{ qty }}"}, True),  # templated: may be a number
        ({"path": "items.0.qty", "value": "2"}, False),  # a literal text is a text
        ({"path": "customer.vip", "value": 1}, False),  # a boolean is not a number
        ({"path": "$[\"unit price\"]", "value": 3}, True),
        ({"path": "$.items[0]", "value": {"sku": "A1", "price": 9.5, "qty": 2}}, True),
        ({"path": "$.items[0]", "value": {"sku": "A1"}}, False),  # equality, not a subset
        ({"path": "tags", "contains": "gift"}, True),
        ({"path": "tags", "contains": "gif"}, False),  # a list holds items, not substrings
        ({"path": "customer.name", "contains": "d"}, True),
        ({"path": "customer", "contains": "vip"}, True),  # an object: one of its keys
        ({"path": "items[0].price", "regex": r"^9\.5$"}, True),  # the value as JSON text
        ({"path": "customer.vip", "regex": "^true$"}, True),
        ({"path": "items[1].price", "json_type": "integer"}, True),
        ({"path": "items[0].price", "json_type": "integer"}, False),
        ({"path": "items[0].price", "json_type": "number"}, True),
        ({"path": "customer.vip", "json_type": "number"}, False),
        ({"path": "note", "json_type": "null"}, True),
        ({"path": "tags", "json_type": "array", "contains": "fragile", "regex": "gift"}, True),
        ({"path": "$"}, True),
        ({"path": "note"}, True),  # it exists, though null
        ({"path": "customer.email"}, False),
    ],
)
async def test_json_path_checks(run_one, make_ctx, fields, passed):
    ctx = make_ctx(name="Ada", qty=2)
    result = await run_one(ORDER, ctx, type="json-path", **fields)
    assert (result.passed, result.error) == (passed, None), result.reason
    negated = await run_one(ORDER, ctx, type="not-json-path", **fields)
    assert (negated.passed, negated.score) == (not passed, 0.0 if passed else 1.0)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"path": "customer.name", "value": "Ada", "contains": "A"},
         "$.customer.name is 'Ada' in the answer; it equals 'Ada', contains 'A'"),
        ({"path": "$.items[0].sku", "value": "B2", "regex": "^B"},
         "$.items[0].sku is 'A1'; it fails: equals 'B2', matches /^B/"),
        ({"path": "customer.email"}, "$.customer.email is not in the answer: $.customer has no "
         "key 'email' (keys: 'name', 'vip')"),
        ({"path": "items[5].sku"}, "$.items[5].sku is not in the answer: $.items has 2 items, "
         "no [5]"),
        ({"path": "customer[0]"}, "$.customer[0] is not in the answer: $.customer is an object "
         "(keys: 'name', 'vip'), not a list"),
        ({"path": "items.sku"}, "$.items.sku is not in the answer: $.items is a list of 2 "
         "items, not an object"),
        ({"path": "customer.name.first"}, "$.customer.name.first is not in the answer: "
         "$.customer.name is 'Ada', not an object"),
        ({"path": "$['unit price']"}, "$['unit price'] is 3 in the answer"),
    ],
)
async def test_json_path_reasons_name_the_path_and_where_it_broke(run_one, fields, reason):
    result = await run_one(ORDER, type="json-path", **fields)
    assert result.reason == reason


async def test_json_path_reads_a_fenced_answer_and_fails_on_no_json(run_one, make_ctx):
    fenced = await run_one('Sure!\n```\n{"city": "Berlin"}\n```', type="json-path",
                           path="city", value="Berlin")
    assert fenced.passed and fenced.reason == ("$.city is 'Berlin' in its fenced block; it "
                                               "equals 'Berlin'")
    prose = await run_one("Berlin", type="json-path", path="city")
    assert (prose.passed, prose.error) == (False, None)
    assert prose.reason.startswith("the answer is not JSON: ")
    bad = await run_one(ORDER, make_ctx(p="("), type="json-path", path="note", regex="{{ p }}")
    assert not bad.passed and bad.error.startswith("invalid regex '(': ")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "json-path"}, "path: json-path needs the path to look up"),
        ({"type": "json-path", "path": " "}, "path: the path is empty"),
        ({"type": "json-path", "path": "$.items[*].sku"}, "path: cannot read '$.items[*].sku' "
         "from '[*].sku'"),
        ({"type": "json-path", "path": "$..sku"}, "path: cannot read '$..sku' from '..sku'"),
        ({"type": "json-path", "path": "$.items[?(@.qty>1)]"}, "no wildcards, filters or .."),
        ({"type": "json-path", "path": "a", "regex": "("}, "regex: invalid regex '(': missing )"),
        ({"type": "json-path", "path": "a", "json_type": "float"}, "json_type"),
        ({"type": "json-path", "path": "a", "contains": ["x"]}, "contains: json-path takes a "
         "text, number or boolean"),
        ({"type": "json-path", "path": "a", "name": "f"}, "name: only tool-call takes name"),
        ({"type": "json-schema", "value": "object"}, "value: json-schema takes an optional "
         "JSON schema"),
        ({"type": "is-json", "path": "a"}, "path: only json-path takes path, not is-json"),
    ],
)
def test_invalid_json_assertions(fields, message):
    with pytest.raises(pydantic.ValidationError, match=re.escape(message)):
        Assertion(**fields)


def test_path_syntax():
    assert parse_path("$") == []
    assert parse_path("a.b[0].c") == parse_path("$.a.b[0].c") == ["a", "b", 0, "c"]
    assert parse_path("$['a b'][\"c.d\"][-1]") == ["a b", "c.d", -1]
    assert parse_path("[2].城市") == [2, "城市"]
    assert format_path(["items", 0, "unit price", "城市"]) == "$.items[0]['unit price'].城市"


@pytest.mark.parametrize(
    ("assertion", "expected"),
    [
        ("  - type: json-schema\n    value: {type: nonsense}\n",
         ":13: assert[1].value: invalid JSON schema: 'nonsense' is not valid"),
        ("  - type: json-schema\n    value:\n      properties: {a: {$ref: '#/definitions/a'}}\n",
         ":13: assert[1].value: $ref '#/definitions/a' points to nothing in the schema"),
        ("  - type: json-path\n    path: $.a[*]\n",
         ":12: assert[1]: path: cannot read '$.a[*]' from '[*]'"),
        ("  - type: json-path\n    path: $.a\n    regex: '(x'\n",
         ":12: assert[1]: regex: invalid regex '(x': missing )"),
        ("  - type: json-path\n    value: 3\n", ":12: assert[1]: path: json-path needs the path"),
    ],
)
def test_spec_errors_name_file_line_and_key(spec_error, assertion: str, expected: str):
    assert spec_error(assertion).startswith(expected)
