"""Tests for promptkit.builders.fewshot_settings: one model for eval specs and Python.

An eval spec's ``fewshot:``, ``few_shot()``'s keyword arguments and the ``fewshot()``
template global are the same :class:`FewShotSettings`, with the same names and defaults
(one default example format among them); the old names still work for one release,
with a DeprecationWarning naming the new key; a bad setting in a spec names the file, the
line and ``prompts[i].fewshot.<key>``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from promptkit.builders.fewshot import FewShotSettings, few_shot
from promptkit.errors import ConfigError, PromptkitWarning
from promptkit.running.plan import plan_eval
from promptkit.running.spec import json_schema, load_spec

REPO = Path(__file__).parents[2]

POOL = [
    {"id": "p1", "question": "A train travels 60 km per hour for 2 hours. How far?",
     "answer": "120", "topic": "travel"},
    {"id": "p2", "question": "Tom buys 3 apples at 2 dollars each. How much?",
     "answer": "6", "topic": "shopping"},
    {"id": "p3", "question": "A recipe needs 2 eggs per cake. Eggs for 4 cakes?",
     "answer": "8", "topic": "cooking"},
]
QUERY = {"question": "A bus travels 50 km per hour for 3 hours. How far?"}

# `fewshot:` is on line 5, its first key on line 6.
SPEC = """\
templates: {templates}
prompts:
  - id: shots
    template: math@1
    fewshot:
{fewshot}
providers:
  - {{id: fake, base_url: "http://127.0.0.1:9/v1", model: m}}
cases:
  - {{id: q1, question: "{question}"}}
"""


def write_spec(tmp_path: Path, fewshot: str) -> Path:
    with (tmp_path / "pool.jsonl").open("w", encoding="utf-8") as handle:
        for row in POOL:
            handle.write(json.dumps(row) + "\n")
    body = "\n".join(f"      {line}" for line in fewshot.strip().splitlines())
    path = tmp_path / "eval.yaml"
    path.write_text(SPEC.format(templates=REPO / "templates", fewshot=body,
                                question=QUERY["question"]), encoding="utf-8")
    return path


# -- one model ---------------------------------------------------------------------------


def test_a_spec_and_few_shot_give_the_same_model(tmp_path: Path) -> None:
    path = write_spec(tmp_path, """\
pool: pool.jsonl
k: 2
select: mmr
mmr_lambda: 0.3
fields: [question]
budget: 200
format: "Q: {question} A: {answer}"
""")
    from_yaml = load_spec(path).spec.prompts[0].fewshot
    from_python = few_shot(tmp_path / "pool.jsonl", k=2, select="mmr", mmr_lambda=0.3,
                           fields=["question"], budget=200,
                           format="Q: {question} A: {answer}").settings
    assert type(from_yaml) is FewShotSettings and type(from_python) is FewShotSettings
    assert from_yaml.model_dump(exclude={"pool"}) == from_python.model_dump(exclude={"pool"})
    plan = plan_eval(load_spec(path))
    selector = plan.fewshots["shots"]
    assert selector.settings is plan.spec.prompts[0].fewshot  # used as validated
    assert selector(QUERY) == few_shot(from_python)(QUERY)
    assert selector(QUERY)[0]["id"] == "p1"


def test_every_option_of_few_shot_is_a_settings_field() -> None:
    import inspect

    from promptkit.builders.fewshot import FewShot

    # How to run a selector, not how it chooses: exactly what FewShot takes besides its
    # settings (the pool is the settings' own first field).
    runtime = {"embed", "model", "base_dir", "name"}
    assert set(inspect.signature(FewShot).parameters) == {"settings", *runtime}
    assert not runtime & set(FewShotSettings.model_fields)
    options = set(inspect.signature(few_shot).parameters) - runtime - {"pool", "deprecated"}
    assert options <= set(FewShotSettings.model_fields)
    # What few_shot() does not take is what only an eval spec can use.
    assert set(FewShotSettings.model_fields) - options == {"pool", "var", "embeddings"}


def test_few_shot_a_spec_and_the_template_global_have_the_same_defaults() -> None:
    import inspect

    from promptkit import TemplateStore

    parameters = inspect.signature(few_shot).parameters
    fields = FewShotSettings.model_fields
    shared = [name for name in parameters if name in fields and name != "pool"]
    assert {name: parameters[name].default for name in shared} == {
        name: fields[name].default for name in shared}
    template_global = inspect.signature(TemplateStore._fewshot).parameters
    assert {name: template_global[name].default for name in ("k", "select")} == {
        "k": fields["k"].default, "select": fields["select"].default}


PLAIN_POOL = [{"id": f"io{n}", "input": row["question"], "output": row["answer"]}
              for n, row in enumerate(POOL, 1)]


def write_pool(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.mark.parametrize(("rows", "written"), [
    # Examples with more than input and output: every field but id as `name: value`.
    (POOL, lambda row: "\n".join(f"{name}: {value}" for name, value in row.items()
                                 if name != "id")),
    # Just input and output (and ids): "Input: ...\nOutput: ...".
    (PLAIN_POOL, lambda row: f"Input: {row['input']}\nOutput: {row['output']}"),
])
def test_python_a_spec_and_the_template_global_write_examples_alike_by_default(
        tmp_path: Path, rows: list[dict], written) -> None:
    from promptkit import TemplateStore
    from promptkit.tokens import count_tokens

    # A budget that the first two examples, written by default, fit exactly.
    budget = sum(count_tokens(written(row)) for row in rows[:2])
    python = few_shot(rows, k=3, select="first", budget=budget)
    assert python.text(QUERY) == "\n\n".join(written(row) for row in rows[:2])

    # (in `chosen`, which math@1 does not show: its examples need a question)
    path = write_spec(tmp_path, "{pool: pool.jsonl, k: 3, select: first, var: chosen, "
                                f"budget: {budget}}}")
    write_pool(tmp_path / "pool.jsonl", rows)
    spec = plan_eval(load_spec(path)).fewshots["shots"]
    assert spec.example_format == python.example_format

    write_pool(tmp_path / "pool_for_templates.jsonl", rows)
    store = TemplateStore(tmp_path)
    template = ('{% for ex in fewshot("pool_for_templates.jsonl", question, k=3, '
                f'select="first", budget={budget}) %}}{{{{ ex.id }}}} {{% endfor %}}')
    expected = " ".join(row["id"] for row in rows[:2]) + " "
    assert store.render_string(template, QUERY) == expected
    assert [row["id"] for row in spec(QUERY)] == [row["id"] for row in python(QUERY)] == [
        row["id"] for row in rows[:2]]


def test_the_template_globals_budget_warning_names_the_call_and_the_template(
        tmp_path: Path) -> None:
    from promptkit import TemplateStore

    write_pool(tmp_path / "pool.jsonl", POOL)
    (tmp_path / "shots").mkdir()
    (tmp_path / "shots" / "v1.jinja").write_text(
        '{% for ex in fewshot("pool.jsonl", question, k=2, budget=1) %}{{ ex.id }}{% endfor %}'
        '{% for ex in fewshot("pool.jsonl", question, budget=1, name="the menu") %}'
        "{{ ex.id }}{% endfor %}", encoding="utf-8")
    store = TemplateStore(tmp_path)
    with pytest.warns(PromptkitWarning) as record:
        assert store.get("shots@1").render_text(QUERY) == ""
        assert store.render_string('{{ fewshot("pool.jsonl", question, budget=1) }}',
                                   QUERY) == "[]"
    where = tmp_path / "shots" / "v1.jinja"
    assert [str(w.message).split(": pool of 3 examples")[0] for w in record] == [
        f"few-shot budget of 1 tokens fits no example (fewshot('pool.jsonl') in {where}",
        "few-shot budget of 1 tokens fits no example (the menu",
        "few-shot budget of 1 tokens fits no example (fewshot('pool.jsonl')",
    ]


def test_the_spec_schema_names_the_new_keys() -> None:
    schema = json_schema()
    fewshot = schema["$defs"]["FewShotSettings"]
    assert {"mmr_lambda", "budget", "format"} <= set(fewshot["properties"])
    assert "lambda" not in fewshot["properties"]
    assert fewshot["properties"]["pool"]["type"] == "string"
    assert fewshot["additionalProperties"] is False


# -- deprecated names --------------------------------------------------------------------


def test_lambda_in_a_spec_still_works_with_a_deprecation_warning(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "{pool: pool.jsonl, select: mmr, lambda: 0.25}")
    with pytest.warns(DeprecationWarning, match="'lambda' is deprecated.*use 'mmr_lambda'"):
        settings = load_spec(path).spec.prompts[0].fewshot
    assert settings.mmr_lambda == 0.25
    path = write_spec(tmp_path, "{pool: pool.jsonl, lambda: 0.25, mmr_lambda: 0.5}")
    with pytest.raises(ConfigError, match=r"prompts\[0\]\.fewshot: give mmr_lambda only"):
        load_spec(path)


@pytest.mark.parametrize(("old", "new", "value"), [
    ("max_tokens", "budget", 40),
    ("template", "format", "Q: {question}"),
    ("lambda", "mmr_lambda", 0.2),
])
def test_old_python_names_still_work_with_a_deprecation_warning(old: str, new: str,
                                                                value: object) -> None:
    options = {"select": "mmr", "format": "Q: {question}"}
    options.pop(new, None)
    with pytest.warns(DeprecationWarning, match=f"few_shot\\(\\): '{old}' is deprecated.*"
                                                f"use '{new}'") as record:
        shots = few_shot(POOL, **options, **{old: value})
    assert record[0].filename == __file__  # the warning points at the caller
    assert getattr(shots.settings, new) == value
    assert shots(QUERY) == few_shot(POOL, **options, **{new: value})(QUERY)
    with pytest.raises(TypeError, match=f"got '{new}' and its old name '{old}'"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        few_shot(POOL, **{old: value, new: value})


def test_text_takes_the_old_template_name_with_a_warning() -> None:
    shots = few_shot(POOL, k=1, fields=["question"])
    with pytest.warns(DeprecationWarning, match="'template' is deprecated.*use 'format'"):
        text = shots.text(QUERY, template="Q: {question}")
    assert text == shots.text(QUERY, format="Q: {question}") == "Q: " + POOL[0]["question"]


def test_an_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'top_k'"):
        few_shot(POOL, top_k=2)


def test_the_template_global_takes_new_and_old_names(tmp_path: Path) -> None:
    from promptkit import TemplateStore

    (tmp_path / "_pools").mkdir()
    with (tmp_path / "_pools" / "math.jsonl").open("w") as handle:
        for row in POOL:
            handle.write(json.dumps(row) + "\n")
    store = TemplateStore(tmp_path)
    def source(options: str) -> str:
        return ('{% for ex in fewshot("_pools/math.jsonl", question, k=3, select="first", '
                + options + ") %}{{ ex.id }} {% endfor %}")

    new = store.render_string(source('budget=31, format="{question}"'), QUERY)
    with pytest.warns(DeprecationWarning) as record:
        old = store.render_string(source('max_tokens=31, template="{question}"'), QUERY)
    assert sorted(str(w.message).split("'")[1:4:2] for w in record) == [
        ["max_tokens", "budget"], ["template", "format"]]
    assert new == old == "p1 p2 "  # 16 + 14 tokens: p3 (15 more) does not fit


# -- errors in a spec name file, line and key --------------------------------------------


@pytest.mark.parametrize(("fewshot", "line", "key", "message"), [
    ("pool: pool.jsonl\nk: 500", 7, "k", "less than or equal to 100"),
    ("pool: pool.jsonl\nselect: nearest", 7, "select", "Input should be 'first'"),
    ("pool: pool.jsonl\nselect: balanced", 5, "label", "the balanced selector needs a label"),
    ("pool: pool.jsonl\nbudget: 0", 7, "budget", "greater than or equal to 1"),
    ("pool: pool.jsonl\nmmr_lambda: 2", 7, "mmr_lambda", "less than or equal to 1"),
    ("pool: pool.jsonl\nformat: '{question.__class__}'", 7, "format", "must be a plain name"),
    ("pool: pool.jsonl\nmax_tokens: 50", 7, "max_tokens", "unknown key"),
    ("k: 2", 5, "pool", "required key is missing"),
    ("pool: [{question: a}]", 5, "", "pool: give the JSONL or CSV file"),
])
def test_a_bad_setting_names_file_line_and_key(tmp_path: Path, fewshot: str, line: int,
                                               key: str, message: str) -> None:
    path = write_spec(tmp_path, fewshot)
    where = f"prompts[0].fewshot.{key}" if key else "prompts[0].fewshot"
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}:{line}: {where}: ")
    assert message in info.value.message


@pytest.mark.parametrize(("kwargs", "key", "message"), [
    ({"pool": "p", "k": -1}, "fewshot.k", "greater than or equal to 0"),
    ({"pool": "p", "select": "nearest"}, "fewshot.select", "Input should be 'first'"),
    ({"pool": "p", "select": "balanced"}, "fewshot.label", "needs a label field"),
    ({"pool": "p", "colour": "red"}, "fewshot.colour", "unknown key 'colour'"),
    ({"k": 2}, "fewshot.pool", "required key is missing"),
])
def test_the_settings_constructor_raises_config_errors_naming_the_key(
        kwargs: dict, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        FewShotSettings(**kwargs)
    assert info.value.key_path == key


def test_pool_problems_name_the_pool_file(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "{pool: missing.jsonl}")
    with pytest.raises(ConfigError, match=r"missing\.jsonl: dataset file not found"):
        plan_eval(load_spec(path))
    path = write_spec(tmp_path, "{pool: pool.jsonl, fields: [questoin]}")
    with pytest.raises(ConfigError) as info:
        plan_eval(load_spec(path))
    assert info.value.filename == str(tmp_path / "pool.jsonl")
    assert "'questoin' is in none of the pool's 3 examples" in str(info.value)
    (tmp_path / "bad.jsonl").write_text('{"question": "ok"}\n{"question": oops}\n')
    path.write_text(path.read_text().replace("pool.jsonl", "bad.jsonl"))
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2: invalid JSON"):
        plan_eval(load_spec(path))
