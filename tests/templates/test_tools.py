"""Front matter tools and output: checked at load, sent by request(), locked with the store."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from promptkit import TemplateStore
from promptkit.errors import TemplateLockError, TemplateSyntaxError
from promptkit.templates.lockfile import check, lock, read_lock
from promptkit.templates.template import OPENAI_CHAT_PARAMS
from promptkit.testing import FakeEndpoint

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city today.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"], "additionalProperties": False},
    },
}
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}},
                 "required": ["answer"], "additionalProperties": False}

WEATHER = """\
---
inputs: {city: string}
params:
  temperature: 0
  max_tokens: 50
  top_k: 5
  tool_choice: auto
output:
  type: object
  properties:
    answer: {type: string}
  required: [answer]
  additionalProperties: false
tools:
  - type: function
    function:
      name: get_weather
      description: The weather in a city today.
      parameters:
        type: object
        properties:
          city: {type: string}
        required: [city]
        additionalProperties: false
---
{% message "system" %}Answer in JSON.{% endmessage %}
{% message "user" %}Weather in {{ city }}?{% endmessage %}
"""


def make_store(root: Path, files: dict[str, str]) -> TemplateStore:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return TemplateStore(root)


def test_front_matter_tools_and_output_are_exposed(tmp_path: Path) -> None:
    store = make_store(tmp_path / "t", {"weather/v1.jinja": WEATHER,
                                        "plain/v1.jinja": "Hello\n"})
    template = store.get("weather")
    assert template.tools == [WEATHER_TOOL]
    assert template.output_schema == ANSWER_SCHEMA and template.tools_file is None
    assert template.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": ANSWER_SCHEMA, "strict": True}}
    template.tools[0]["function"]["name"] = "changed"  # copies: the template stays as loaded
    template.output_schema["type"] = "array"
    assert template.tools == [WEATHER_TOOL] and template.output_schema == ANSWER_SCHEMA
    plain = store.get("plain")
    assert plain.tools == [] and plain.output_schema is None and plain.response_format is None


def test_request_is_what_the_openai_sdk_takes(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    template = make_store(tmp_path / "t", {"weather/v1.jinja": WEATHER}).get("weather")
    request = template.request(city="Paris")
    assert request == {
        "messages": [{"role": "system", "content": "Answer in JSON."},
                     {"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER_TOOL],
        "response_format": template.response_format,
        "temperature": 0, "max_tokens": 50, "tool_choice": "auto",
        "extra_body": {"top_k": 5},
    }
    client = openai.OpenAI(base_url=endpoint.base_url, api_key="test", max_retries=0)
    answer = client.chat.completions.create(model="m", **request)
    assert answer.choices[0].message.content
    body = endpoint.requests[0].body
    assert body == {"model": "m", **{k: v for k, v in request.items() if k != "extra_body"},
                    "top_k": 5}
    request["tools"].clear()
    assert template.request(city="Paris")["tools"] == [WEATHER_TOOL]  # a new dict each call


def test_request_leaves_streaming_to_the_caller_and_merges_extra_body(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    template = make_store(tmp_path / "t", {"plain/v1.jinja": (
        "---\nparams:\n  temperature: 0\n  stream: true\n"
        "  stream_options: {include_usage: true}\n  top_k: 5\n"
        "  extra_body: {min_p: 0.1, repeat_penalty: 1.1}\n---\nHi\n")}).get("plain")
    request = template.request()
    assert request == {"messages": [{"role": "user", "content": "Hi"}], "temperature": 0,
                       "extra_body": {"min_p": 0.1, "repeat_penalty": 1.1, "top_k": 5}}
    client = openai.OpenAI(base_url=endpoint.base_url, api_key="test", max_retries=0)
    answer = client.chat.completions.create(model="m", **request)
    assert isinstance(answer, openai.types.chat.ChatCompletion)  # not a Stream
    assert endpoint.requests[0].body == {"model": "m", "messages": request["messages"],
                                         "temperature": 0, "min_p": 0.1,
                                         "repeat_penalty": 1.1, "top_k": 5}


def test_request_without_tools_or_output_is_messages_and_params(tmp_path: Path) -> None:
    store = make_store(tmp_path / "t", {
        "plain/v1.jinja": "---\nparams: {temperature: 0.2, model: x, repeat_penalty: 1.1}\n"
                          "---\nHi\n"})
    assert store.get("plain").request() == {
        "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.2,
        "extra_body": {"repeat_penalty": 1.1}}


def test_the_standard_params_are_the_sdks() -> None:
    import inspect

    from openai.resources.chat.completions import Completions

    accepted = set(inspect.signature(Completions.create).parameters)
    assert accepted >= OPENAI_CHAT_PARAMS


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_tools_from_a_file_in_the_store(tmp_path: Path, suffix: str) -> None:
    if suffix == "json":  # tab-indented, as editors write JSON
        text = json.dumps([WEATHER_TOOL], indent="\t")
    else:
        import yaml

        text = yaml.safe_dump([WEATHER_TOOL], sort_keys=False)
    store = make_store(tmp_path / "t", {
        f"tools/weather.{suffix}": text,
        "weather/v1.jinja": f"---\ntools: tools/weather.{suffix}\n"
                            "params: {tool_choice: {type: function, function: "
                            "{name: get_weather}}}\n---\nWeather?\n"})
    template = store.get("weather")
    assert template.tools == [WEATHER_TOOL] and template.tools_file == f"tools/weather.{suffix}"


BAD_FRONT_MATTER = [
    pytest.param(
        "tools:\n  - type: function\n    function:\n      name: f\n      parameters:\n"
        "        type: object\n        properties:\n          city: {type: strin}\n",
        9, "tools[0].function.parameters.properties.city.type: not a valid JSON Schema: "
        "'strin' is not valid under any of the given schemas", id="invalid-parameters"),
    pytest.param(
        "tools:\n  - function: {name: f}\n  - function: {name: g}\n  - function: {name: f}\n",
        5, "tools[2].function.name: duplicate tool name 'f' (first in tools[0])",
        id="duplicate-names"),
    pytest.param("tools:\n  - function: {name: ''}\n", 3,
                 "tools[0].function.name: a function name is 1 to 64 letters", id="empty-name"),
    pytest.param("tools:\n  - function: {name: f, paramters: {}}\n", 3,
                 "tools[0].function.paramters: unknown key", id="unknown-key"),
    pytest.param("tools:\n  - type: retrieval\n    function: {name: f}\n", 3,
                 "tools[0].type: Input should be 'function'", id="not-a-function"),
    pytest.param("tools: 3\n", 2, "tools: tools is a list of tool definitions", id="number"),
    pytest.param("tools: ../outside.yaml\n", 2,
                 "tools: tools file '../outside.yaml' is outside the template store",
                 id="outside-store"),
    pytest.param("tools: /etc/passwd\n", 2, "is outside the template store", id="absolute"),
    pytest.param("tools: link/tools.yaml\n", 2, "is outside the template store",
                 id="symlink-out"),
    pytest.param("tools: nope.yaml\n", 2, "tools: tools file 'nope.yaml' not found",
                 id="missing-file"),
    pytest.param("tools: weather/v1.jinja\n", 2, "must be YAML (.yaml, .yml) or JSON",
                 id="not-yaml"),
    pytest.param("output:\n  type: object\n  required: answer\n", 4,
                 "output.required: not a valid JSON Schema: 'answer' is not of type 'array'",
                 id="invalid-output"),
    pytest.param("output: [1]\n", 2, "output: Input should be a valid dictionary",
                 id="output-not-a-schema"),
    pytest.param("params: {tool_choice: auto}\n", 2,
                 "params.tool_choice: tool_choice is set but the template declares no tools",
                 id="choice-without-tools"),
    pytest.param("params:\n  tool_choice: {type: function, function: {name: g}}\n"
                 "tools:\n  - function: {name: f}\n", 3,
                 "params.tool_choice.function.name: names tool 'g', which the template does "
                 "not declare (tools: f)", id="choice-undeclared"),
    pytest.param("params: {tool_choice: always}\n"
                 "tools:\n  - function: {name: f}\n", 2,
                 "params.tool_choice: must be one of none, auto, required", id="choice-word"),
    pytest.param("tools: _tools\n", 2, "tools: tools '_tools' is a folder, not a tools file",
                 id="folder"),
    pytest.param("output:\n  type: object\n  properties:\n    a: {$ref: '#/definitions/nope'}\n",
                 5, "output.properties.a.$ref: $ref '#/definitions/nope' points to nothing in "
                 "the schema", id="ref-nowhere"),
    pytest.param("output:\n  type: object\n  $defs: {a: {type: string}}\n"
                 "  items: {$ref: '#b'}\n", 5, "output.items.$ref: $ref '#b' names no anchor",
                 id="ref-no-anchor"),
    pytest.param("output:\n  type: object\n  properties:\n    a:\n"
                 "      $ref: http://127.0.0.1:9/schema.json\n", 6,
                 "output.properties.a.$ref: $ref 'http://127.0.0.1:9/schema.json' is not in the "
                 "schema: a $ref must lead into the schema itself", id="ref-remote"),
    pytest.param("tools:\n  - function:\n      name: f\n      parameters:\n"
                 "        $defs: {city: {type: string}}\n        properties:\n"
                 "          city: {$ref: '#/$defs/town'}\n", 8,
                 "tools[0].function.parameters.properties.city.$ref: $ref '#/$defs/town' points "
                 "to nothing", id="tool-ref-nowhere"),
    pytest.param("tools:\n  - function: {name: f, strict: 'yes'}\n", 3,
                 "tools[0].function.strict: Input should be a valid boolean", id="strict-yes"),
    pytest.param("tools:\n  - function:\n      name: f\n      strict: true\n"
                 "      parameters:\n        type: object\n        properties:\n"
                 "          city: {type: string}\n        additionalProperties: false\n", 6,
                 "tools[0].function.parameters: strict: true, but strict mode needs every "
                 "property in required, and 'city' is not", id="strict-not-qualifying"),
    pytest.param("params: {response_format: {type: json_object}}\noutput: {type: object}\n", 2,
                 "params.response_format: output already sets the response format",
                 id="response-format-and-output"),
    pytest.param("output: {type: object, description: " + "x" * 1_000_000 + "}\n", 1,
                 "front matter of 1,000,038 characters is more than the 1,000,000 allowed",
                 id="too-large"),
    pytest.param("params: {extra_body: [top_k]}\n", 2,
                 "params.extra_body: extra_body is a mapping", id="extra-body-list"),
    pytest.param("params:\n  top_k: 5\n  extra_body:\n    top_k: 40\n", 5,
                 "params.extra_body.top_k: top_k is set both in params and in "
                 "params.extra_body", id="extra-body-repeats"),
]


@pytest.mark.parametrize(("front", "line", "message"), BAD_FRONT_MATTER)
def test_bad_tools_or_output_are_located_errors(tmp_path: Path, front: str, line: int,
                                                message: str) -> None:
    (tmp_path / "outside.yaml").write_text(json.dumps([WEATHER_TOOL]))
    (tmp_path / "t" / "link").mkdir(parents=True)
    (tmp_path / "t" / "link" / "tools.yaml").symlink_to(tmp_path / "outside.yaml")
    (tmp_path / "t" / "_tools").mkdir()
    store = make_store(tmp_path / "t", {"weather/v1.jinja": f"---\n{front}---\nHi\n"})
    with pytest.raises(TemplateSyntaxError) as caught:
        store.get("weather")
    assert caught.value.filename == f"{store.loader.display_root}/weather/v1.jinja"
    assert caught.value.lineno == line
    assert message in caught.value.message


BAD_TOOLS_FILES = [
    pytest.param("tools.yaml", "{name: f}\n", 1, "a tools file holds a list", id="not-a-list"),
    pytest.param("tools.yaml", "- function: {name: f}\n- function:\n    name: f\n", 3,
                 "[1].function.name: duplicate tool name 'f' (first in [0])", id="duplicate"),
    pytest.param("tools.json", '[\n\t{"function": {"name": "f",\n\t\t"parameters": '
                 '{"type": 5}}}\n]\n', 3, "[0].function.parameters.type: not a valid JSON "
                 "Schema", id="json-schema"),
    pytest.param("tools.json", '[\n  {"function": {"name": "f"},}\n]\n', 2,
                 "not valid JSON", id="bad-json"),
    pytest.param("tools.json", '[{"function": {"name": "f", "name": "g"}}]\n', 1,
                 "duplicate key 'name'", id="json-duplicate-key"),
    pytest.param("tools.json", '[{"function": {"name": "f",\n"parameters": '
                 + '{"type": "object", "properties": {"a": ' * 900 + '{}' + '}}' * 900
                 + '}}]\n', 2, "not valid JSON: nested too deeply (more than 100 levels)",
                 id="json-nested-900"),
    pytest.param("tools.json", '[{"function": {"name": "f",\n\n"parameters": '
                 + '{"properties": {"a": ' * 3000 + '{}' + '}}' * 3000 + '}}]\n', 3,
                 "not valid JSON: nested too deeply", id="json-nested-3000"),
    pytest.param("tools.json", json.dumps([WEATHER_TOOL]) + " " * 1_000_000, 1,
                 "characters is more than the 1,000,000 allowed",
                 id="too-large"),
]


@pytest.mark.parametrize(("name", "text", "line", "message"), BAD_TOOLS_FILES)
def test_a_bad_tools_file_is_located_in_it(tmp_path: Path, name: str, text: str, line: int,
                                           message: str) -> None:
    store = make_store(tmp_path / "t", {f"tools/{name}": text,
                                        "weather/v1.jinja": f"---\ntools: tools/{name}\n---\nHi\n"})
    with pytest.raises(TemplateSyntaxError) as caught:
        store.get("weather")
    assert caught.value.filename == f"{store.loader.display_root}/tools/{name}"
    assert (caught.value.lineno, message in caught.value.message) == (line, True), \
        str(caught.value)
    (problem,) = [p for p in check(store) if "not locked" not in p.message]  # and check says so
    assert problem.filename == caught.value.filename and message in problem.message


STRICT_OUTPUTS = [
    pytest.param(ANSWER_SCHEMA, True, id="strict"),
    pytest.param({"type": "object", "$defs": {"city": {"type": "string"}},
                  "properties": {"a": {"$ref": "#/$defs/city"},
                                 "b": {"anyOf": [{"type": "null"}, {"type": "integer"}]}},
                  "required": ["a", "b"], "additionalProperties": False}, True, id="refs"),
    pytest.param({"type": "object", "properties": {"answer": {"type": "string"}},
                  "required": ["answer"]}, False, id="no-additionalProperties"),
    pytest.param({**ANSWER_SCHEMA, "required": []}, False, id="a-property-not-required"),
    pytest.param({**ANSWER_SCHEMA, "properties": {"answer": {}}}, False, id="empty-schema"),
    pytest.param({**ANSWER_SCHEMA, "properties": {"answer": {
        "type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}},
                                   "required": ["x"]}}}}, False, id="nested-object"),
    pytest.param({**ANSWER_SCHEMA, "properties": {"answer": {
        "type": "object", "properties": {}, "additionalProperties": True}}}, False,
        id="nested-additionalProperties-true"),
    pytest.param({**ANSWER_SCHEMA, "$defs": {"x": {"type": "object"}}}, False,
                 id="object-in-defs"),
    pytest.param({"type": "array", "items": {"type": "string"}}, False, id="root-array"),
    pytest.param({**ANSWER_SCHEMA, "oneOf": [{"required": ["answer"]}]}, False, id="oneOf"),
]


@pytest.mark.parametrize(("schema", "strict"), STRICT_OUTPUTS)
def test_the_response_format_is_strict_only_when_strict_mode_takes_the_schema(
        tmp_path: Path, schema: dict, strict: bool) -> None:
    store = make_store(tmp_path / "t", {"x/v1.jinja": f"---\noutput: {json.dumps(schema)}\n"
                                                      "---\nHi\n"})
    response_format = store.get("x").response_format
    assert response_format["json_schema"]["strict"] is strict
    assert response_format["json_schema"]["schema"] == schema


def test_a_strict_tool_whose_parameters_strict_mode_takes_loads(tmp_path: Path) -> None:
    tool = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}
    store = make_store(tmp_path / "t", {"x/v1.jinja": f"---\ntools: [{json.dumps(tool)}]\n"
                                                      "---\nHi\n"})
    assert store.get("x").tools == [tool]


def test_the_front_matter_is_read_once_to_load_and_render(tmp_path: Path,
                                                          monkeypatch) -> None:
    from promptkit import config

    store = make_store(tmp_path / "t", {"weather/v1.jinja": WEATHER})
    reads = []
    monkeypatch.setattr(config.YamlDocument, "__init__", _counting(
        config.YamlDocument.__init__, reads))
    template = store.get("weather")
    template.render(city="Paris")
    template.request(city="Oslo")
    assert len(reads) == 1


def _counting(function, calls: list):
    def counted(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)
    return counted


def test_a_tools_file_nested_too_deeply_is_a_clean_error_from_the_cli(tmp_path: Path) -> None:
    from helpers import promptkit

    deep = '{"type": "object", "properties": {"a": ' * 3000 + "{}" + "}}" * 3000
    make_store(tmp_path / "t", {
        "tools/t.json": f'[{{"function": {{"name": "f",\n"parameters": {deep}}}}}]',
        "weather/v1.jinja": "---\ntools: tools/t.json\n---\nHi\n"})
    rendered = promptkit("render", "weather", "--templates", "t", cwd=tmp_path)
    assert rendered.returncode == 2
    assert rendered.stderr.strip().splitlines() == [
        "promptkit: error: t/tools/t.json:2: not valid JSON: nested too deeply (more than "
        "100 levels)"]
    checked = promptkit("templates", "check", "--templates", "t", cwd=tmp_path)
    assert "t/tools/t.json:2: not valid JSON: nested too deeply" in checked.stderr
    assert "internal error" not in checked.stderr


def test_brackets_in_json_strings_do_not_nest(tmp_path: Path) -> None:
    description = '[{\\"' * 200  # and escaped quotes do not end the string
    store = make_store(tmp_path / "t", {
        "tools/t.json": f'[{{"function": {{"name": "f", "description": "{description}"}}}}]',
        "weather/v1.jinja": "---\ntools: tools/t.json\n---\nHi\n"})
    assert store.get("weather").tools[0]["function"]["description"] == '[{"' * 200


# -- the lock ----------------------------------------------------------------------------

POOL = '{"id": "a", "question": "2+2?", "answer": "4"}\n'
USES_POOL = """\
---
inputs: {question: string}
tools: tools/weather.yaml
---
{% for ex in fewshot("pools/math.jsonl", question, k=1) %}Q: {{ ex.question }} A: {{ ex.answer }}
{% endfor %}Q: {{ question }} A:
"""


def data_store(root: Path) -> TemplateStore:
    import yaml

    return make_store(root, {
        "tools/weather.yaml": yaml.safe_dump([WEATHER_TOOL]),
        "pools/math.jsonl": POOL,
        "pools/math.csv": "id,question,answer\nb,3+3?,6\n",
        "math/v1.jinja": USES_POOL,
        "math/labels.yaml": "production: 1\n",
        ".cache/notes.json": "{}",
    })


def test_lock_covers_tools_and_pool_files_but_not_labels(tmp_path: Path) -> None:
    store = data_store(tmp_path / "t")
    assert lock(store).added == ["math/v1.jinja", "pools/math.csv", "pools/math.jsonl",
                                 "tools/weather.yaml"]
    assert check(store) == []
    (tmp_path / "t" / "math" / "labels.yaml").write_text("production: 1\nstaging: 1\n")
    assert check(TemplateStore(tmp_path / "t")) == []  # labels move without a new lock


@pytest.mark.parametrize("relpath", ["tools/weather.yaml", "pools/math.jsonl"])
def test_an_edited_data_file_fails_check_and_lock(tmp_path: Path, relpath: str) -> None:
    store = data_store(tmp_path / "t")
    lock(store)
    path = tmp_path / "t" / relpath
    path.write_text(path.read_text().replace("weather", "climate").replace("2+2", "2+3"))
    store = TemplateStore(tmp_path / "t")
    (problem,) = check(store)
    assert problem.filename == f"{store.loader.display_root}/{relpath}"
    assert problem.message.startswith("changed since it was locked")
    with pytest.raises(TemplateLockError, match=relpath.replace(".", r"\.")):
        lock(store)


def test_a_lock_from_before_data_files_reports_them_as_not_locked(tmp_path: Path) -> None:
    store = data_store(tmp_path / "t")
    lock(store)
    path = tmp_path / "t" / "promptkit.lock"
    data = json.loads(path.read_text())
    data["files"] = {k: v for k, v in data["files"].items() if k.endswith(".jinja")}
    path.write_text(json.dumps(data))
    store = TemplateStore(tmp_path / "t")
    assert sorted((p.filename.rsplit("/t/", 1)[1], p.message) for p in check(store)) == [
        (name, "not locked yet: run `promptkit templates lock`")
        for name in ("pools/math.csv", "pools/math.jsonl", "tools/weather.yaml")]
    assert lock(store).added == ["pools/math.csv", "pools/math.jsonl", "tools/weather.yaml"]
    assert set(read_lock(store)) == {"math/v1.jinja", "pools/math.csv", "pools/math.jsonl",
                                     "tools/weather.yaml"}
