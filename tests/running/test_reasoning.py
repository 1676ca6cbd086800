"""Few-shot selection, chain-of-thought and self-consistency inside eval runs and templates."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from pathlib import Path

import pytest

from promptkit import TemplateSecurityError, TemplateStore
from promptkit.errors import ConfigError
from promptkit.running.plan import plan_eval
from promptkit.running.runner import RunOptions, run_eval
from promptkit.running.spec import load_spec
from promptkit.testing import FakeEndpoint, Reply

REPO = Path(__file__).parents[2]

POOL = [
    {"id": "p1", "question": "A train travels 60 km per hour for 2 hours. How far?",
     "rationale": "60 × 2 = 120.", "answer": "120", "topic": "travel"},
    {"id": "p2", "question": "Tom buys 3 apples at 2 dollars each. How much?",
     "rationale": "3 × 2 = 6.", "answer": "6", "topic": "shopping"},
    {"id": "p3", "question": "A recipe needs 2 eggs per cake. Eggs for 4 cakes?",
     "rationale": "2 × 4 = 8.", "answer": "8", "topic": "cooking"},
]

SPEC = """\
templates: {templates}
prompts:
{prompts}
providers:
  - id: fake
    base_url: {base_url}
    model: m
    stream: false
cases:
  - {{id: q1, question: "A bus travels 50 km per hour for 3 hours. How far?", answer: "150"}}
assert:
  - type: equals
    value: "{{{{ answer }}}}"
"""


def make_eval(tmp_path: Path, endpoint: FakeEndpoint, prompts: str) -> Path:
    with (tmp_path / "pool.jsonl").open("w") as handle:
        for row in POOL:
            handle.write(json.dumps(row) + "\n")
    path = tmp_path / "eval.yaml"
    path.write_text(SPEC.format(templates=REPO / "templates", prompts=prompts,
                                base_url=endpoint.base_url))
    return path


def run(path: Path, **options):
    outcome = asyncio.run(run_eval(plan_eval(load_spec(path)), RunOptions(**options)))
    return list(outcome.results())


def test_self_consistency_votes_over_samples(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    answers = itertools.cycle(["So the answer is 150.", "Answer: 140", "150 km", "It is 150",
                               "Answer: 160"])
    endpoint.respond_with(lambda request: Reply.text(next(answers), latency=0.1))
    path = make_eval(tmp_path, endpoint, """\
  - id: sc
    template: math@1
    cot: {style: self-consistency, samples: 5, temperature: 0.7,
          extract: {method: last-number}}""")
    (result,) = run(path)
    assert endpoint.count == 5 and result.requests == 5
    assert all(r.body["temperature"] == 0.7 for r in endpoint.requests)
    assert result.votes == {"150": 3, "140": 1, "160": 1}
    assert result.answer == "150" and result.passed
    assert result.metrics["agreement"] == pytest.approx(0.6)
    assert "Let's think step by step." in endpoint.requests[0].prompt_text
    # the five samples ran side by side: the case took about 0.1 s, generating took 0.5 s
    assert result.generation_s is not None and result.generation_s >= 0.5
    assert result.latency_s < result.generation_s / 2
    (again,) = run(path)
    assert endpoint.count == 5 and again.cached and again.answer == "150"


def test_a_tie_is_broken_by_first_appearance(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    answers = iter(["Answer: 140", "Answer: 150", "Answer: 150", "Answer: 140"])
    endpoint.respond_with(lambda request: Reply.text(next(answers)))
    path = make_eval(tmp_path, endpoint, """\
  - id: sc
    template: math@1
    cot: {style: self-consistency, samples: 4, extract: {method: marker}}""")
    # One request at a time, so the answers reach the samples in order.
    path.write_text(path.read_text().replace("    stream: false\n",
                                             "    stream: false\n    concurrency: 1\n"))
    (result,) = run(path, use_cache=False)
    assert result.votes == {"140": 2, "150": 2} and result.answer == "140"
    assert not result.passed and result.metrics["agreement"] == 0.5


def test_fewshot_variant_picks_examples_per_case(tmp_path: Path,
                                                 endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text("Answer: 150")
    path = make_eval(tmp_path, endpoint, """\
  - id: similar
    template: math@1
    vars: {rationales: true}
    fewshot: {pool: pool.jsonl, k: 1, select: similar, fields: [question]}
    cot: {style: few-shot, extract: {method: marker}}
  - id: first
    template: math@1
    fewshot: {pool: pool.jsonl, k: 2, select: first, fields: [question]}
    cot: {style: none, extract: {method: last-number}}""")
    similar, first = sorted(run(path), key=lambda r: r.prompt_id != "similar")
    prompts = {r.body["messages"][0]["content"] for r in endpoint.requests}
    similar_prompt = next(p for p in prompts if "Reasoning:" in p)
    assert "A train travels 60 km per hour" in similar_prompt  # the travel example
    assert "Tom buys" not in similar_prompt
    assert similar_prompt.endswith('End with a line "Answer: <answer>".')
    first_prompt = next(p for p in prompts if "Reasoning:" not in p)
    assert "A train travels" in first_prompt and "Tom buys" in first_prompt
    assert "step by step" not in first_prompt
    assert similar.passed and first.passed and similar.answer == "150"


def test_bad_fewshot_and_cot_settings_name_their_key(tmp_path: Path,
                                                     endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, """\
  - id: bad
    template: math@1
    fewshot: {pool: pool.jsonl, select: balanced}""")
    with pytest.raises(ConfigError, match=r"eval\.yaml:\d+: prompts\[0\]\.fewshot.*label"):
        plan_eval(load_spec(path))
    path = make_eval(tmp_path, endpoint, """\
  - id: bad
    template: math@1
    cot: {style: zero-shot, extract: {method: regex, pattern: "(unclosed"}}""")
    with pytest.raises(ConfigError, match=r"prompts\[0\]\.cot"):
        plan_eval(load_spec(path))


def test_shipped_reasoning_eval_compares_selectors_and_cot_styles() -> None:
    plan = plan_eval(load_spec(REPO / "evals" / "reasoning.yaml"))
    selects = {v.fewshot.select for v in plan.spec.prompts if v.fewshot}
    styles = {v.cot.style for v in plan.spec.prompts if v.cot}
    assert {"first", "similar", "mmr"} <= selects
    assert {"none", "zero-shot", "few-shot", "self-consistency"} <= styles


@pytest.fixture
def pool_store(tmp_path: Path) -> TemplateStore:
    shutil.copytree(REPO / "templates", tmp_path / "t")
    (tmp_path / "t" / "_pools").mkdir()
    with (tmp_path / "t" / "_pools" / "math.jsonl").open("w") as handle:
        for row in POOL:
            handle.write(json.dumps(row) + "\n")
    (tmp_path / "secret.jsonl").write_text('{"question": "secret"}\n')
    return TemplateStore(tmp_path / "t")


def test_template_globals_select_examples_and_give_triggers(pool_store: TemplateStore) -> None:
    source = ('{% for ex in fewshot("_pools/math.jsonl", question, k=1) %}'
              'Q: {{ ex.question }} A: {{ ex.answer }}{% endfor %}\n'
              'Q: {{ question }} {{ cot_trigger("zh") }}')
    text = pool_store.render_string(source, {"question": "How many eggs for 3 cakes?"})
    assert text.startswith("Q: A recipe needs 2 eggs per cake.")
    assert text.endswith("让我们一步一步地思考。")
    with pytest.raises(TemplateSecurityError):
        pool_store.render_string('{{ fewshot("../secret.jsonl", "x") }}', {})


def test_similar_examples_by_embeddings_from_a_grader(tmp_path: Path,
                                                      endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text("Answer: 150")
    path = make_eval(tmp_path, endpoint, """\
  - id: embedded
    template: math@1
    fewshot: {pool: pool.jsonl, k: 1, select: similar, fields: [question],
              embeddings: embedder}""")
    path.write_text(path.read_text() + f"""\
graders:
  - id: embedder
    base_url: {endpoint.base_url}
    model: fake-embedding
""")
    (result,) = run(path)
    embedding_calls = [r for r in endpoint.requests if r.path == "/v1/embeddings"]
    # the pool once, the case's question once: the pre-run check calls no endpoint
    assert [len(r.body["input"]) for r in embedding_calls] == [3, 1]
    prompt = next(r for r in endpoint.requests if r.path == "/v1/chat/completions")
    assert "A train travels 60 km per hour" in prompt.body["messages"][0]["content"]
    assert result.error is None
