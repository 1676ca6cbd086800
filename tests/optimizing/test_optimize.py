"""promptkit optimize against the test endpoint: a scripted "model" that answers right only
when a particular example (or instruction phrase) is in its prompt. The search must find
it within the budget, the version it writes must check and re-score identically from the
cache, and the test split must not be sent before the final scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import promptkit as promptkit_cli
from promptkit.api import evaluate
from promptkit.errors import ConfigError
from promptkit.optimizing import OptimizeSettings, optimize
from promptkit.templates.lockfile import check
from promptkit.templates.store import TemplateStore
from promptkit.testing import FakeEndpoint, RecordedRequest

TEMPLATE = """---
description: Answers a question, after worked examples.
inputs:
  question: string
  examples:
    type: list
    default:
      - {question: "What is 1+1?", answer: "2"}
params: {temperature: 0, max_tokens: 8}
---
Answer the question.
{% for example in examples %}
Q: {{ example.question }}
A: {{ example.answer }}
{% endfor %}
Q: {{ question }}
A:
"""

SPEC = """\
templates: templates
prompts:
  - id: qa
    template: qa@1
providers:
  - id: fake
    base_url: {base_url}
    model: m
    stream: false
graders:
  - id: writer
    base_url: {base_url}
    model: proposer
    stream: false
dataset: cases.jsonl
assert:
  - type: equals
    value: RIGHT
"""

MAGIC = "ZEBRA"  # the one pool example that makes the scripted model answer right


def make_project(tmp_path: Path, endpoint: FakeEndpoint, cases: int = 40) -> Path:
    folder = tmp_path / "templates" / "qa"
    folder.mkdir(parents=True)
    (folder / "v1.jinja").write_text(TEMPLATE)
    store = TemplateStore(tmp_path / "templates")
    from promptkit.templates.lockfile import lock

    lock(store)
    (folder / "labels.yaml").write_text("# where apps look\nproduction: 1\n")
    with (tmp_path / "cases.jsonl").open("w") as handle:
        for i in range(cases):
            handle.write(json.dumps({"id": f"c{i:02d}", "question": f"question-{i:02d}?",
                                     "category": ["a", "b"][i % 2]}) + "\n")
    with (tmp_path / "pool.jsonl").open("w") as handle:
        for i in range(12):
            answer = MAGIC if i == 7 else f"plain-{i}"
            handle.write(json.dumps({"question": f"pool question {i}?",
                                     "answer": answer}) + "\n")
    spec = tmp_path / "eval.yaml"
    spec.write_text(SPEC.format(base_url=endpoint.base_url))
    return spec


def write_cases(tmp_path: Path, answer_of) -> None:
    """40 cases in two categories, each with an ``answer`` field (for bootstrapping)."""
    with (tmp_path / "cases.jsonl").open("w") as handle:
        for i in range(40):
            handle.write(json.dumps({"id": f"c{i:02d}", "question": f"question-{i:02d}?",
                                     "answer": answer_of(i),
                                     "category": ["a", "b"][i % 2]}) + "\n")


def picky_model(request: RecordedRequest) -> str:
    return "RIGHT" if MAGIC in request.prompt_text else "wrong"


def settings(**overrides) -> OptimizeSettings:
    values = {"prompt": "qa", "pool": None, "k": 2, "max_requests": 400, "seed": 3}
    return OptimizeSettings(**{**values, **overrides})


def test_the_fewshot_search_finds_the_example_that_works_and_writes_it(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    endpoint.respond_with(picky_model)
    report = optimize(spec, settings(pool=str(tmp_path / "pool.jsonl"), promote="production"))
    assert report.written == "qa@2" and report.winner != "start"
    assert report.split == {"train": 20, "validation": 10, "test": 10}
    assert report.validation[report.winner][0] == 1.0 and report.validation["start"][0] == 0
    assert report.test["winner"][0] == 1.0 and report.test["start"][0] == 0.0
    assert report.test["p_better"] == pytest.approx(0.5 ** 10)
    assert report.promoted and "production now points at qa@2" in report.promote_note
    assert len(endpoint.requests) == report.budget_used["requests"] <= 400
    store = TemplateStore(tmp_path / "templates")
    written = store.get("qa@2")
    assert check(store) == []  # parses, declared inputs, locked
    assert store.resolve("qa@production") == ("qa", 2)
    assert any(example["answer"] == MAGIC for example in written.inputs["examples"].default)
    assert written.front_matter.derived_from.version == 1
    assert written.front_matter.derived_from.sha256 == store.get("qa@1").sha256
    record = written.front_matter.optimizer
    assert (record.strategy, record.seed, record.provider) == ("fewshot", 3, "fake")
    assert record.test["pass_rate"] == 1.0 and record.budget_used["requests"] > 0
    assert written.render_text(question="q?") == store.get("qa@1").render_text(
        question="q?", examples=written.inputs["examples"].default)


def test_the_written_version_rescores_identically_from_the_cache(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    endpoint.respond_with(picky_model)
    report = optimize(spec, settings(pool=str(tmp_path / "pool.jsonl")))
    endpoint.reset()
    endpoint.respond_with(lambda request: "the cache was not used")
    text = spec.read_text().replace("template: qa@1", "template: qa@2")
    spec.write_text(text)
    again = evaluate(spec, prompts=["qa"])
    by_case = {r.case_id: r for r in again.results()}
    test_cases = [case for case, result in by_case.items() if result.cached]
    assert len(test_cases) >= report.split["test"]  # at least the test split came from it
    assert all(by_case[case].passed for case in test_cases)
    assert all(not by_case[case].passed for case in by_case if case not in test_cases)


def test_the_test_split_is_sent_only_in_the_final_scoring(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    endpoint.respond_with(picky_model)
    events: list[str] = []
    report = optimize(spec, settings(pool=str(tmp_path / "pool.jsonl")), on_event=events.append)
    test_ids = _split_ids(tmp_path)["test"]
    questions = {f"question-{case[1:]}?" for case in test_ids}
    sent = [request.prompt_text for request in endpoint.requests]
    touching = [i for i, prompt in enumerate(sent) if any(q in prompt for q in questions)]
    assert len(touching) == 2 * report.split["test"]  # the start and the winner, once each
    assert touching == list(range(len(sent) - len(touching), len(sent)))  # and last
    assert events.index(next(e for e in events if e.startswith("test:"))) > 0


def _split_ids(tmp_path: Path) -> dict[str, list[str]]:
    from promptkit.optimizing.splits import split_cases

    pairs = [(f"c{i:02d}", ["a", "b"][i % 2]) for i in range(40)]
    split = split_cases(pairs, (0.5, 0.25, 0.25), seed=3, stratum="category")
    return {"train": split.train, "validation": split.validation, "test": split.test}


def test_bootstrapped_examples_come_from_the_train_split_only(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    write_cases(tmp_path, lambda i: MAGIC if i == 5 else "x")
    endpoint.respond_with(picky_model)
    report = optimize(spec, settings(k=1))
    split = _split_ids(tmp_path)
    written = TemplateStore(tmp_path / "templates").get(report.written or "qa@1")
    shown = {example["question"] for example in written.inputs["examples"].default}
    held_out = {f"question-{case[1:]}?" for case in split["validation"] + split["test"]}
    assert not shown & held_out
    assert ("c05" in split["train"]) == (report.written is not None)


def test_an_interrupted_optimization_resumes_with_its_spent_budget(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    endpoint.respond_with(picky_model)

    def stop_at_test(event: str) -> None:
        if event.startswith("test:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimize(spec, settings(pool=str(tmp_path / "pool.jsonl")), on_event=stop_at_test)
    first = len(endpoint.requests)
    report = optimize(spec, settings(pool=str(tmp_path / "pool.jsonl"), resume=True))
    assert report.written == "qa@2"
    assert len(endpoint.requests) - first == 2 * report.split["test"]  # the rest: cached
    assert report.budget_used["requests"] == len(endpoint.requests)
    with pytest.raises(ConfigError, match="nothing to resume"):
        optimize(spec, settings(pool=str(tmp_path / "pool.jsonl"), resume=True))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"prompt": "nope"}, "neither a prompt id"),
    ({"pool": "POOL_LACKING"}, "lacks answer"),
    ({"max_requests": 5, "pool": "POOL"}, "too small for one candidate"),
    ({"split": "0.9/0.05/0.05"}, "empty"),
    ({"strategy": "instructions", "proposer": "fake"}, "not declared under graders"),
    ({"strategy": "instructions"}, "needs --proposer"),
    ({"provider": "other"}, "not a provider"),
])
def test_bad_input_is_refused_before_any_request(tmp_path: Path, endpoint: FakeEndpoint,
                                                 overrides: dict, message: str) -> None:
    spec = make_project(tmp_path, endpoint, cases=12)
    if overrides.get("pool") == "POOL_LACKING":
        (tmp_path / "lacking.jsonl").write_text('{"question": "q"}\n')
        overrides = {"pool": str(tmp_path / "lacking.jsonl")}
    elif overrides.get("pool") == "POOL":
        overrides = {**overrides, "pool": str(tmp_path / "pool.jsonl")}
    with pytest.raises(ConfigError, match=message):
        optimize(spec, settings(**overrides))
    assert endpoint.requests == []
    assert not (tmp_path / "templates" / "qa" / "v2.jinja").exists()


def test_promote_is_refused_when_the_new_version_does_not_pass_more_test_cases(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    calls = {"n": 0}

    def lucky_then_not(request: RecordedRequest) -> str:
        # right with the magic example on train and validation, never on the test split
        test_questions = {f"question-{c[1:]}?" for c in _split_ids(tmp_path)["test"]}
        calls["n"] += 1
        if any(q in request.prompt_text for q in test_questions):
            return "wrong"
        return picky_model(request)

    endpoint.respond_with(lucky_then_not)
    report = optimize(spec, settings(pool=str(tmp_path / "pool.jsonl"), promote="production"))
    assert report.written == "qa@2" and not report.promoted and report.exit_code == 1
    assert "production left where it was" in report.promote_note
    assert TemplateStore(tmp_path / "templates").resolve("qa@production") == ("qa", 1)
    labels = (tmp_path / "templates" / "qa" / "labels.yaml").read_text()
    assert labels == "# where apps look\nproduction: 1\n"


def test_the_command_line_optimizes_and_exits_0(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    endpoint.respond_with(picky_model)
    done = promptkit_cli("optimize", str(spec), "--prompt", "qa", "--pool",
                         str(tmp_path / "pool.jsonl"), "--k", "2", "--seed", "3",
                         "--max-requests", "400", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote qa@2" in done.stdout and "test (10 cases)" in done.stdout
    bad = promptkit_cli("optimize", str(spec), "--prompt", "qa", "--max-requests", "3",
                        "--pool", str(tmp_path / "pool.jsonl"), cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "too small for one candidate" in bad.stderr


PHRASE = "Think of stripes first."


def phrase_model(request: RecordedRequest) -> str:
    if request.body.get("model") == "proposer":
        template = request.prompt_text.split("```jinja\n", 1)[1].split("```", 1)[0]
        rewrite = template.replace("Answer the question.", f"Answer the question. {PHRASE}")
        return f"Here is a better template:\n```jinja\n{rewrite}```\n"
    return "RIGHT" if PHRASE in request.prompt_text else "wrong"


def test_the_instructions_search_finds_the_phrase_through_the_proposer(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    pytest.importorskip("gepa")
    spec = make_project(tmp_path, endpoint)
    endpoint.respond_with(phrase_model)
    report = optimize(spec, settings(strategy="instructions", proposer="writer",
                                     max_requests=200))
    assert report.written == "qa@2", report.events
    assert report.test["winner"][0] == 1.0 and report.test["start"][0] == 0.0
    written = TemplateStore(tmp_path / "templates").get("qa@2")
    assert PHRASE in written.body and written.front_matter.optimizer.strategy == "instructions"
    assert written.inputs["examples"].default == [{"question": "What is 1+1?", "answer": "2"}]
    proposer_requests = [r for r in endpoint.requests if r.body.get("model") == "proposer"]
    assert proposer_requests and len(endpoint.requests) <= 200
    assert check(TemplateStore(tmp_path / "templates")) == []


def test_a_rewrite_that_drops_a_variable_is_discarded_and_counted(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    pytest.importorskip("gepa")
    spec = make_project(tmp_path, endpoint)

    def careless(request: RecordedRequest) -> str:
        if request.body.get("model") == "proposer":
            return f"```jinja\n{PHRASE}\nQ: {{{{ question }}}}\nA:\n```"  # drops the examples
        return phrase_model(request)

    endpoint.respond_with(careless)
    report = optimize(spec, settings(strategy="instructions", proposer="writer",
                                     max_requests=120))
    assert report.written is None and report.winner == "start"
    assert report.discarded and "no longer reads examples" in report.discarded[0]
    assert not (tmp_path / "templates" / "qa" / "v2.jinja").exists()


def test_without_a_pool_the_examples_are_the_train_cases_the_start_passes(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    write_cases(tmp_path, lambda i: f"answer-{i:02d}")

    def odd_only(request: RecordedRequest) -> str:  # passes the odd-numbered questions
        asked = request.prompt_text.rsplit("Q: question-", 1)[-1][:2]
        return "RIGHT" if int(asked) % 2 else "wrong"

    endpoint.respond_with(odd_only)
    events: list[str] = []
    optimize(spec, settings(k=2), on_event=events.append)
    train = _split_ids(tmp_path)["train"]
    odd = [case for case in train if int(case[1:]) % 2]
    assert f"bootstrap: the {len(odd)} train cases start passes are the candidate examples" \
        in events
    import re

    shown = {int(n) for r in endpoint.requests for n in re.findall(r"A: answer-(\d\d)",
                                                                   r.prompt_text)}
    assert shown and shown <= {int(case[1:]) for case in odd}


def test_the_library_call_works_inside_a_running_event_loop(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    import asyncio

    import promptkit

    spec = make_project(tmp_path, endpoint)
    endpoint.respond_with(picky_model)

    async def notebook_cell() -> promptkit.OptimizeReport:
        return promptkit.optimize(spec, promptkit.OptimizeSettings(
            prompt="qa", pool=str(tmp_path / "pool.jsonl"), k=2, seed=3, max_requests=400))

    report = asyncio.run(notebook_cell())
    assert report.written == "qa@2" and report.exit_code == 0


def test_max_cost_needs_a_priced_provider_and_the_request_cap_still_holds(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    endpoint.respond_with(picky_model)
    pool = str(tmp_path / "pool.jsonl")
    with pytest.raises(ConfigError, match="no provider this optimization asks has one"):
        optimize(spec, settings(pool=pool, max_requests=None, max_cost=0.01))
    assert endpoint.requests == []
    spec.write_text(spec.read_text().replace(
        "    stream: false\ngraders:",
        "    stream: false\n    price: {input_per_mtok: 0.1, output_per_mtok: 0.1}\ngraders:"))
    report = optimize(spec, settings(pool=pool, max_requests=None, max_cost=100.0))
    assert len(endpoint.requests) <= 300 and report.written == "qa@2"


def test_a_pool_row_showing_a_held_out_case_is_never_an_example(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    with (tmp_path / "pool.jsonl").open("w") as handle:  # every case's question, any answer
        for i in range(40):
            handle.write(json.dumps({"question": f"question-{i:02d}?",
                                     "answer": MAGIC if i % 3 else "other"}) + "\n")
    endpoint.respond_with(picky_model)
    optimize(spec, settings(pool=str(tmp_path / "pool.jsonl")))
    split = _split_ids(tmp_path)
    held_out = {f"question-{c[1:]}?" for c in split["validation"] + split["test"]}
    for request in endpoint.requests:
        asked = request.prompt_text.rsplit("Q: ", 1)[1]
        shown = request.prompt_text.rsplit("Q: ", 1)[0]
        assert not any(f"Q: {q}" in shown for q in held_out), asked


def test_the_spent_budget_is_saved_before_each_request_goes_out(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    endpoint.respond_with(picky_model)
    seen = {"n": 0}

    def crash_midway(result) -> None:
        seen["n"] += 1
        if seen["n"] == 23:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimize(spec, settings(pool=str(tmp_path / "pool.jsonl")), on_result=crash_midway)
    (state,) = (tmp_path / ".promptkit" / "optimize").glob("*.json")
    assert json.loads(state.read_text())["requests_sent"] >= len(endpoint.requests) > 0


def test_judge_requests_are_planned_and_counted(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    spec.write_text(spec.read_text() + "  - type: llm-judge\n    provider: writer\n"
                    "    value: The answer is RIGHT.\n")

    def model_and_judge(request: RecordedRequest) -> str:
        if request.body.get("model") == "proposer":
            return json.dumps({"reasoning": "ok", "score": 1.0, "pass": True})
        return picky_model(request)

    endpoint.respond_with(model_and_judge)
    dry = optimize(spec, settings(pool=str(tmp_path / "pool.jsonl")), dry_run=True)
    assert dry.dry_run["reserve"].requests == 2 * (4 * 10 + 2 * 10)  # answer + verdict each
    report = optimize(spec, settings(pool=str(tmp_path / "pool.jsonl"), max_requests=300))
    assert len(endpoint.requests) <= 300 and report.exit_code == 0 and report.written


def test_a_budget_that_cannot_cover_a_search_round_is_refused(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    pool = str(tmp_path / "pool.jsonl")
    dry = optimize(spec, settings(pool=pool), dry_run=True)
    needed = dry.dry_run["reserve"].requests + dry.dry_run["round"].requests
    assert dry.dry_run["round"].requests == 5 * 8  # the start and 4 random sets
    with pytest.raises(ConfigError, match=f"raise --max-requests to at least {needed}"):
        optimize(spec, settings(pool=pool, max_requests=needed - 1))
    assert endpoint.requests == []


def test_an_endpoint_failing_every_request_is_not_reported_as_no_gain(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    from promptkit.errors import EndpointError
    from promptkit.testing import Reply

    spec = make_project(tmp_path, endpoint)
    spec.write_text(spec.read_text().replace("stream: false\ngraders",
                                             "stream: false\n    retries: 0\ngraders"))
    endpoint.respond_with(lambda request: Reply.status(400, "bad request"))
    with pytest.raises(EndpointError, match="every request of the search scoring failed"):
        optimize(spec, settings(pool=str(tmp_path / "pool.jsonl")))


@pytest.mark.parametrize("label", ["", "latest", "v2", "a b", "../evil"])
def test_an_invalid_promote_label_is_refused_before_any_request(
        tmp_path: Path, endpoint: FakeEndpoint, label: str) -> None:
    spec = make_project(tmp_path, endpoint)
    with pytest.raises(ConfigError, match="--promote: invalid label"):
        optimize(spec, settings(pool=str(tmp_path / "pool.jsonl"), promote=label))
    assert endpoint.requests == []


def test_an_unwritable_lock_is_found_before_any_request(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    lock = tmp_path / "templates" / "promptkit.lock"
    lock.unlink()
    lock.mkdir()  # open() refuses it, for root too
    with pytest.raises(ConfigError, match="not writable"):
        optimize(spec, settings(pool=str(tmp_path / "pool.jsonl")))
    assert endpoint.requests == []


def test_promote_keeps_a_flow_style_labels_file_valid(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_project(tmp_path, endpoint)
    labels = tmp_path / "templates" / "qa" / "labels.yaml"
    labels.write_text("{production: 1, staging: 1}\n")
    endpoint.respond_with(picky_model)
    report = optimize(spec, settings(pool=str(tmp_path / "pool.jsonl"), promote="production"))
    assert report.promoted
    assert TemplateStore(tmp_path / "templates").labels("qa") == {"production": 2, "staging": 1}
