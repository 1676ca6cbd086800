"""Eval specs: strict validation with file, line and key path; overrides; schema."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from promptkit.errors import ConfigError
from promptkit.running.spec import apply_overrides, json_schema, load_spec

REPO = Path(__file__).parents[2]

GOOD = """\
description: test
templates: templates
prompts:
  - greet@1
  - id: twice
    template: greet@2
    vars: {times: 2}
    params: {temperature: 0.5}
providers:
  - id: fake
    base_url: http://127.0.0.1:9/v1
    model: m
    api_key_env: SOME_KEY
    price: {input_per_mtok: 1, output_per_mtok: 2}
cases:
  - {name: Ada}
assert:
  - type: contains
    value: Hello
threshold: 0.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(text)
    return path


def test_good_spec_loads_with_defaults(tmp_path: Path) -> None:
    loaded = load_spec(write(tmp_path, GOOD))
    spec = loaded.spec
    assert [p.id for p in spec.prompts] == ["greet@1", "twice"]
    assert spec.prompts[1].vars == {"times": 2}
    provider = spec.providers[0]
    assert (provider.api, provider.stream, provider.concurrency) == ("chat", True, 8)
    assert provider.price.cost(1_000_000, 500_000) == pytest.approx(2.0)
    assert loaded.templates_dir == tmp_path / "templates"
    assert spec.assert_[0].type == "contains"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("    model: m\n", "    model: m\n    colour: red\n"),
         ":13: providers[0].colour: unknown key"),
        (("    base_url: http://127.0.0.1:9/v1\n", "    base_url: ftp://x\n"),
         ":10: providers[0]: base_url must start with http:// or https://"),
        (("threshold: 0.5", "threshold: 5"), ":20: threshold: Input should be less than or "
         "equal to 1"),
        (("  - type: contains\n", "  - type: containz\n"),
         ":18: assert[0].type: unknown assertion type"),
        (("  - greet@1\n", "  - greet@1\n  - greet@1\n"), ":3: prompts: id 'greet@1' appears "
         "twice"),
        (("cases:\n  - {name: Ada}\n", ""), "give exactly one of `dataset`"),
        (("providers:\n", "providers:\n  - openai\n"), "providers[0]: a provider given as a "
         "string must be 'local'"),
    ],
)
def test_errors_name_file_line_and_key(tmp_path: Path, change: tuple[str, str],
                                       expected: str) -> None:
    assert change[0] in GOOD
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message, message
    assert "\n" not in message


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "prompts: [a\nproviders: x\n")
    with pytest.raises(ConfigError, match=r"eval\.yaml:\d+: invalid YAML"):
        load_spec(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read eval spec"):
        load_spec(tmp_path / "nope.yaml")


def test_local_provider_shorthand(tmp_path: Path) -> None:
    text = GOOD.replace("providers:\n", "providers:\n  - local\n  - local:/models/x.gguf\n")
    providers = load_spec(write(tmp_path, text)).spec.providers
    assert providers[0].is_local and providers[0].api == "completions"
    assert providers[1].local_model == "/models/x.gguf"


def test_overrides(tmp_path: Path) -> None:
    loaded = load_spec(write(tmp_path, GOOD))
    one = apply_overrides(loaded, base_url="http://127.0.0.1:1/v1", model="m2",
                          api="completions", concurrency=3, repeat=2, prompt_ids=("twice",))
    assert [p.id for p in one.spec.providers] == ["m2"]
    assert one.spec.providers[0].api == "completions"
    assert one.spec.providers[0].concurrency == 3
    assert one.spec.repeat == 2 and [p.id for p in one.spec.prompts] == ["twice"]
    assert loaded.spec.repeat == 1  # the loaded spec is untouched
    with pytest.raises(ConfigError, match="--prompt 'nope' is not in the spec"):
        apply_overrides(loaded, prompt_ids=("nope",))
    with pytest.raises(ConfigError, match="go together"):
        apply_overrides(loaded, base_url="http://x/v1")


def test_spec_hash_ignores_speed_knobs(tmp_path: Path) -> None:
    loaded = load_spec(write(tmp_path, GOOD))
    assert apply_overrides(loaded, concurrency=1).spec_hash() == loaded.spec_hash()
    assert apply_overrides(loaded, repeat=3).spec_hash() != loaded.spec_hash()


def test_api_key_is_read_from_the_named_variable(tmp_path: Path, monkeypatch) -> None:
    provider = load_spec(write(tmp_path, GOOD)).spec.providers[0]
    monkeypatch.delenv("SOME_KEY", raising=False)
    with pytest.raises(ConfigError, match="environment variable SOME_KEY is not set"):
        provider.api_key()
    monkeypatch.setenv("SOME_KEY", "sk-canary")
    assert provider.api_key() == "sk-canary"


def test_shipped_evals_are_valid() -> None:
    for path in (REPO / "evals").glob("*.yaml"):
        loaded = load_spec(path)
        assert loaded.templates_dir.is_dir()
        assert loaded.dataset_path is None or loaded.dataset_path.is_file()


def test_json_schema_describes_the_spec() -> None:
    schema = json_schema()
    assert {"prompts", "providers", "assert", "dataset", "plugins"} <= set(schema["properties"])
    assert schema["properties"]["plugins"]["items"] == {"type": "string"}
    assert schema["additionalProperties"] is False


def test_every_shipped_and_scaffolded_spec_fits_the_json_schema() -> None:
    import jsonschema
    import yaml

    from promptkit.scaffold import packaged

    validator = jsonschema.Draft202012Validator(json_schema())
    texts = {path.name: path.read_text() for path in (REPO / "evals").glob("*.yaml")}
    texts["classify.yaml (init)"] = packaged("evals/classify.yaml")
    assert len(texts) >= 4
    for name, text in texts.items():
        errors = [f"{list(e.absolute_path)}: {e.message}"
                  for e in validator.iter_errors(yaml.safe_load(text))]
        assert not errors, f"{name}: {errors}"
    wrong = {**yaml.safe_load(texts["classify.yaml (init)"]), "providers": ["locale"]}
    assert list(validator.iter_errors(wrong))  # a string that is not a provider is not one


@pytest.mark.parametrize("value", ["AKIAIOSFODNN7EXAMPLE", "SK_LIVE_51HABCDEFGHIJ1234567890",
                                   "sk-proj-abc", "hf_abcdefghijk", "ghp_abcdef0123456789",
                                   "x" * 40, "my key", ""])
def test_api_key_env_refuses_keys_and_non_names_without_echoing(value: str) -> None:
    from pydantic import ValidationError

    from promptkit.running.spec import Provider

    with pytest.raises(ValidationError) as info:
        Provider(id="p", base_url="http://h/v1", model="m", api_key_env=value)
    message = info.value.errors()[0]["msg"]
    assert "api_key_env" in message and (not value or value not in message)


@pytest.mark.parametrize("value", ["OPENAI_API_KEY", "HF_TOKEN", "GITHUB_TOKEN",
                                   "ANTHROPIC_API_KEY_FOR_TESTING_PURPOSES_LONG", "KEY_2"])
def test_api_key_env_accepts_variable_names(value: str) -> None:
    from promptkit.running.spec import Provider

    assert Provider(id="p", base_url="http://h/v1", model="m", api_key_env=value).api_key_env


@pytest.mark.parametrize(("url", "problem"), [
    ("http//host/v1", "must start with http"),
    ("http://bob:hunter2secret@[::1/v1", "not a valid URL"),
    ("http://127.0.0.1:99999/v1", "not a valid URL"),
    ("http://bad host/v1", "spaces, control or non-ASCII"),
    ("ftp://bob:hunter2secret@host/v1", "must start with http"),
])
def test_bad_base_urls_are_input_errors_that_never_echo_a_password(url: str,
                                                                    problem: str) -> None:
    from pydantic import ValidationError

    from promptkit.running.spec import Provider

    with pytest.raises(ValidationError) as info:
        Provider(id="p", base_url=url, model="m")
    message = info.value.errors()[0]["msg"]
    assert problem in message and "hunter2secret" not in message
    assert Provider(id="p", base_url="HTTP://127.0.0.1:8080/v1", model="m")  # any case


def test_keys_and_headers_an_http_header_cannot_carry(monkeypatch) -> None:
    from pydantic import ValidationError

    from promptkit.errors import ConfigError
    from promptkit.running.spec import Provider

    provider = Provider(id="p", base_url="http://h/v1", model="m", api_key_env="MY_KEY")
    monkeypatch.setenv("MY_KEY", "sk-canary-0123456789\r")  # a CRLF .env file
    assert provider.api_key() == "sk-canary-0123456789"
    monkeypatch.setenv("MY_KEY", "sk-canary-01234\n56789")
    with pytest.raises(ConfigError, match="cannot carry") as info:
        provider.api_key()
    assert "canary" not in str(info.value)
    with pytest.raises(ValidationError) as header:
        Provider(id="p", base_url="http://h/v1", model="m",
                 headers={"X-Secret": "hdr-secret\x1b-value"})
    assert "hdr-secret" not in header.value.errors()[0]["msg"]
    with pytest.raises(ValidationError, match="one or the other"):
        Provider(id="p", base_url="http://u:pw@h/v1", model="m", api_key_env="MY_KEY")


def test_plugins_import_from_the_working_directory_before_assertions_are_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptkit.scoring.registry import lookup, unregister_assertion

    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "cwd_plugin_checks.py").write_text(
        "from promptkit import register_assertion\n"
        "register_assertion('shouts', takes='text')(lambda a, output, ctx: None)\n")
    (tmp_path / "spec").mkdir()
    spec = write(tmp_path / "spec", GOOD.replace("assert:\n", "plugins: [cwd_plugin_checks]\n"
                                                "assert:\n  - {type: shouts, value: HI}\n"))
    monkeypatch.chdir(tmp_path / "cwd")
    try:
        loaded = load_spec(spec)
        assert [a.type for a in loaded.spec.assert_] == ["shouts", "contains"]
        assert loaded.spec.plugins == ["cwd_plugin_checks"]
        assert sys.path[0] == str(tmp_path / "spec") and sys.path[-1] == str(tmp_path / "cwd")
    finally:
        sys.modules.pop("cwd_plugin_checks", None)
        if lookup("shouts"):
            unregister_assertion("shouts")


@pytest.mark.parametrize(("plugins", "message"), [
    ("mychecks.py", "plugins: give a list of module names, e.g. [mychecks]"),
    ("[checks/mine.py]", "plugins[0]: 'checks/mine.py' is not a module name (e.g. mychecks "
     "or myapp.checks)"),
    ("[os, mychecks.py]", "plugins[1]: cannot import 'mychecks.py': ModuleNotFoundError: No "
     "module named 'mychecks' (a module name has no .py: write 'mychecks')"),
    ("[{name: x}]", "plugins[0]: {'name': 'x'} is not a module name"),
])
def test_plugins_must_be_a_list_of_module_names(tmp_path: Path, plugins: str,
                                                message: str) -> None:
    path = write(tmp_path, f"plugins: {plugins}\n" + GOOD)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}:1: {message}")


@pytest.mark.parametrize(("cases", "line", "expected"), [
    ("  - {id: one, name: Ada}\n  - {id: one, name: Bo}\n", 17,
     "cases[1].id: duplicate case id 'one'"),
    ("  - {name: Ada}\n  - {name: Bo, assert: {type: contains}}\n", 17,
     "cases[1].assert: Input should be a valid list"),
    ("  - {name: Ada}\n  - {id: [1], name: Bo}\n", 17,
     "cases[1].id: a case id must be a string or a number, not list"),
])
def test_a_bad_inline_case_is_named_at_its_line_in_the_spec(
        tmp_path: Path, cases: str, line: int, expected: str) -> None:
    from promptkit.running.plan import plan_eval

    (tmp_path / "templates" / "greet").mkdir(parents=True)
    for version in (1, 2):
        (tmp_path / "templates" / "greet" / f"v{version}.jinja").write_text("Hi {{ name }}\n")
    path = write(tmp_path, GOOD.replace("  - {name: Ada}\n", cases))
    with pytest.raises(ConfigError) as info:
        plan_eval(load_spec(path)).count_cases()
    assert str(info.value) == f"{path}:{line}: {expected}"
