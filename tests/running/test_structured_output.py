"""A template's tools and output schema in eval requests, per provider `structured_output`."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from helpers import promptkit as promptkit_cli
from promptkit.errors import ConfigError
from promptkit.running.plan import plan_eval
from promptkit.running.providers import RUNTIME_KNOBS, Provider, gbnf_grammar
from promptkit.running.runner import RunOptions, run_eval
from promptkit.running.spec import load_spec
from promptkit.testing import FakeEndpoint, Reply

SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 24},
                                           "country": {"type": "string", "maxLength": 24}},
          "required": ["city", "country"], "additionalProperties": False}
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Today's weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}

TEMPLATE = f"""\
---
inputs: {{sentence: string}}
params: {{temperature: 0, max_tokens: 128, tool_choice: auto}}
output: {json.dumps(SCHEMA)}
tools: tools/weather.json
---
Extract the city and the country named in the sentence, as JSON.
Sentence: {{{{ sentence }}}}
JSON:"""

SPEC = """\
templates: templates
prompts: [extract@1]
providers:
  - id: fake
    base_url: {base_url}
    model: m
    api: {api}
    stream: false
    retries: 0{extra}
dataset: data.jsonl
"""

SENTENCES = ["Anna flew from Lisbon, Portugal, to see her brother.",
             "The conference takes place in Osaka, Japan, next spring.",
             "We spent a rainy week in Bergen, Norway."]


def make_project(root: Path, base_url: str = "http://127.0.0.1:9/v1", api: str = "chat",
                 extra: str = "", template: str = TEMPLATE) -> Path:
    (root / "templates" / "extract").mkdir(parents=True)
    (root / "templates" / "tools").mkdir()
    (root / "templates" / "extract" / "v1.jinja").write_text(template)
    (root / "templates" / "tools" / "weather.json").write_text(json.dumps([TOOL], indent=2))
    (root / "data.jsonl").write_text("".join(
        json.dumps({"id": f"s{i}", "sentence": text}) + "\n" for i, text in enumerate(SENTENCES)))
    path = root / "eval.yaml"
    path.write_text(SPEC.format(base_url=base_url, api=api, extra=extra))
    return path


def run(path: Path, **options) -> list:
    plan = plan_eval(load_spec(path))
    return list(asyncio.run(run_eval(plan, RunOptions(**options))).results())


ANSWER = Reply.text('{"city": "Lisbon", "country": "Portugal"}')


def test_tools_and_the_json_schema_format_reach_the_request(tmp_path: Path,
                                                            endpoint: FakeEndpoint) -> None:
    endpoint.default = ANSWER
    results = run(make_project(tmp_path, endpoint.base_url))
    assert len(results) == 3 and all(r.error is None for r in results)
    body = endpoint.requests[0].body
    assert body["tools"] == [TOOL] and body["tool_choice"] == "auto"
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "extract", "schema": SCHEMA,
                                               "strict": True}}
    assert "grammar" not in body


@pytest.mark.parametrize(("mode", "expected"), [
    ("json_object", {"type": "json_object", "schema": SCHEMA}),
    ("none", None),
])
def test_structured_output_adapts_the_format(tmp_path: Path, endpoint: FakeEndpoint,
                                             mode: str, expected: dict | None) -> None:
    endpoint.default = ANSWER
    run(make_project(tmp_path, endpoint.base_url,
                     extra=f"\n    structured_output: {mode}"))
    body = endpoint.requests[0].body
    assert body.get("response_format") == expected
    assert body["tools"] == [TOOL] and "grammar" not in body


def test_an_output_schema_strict_mode_would_refuse_is_sent_with_strict_false(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    endpoint.default = ANSWER
    loose = {**SCHEMA, "additionalProperties": True}
    run(make_project(tmp_path, endpoint.base_url,
                     template=TEMPLATE.replace(json.dumps(SCHEMA), json.dumps(loose))))
    assert endpoint.requests[0].body["response_format"]["json_schema"] == {
        "name": "extract", "schema": loose, "strict": False}


TOOL_PARAMS = {"tool_choice": "required", "parallel_tool_calls": False, "tools": [TOOL]}


@pytest.mark.parametrize("source", ["template", "provider", "prompt", "extra_body"])
def test_the_completions_api_is_sent_no_tool_params_whatever_sets_them(
        tmp_path: Path, endpoint: FakeEndpoint, source: str) -> None:
    endpoint.default = ANSWER
    template, params = TEMPLATE, json.dumps(TOOL_PARAMS)
    if source == "template":
        template = TEMPLATE.replace("tool_choice: auto", "tool_choice: auto, "
                                    "parallel_tool_calls: false")
    path = make_project(tmp_path, endpoint.base_url, api="completions", template=template,
                        extra="\n    structured_output: none" + (
                            f"\n    params: {params}" if source == "provider" else ""))
    if source in ("prompt", "extra_body"):
        given = params if source == "prompt" else f"{{extra_body: {params}}}"
        path.write_text(path.read_text().replace(
            "prompts: [extract@1]", f"prompts:\n  - template: extract@1\n    params: {given}"))
    results = run(path)
    assert all(r.error is None for r in results)
    body = endpoint.requests[0].body
    assert body["prompt"].endswith("JSON:") and body["max_tokens"] == 128
    assert not {"tools", "tool_choice", "parallel_tool_calls", "extra_body"} & set(body)


def test_streaming_is_the_providers_and_extra_body_params_go_in_the_body(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    endpoint.default = ANSWER
    template = TEMPLATE.replace("tool_choice: auto", "tool_choice: auto, stream: true, "
                                "stream_options: {include_usage: true}, "
                                "extra_body: {top_k: 5}")
    path = make_project(tmp_path, endpoint.base_url, template=template,  # stream: false
                        extra="\n    params: {extra_body: {min_p: 0.1}}")
    results = run(path)
    assert all(r.error is None for r in results), results[0].error
    body = endpoint.requests[0].body
    assert (body["top_k"], body["min_p"], body["temperature"]) == (5, 0.1, 0)
    assert not {"stream", "stream_options", "extra_body"} & set(body)


needs_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                     reason="llama-cpp-python (the [local] extra) is missing")


@needs_llama_cpp
def test_grammar_on_the_completions_api_sends_no_tools(tmp_path: Path,
                                                       endpoint: FakeEndpoint) -> None:
    endpoint.default = ANSWER
    run(make_project(tmp_path, endpoint.base_url, api="completions",
                     extra="\n    structured_output: grammar"))
    body = endpoint.requests[0].body
    assert body["grammar"] == gbnf_grammar(json.dumps(SCHEMA))
    assert 'root ::= "{" space city-kv "," space country-kv "}" space' in body["grammar"]
    assert body["prompt"].endswith("JSON:")
    assert not {"tools", "tool_choice", "response_format"} & set(body)


@needs_llama_cpp
def test_an_answer_that_breaks_the_grammar_is_not_cached(tmp_path: Path,
                                                         endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text('{"city": "Lis')  # cut off by max_tokens, say
    path = make_project(tmp_path, endpoint.base_url, api="completions",
                        extra="\n    structured_output: grammar")
    run(path)
    endpoint.default = ANSWER
    again = run(path)
    assert endpoint.count == 6 and not any(r.cached for r in again)


@needs_llama_cpp
def test_the_grammar_keeps_control_characters_out_of_strings() -> None:
    from llama_cpp.llama_grammar import LlamaGrammar

    grammar = gbnf_grammar(json.dumps(SCHEMA))
    (rule,) = [line for line in grammar.splitlines() if line.startswith("char ::=")]
    assert rule.startswith('char ::= [^"\\\\\\x7F\\x00-\\x1F]')  # no raw newline in JSON
    LlamaGrammar.from_string(grammar, verbose=False)  # and llama.cpp still reads it


def test_local_defaults_to_grammar_and_endpoints_to_json_schema() -> None:
    assert Provider.model_validate("local").output_mode == "grammar"
    endpoint = Provider(base_url="http://127.0.0.1:9/v1", model="m")
    assert endpoint.output_mode == "json_schema"
    assert Provider(base_url="http://127.0.0.1:9/v1", model="m",
                    structured_output="none").output_mode == "none"
    assert "structured_output" not in RUNTIME_KNOBS


def test_structured_output_is_part_of_what_a_spec_asks(tmp_path: Path) -> None:
    path = make_project(tmp_path)
    before = load_spec(path).spec_hash()
    path.write_text(path.read_text().replace(
        "    retries: 0", "    retries: 0\n    structured_output: json_object"))
    assert load_spec(path).spec_hash() != before


def test_tools_and_format_are_part_of_the_cache_key(tmp_path: Path,
                                                    endpoint: FakeEndpoint) -> None:
    endpoint.default = ANSWER
    path = make_project(tmp_path, endpoint.base_url)
    run(path)
    assert endpoint.count == 3
    assert all(r.cached for r in run(path)) and endpoint.count == 3
    tools = tmp_path / "templates" / "tools" / "weather.json"
    tools.write_text(json.dumps([{**TOOL, "function": {**TOOL["function"],
                                                       "description": "The weather."}}]))
    assert not any(r.cached for r in run(path)) and endpoint.count == 6
    template = tmp_path / "templates" / "extract" / "v1.jinja"
    template.write_text(template.read_text().replace('"maxLength": 24', '"maxLength": 30'))
    assert not any(r.cached for r in run(path)) and endpoint.count == 9
    path.write_text(path.read_text().replace(
        "    retries: 0", "    retries: 0\n    structured_output: json_object"))
    assert not any(r.cached for r in run(path)) and endpoint.count == 12


def test_grammar_without_llama_cpp_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.setitem(sys.modules, "llama_cpp.llama_grammar", None)
    gbnf_grammar.cache_clear()
    with pytest.raises(ConfigError, match=r"providers\[0\]: structured_output: grammar "
                       r"builds a GBNF grammar .* not installed: pip install"):
        load_spec(make_project(tmp_path, extra="\n    structured_output: grammar"))
    plan = plan_eval(load_spec(make_project(tmp_path / "local", api="completions")))
    local = Provider.model_validate("local")  # grammar by default: found out when asked
    with pytest.raises(ConfigError, match=r"v1\.jinja: output: structured_output: grammar"):
        plan.body(plan.spec.prompts[0], local, "prompt")
    gbnf_grammar.cache_clear()


BAD_INPUT = [
    pytest.param("extract/v1.jinja", ("tools: tools/weather.json", "tools: tools/bad.json"),
                 [{**TOOL, "function": {**TOOL["function"], "parameters": {"type": "objet"}}}],
                 "tools/bad.json:8: [0].function.parameters.type: not a valid JSON Schema",
                 id="invalid-tool-schema"),
    pytest.param("extract/v1.jinja", ("tools: tools/weather.json", "tools: tools/bad.json"),
                 [TOOL, TOOL], "tools/bad.json:23: [1].function.name: duplicate tool name "
                 "'get_weather'", id="duplicate-tool-names"),
    pytest.param("extract/v1.jinja", ("tools: tools/weather.json", "tools: ../weather.json"),
                 None, "extract/v1.jinja:5: tools: tools file '../weather.json' is outside "
                 "the template store", id="tools-file-outside-the-store"),
    pytest.param("extract/v1.jinja", ('"required": ["city", "country"]', '"required": "city"'),
                 None, "extract/v1.jinja:4: output.required: not a valid JSON Schema",
                 id="invalid-output-schema"),
    pytest.param("extract/v1.jinja", ("tools: tools/weather.json", "tools: tools/bad.json"),
                 '[{"function": {"name": "f", "parameters":\n'
                 + '{"type": "object", "properties": {"a": ' * 900 + "{}" + "}}" * 900 + "}}]",
                 "tools/bad.json:2: not valid JSON: nested too deeply", id="deep-tools-file"),
    pytest.param("extract/v1.jinja", ('"type": "string", "maxLength": 24}, "country"',
                                      '"$ref": "#/definitions/city"}, "country"'), None,
                 "extract/v1.jinja:4: output.properties.city.$ref: $ref '#/definitions/city' "
                 "points to nothing in the schema", id="unresolvable-ref"),
]


@pytest.mark.parametrize(("relpath", "change", "bad_tools", "message"), BAD_INPUT)
def test_bad_tools_or_output_stop_the_eval_with_one_line(tmp_path: Path, relpath: str,
                                                         change: tuple[str, str],
                                                         bad_tools: list | str | None,
                                                         message: str) -> None:
    path = make_project(tmp_path)
    (tmp_path / "weather.json").write_text(json.dumps([TOOL]))
    if bad_tools is not None:
        text = bad_tools if isinstance(bad_tools, str) else json.dumps(bad_tools, indent=2)
        (tmp_path / "templates" / "tools" / "bad.json").write_text(text)
    template = tmp_path / "templates" / relpath
    template.write_text(template.read_text().replace(*change))
    proc = promptkit_cli("eval", str(path), "--no-cache", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr and str(path) in proc.stderr


# -- the bundled model -------------------------------------------------------------------

needs_extra = pytest.mark.skipif(
    shutil.which("llama-server") is None and not os.environ.get("PROMPTKIT_LLAMA_SERVER")
    and importlib.util.find_spec("llama_cpp") is None,
    reason="the [local] extra is not installed")


@pytest.mark.local_model
@needs_extra
@needs_llama_cpp
def test_the_local_model_answers_in_the_schema_under_its_grammar(tmp_path: Path) -> None:
    import jsonschema

    path = make_project(tmp_path)
    path.write_text(path.read_text().split("providers:")[0] + "providers: [local]\n"
                    "dataset: data.jsonl\nassert:\n  - type: is-json\n")
    out = tmp_path / "out.json"
    proc = promptkit_cli("eval", str(path), "-o", str(out), cwd=tmp_path, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    results = json.loads(out.read_text())["results"]
    assert len(results) == 3 and all(r["error"] is None for r in results)
    for result in results:
        jsonschema.validate(json.loads(result["output"]), SCHEMA)
