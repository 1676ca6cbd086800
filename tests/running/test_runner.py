"""The eval loop against a real scripted HTTP endpoint: storage, cache, faults, resume."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from helpers import promptkit as promptkit_cli
from promptkit.errors import ConfigError, PromptkitError, TemplateRenderError
from promptkit.running.cache import ResponseCache
from promptkit.running.plan import plan_eval
from promptkit.running.runner import RunOptions, run_eval
from promptkit.running.spec import load_spec
from promptkit.running.storage import RunStore
from promptkit.testing import FakeEndpoint, Reply

REPO = Path(__file__).parents[2]

SPEC = """\
templates: templates
prompts:
  - summarize@1
  - id: few
    template: summarize@2
providers:
  - id: fake
    base_url: {base_url}
    model: m
    stream: {stream}
    concurrency: 4
    retries: 1
    price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
dataset: data.jsonl
assert:
  - type: icontains
    value: "{{{{ keyword }}}}"
repeat: {repeat}
"""


def make_eval(tmp_path: Path, endpoint: FakeEndpoint, cases: int = 3, stream: bool = False,
              repeat: int = 1) -> Path:
    shutil.copytree(REPO / "templates", tmp_path / "templates", dirs_exist_ok=True)
    with (tmp_path / "data.jsonl").open("w") as handle:
        for i in range(cases):
            row = {"id": f"c{i}", "article": f"Article number {i} about keyword{i}.",
                   "keyword": f"keyword{i}"}
            handle.write(json.dumps(row) + "\n")
    path = tmp_path / "eval.yaml"
    path.write_text(SPEC.format(base_url=endpoint.base_url, stream=str(stream).lower(),
                                repeat=repeat))
    return path


def run(path: Path, **options) -> tuple:
    plan = plan_eval(load_spec(path))
    outcome = asyncio.run(run_eval(plan, RunOptions(**options)))
    results = list(outcome.results())
    return outcome, results


def responder_by_article(answers: dict[str, Reply]):
    def respond(request):
        for needle, reply in answers.items():
            if f"Article: {needle}" in request.prompt_text:
                return reply
        return None  # the default: echo

    return respond


@pytest.mark.parametrize("stream", [False, True])
def test_every_case_is_run_scored_and_stored(tmp_path: Path, endpoint: FakeEndpoint,
                                             stream: bool) -> None:
    endpoint.default = Reply.text("A summary mentioning keyword1.")
    outcome, results = run(make_eval(tmp_path, endpoint, stream=stream))
    assert outcome.run.status == "finished"
    assert len(results) == 6 and endpoint.count == 6
    assert {(r.prompt_id, r.case_id) for r in results} == {
        (p, f"c{i}") for p in ("summarize@1", "few") for i in range(3)}
    passed = {r.case_id for r in results if r.passed}
    assert passed == {"c1"}
    one = results[0]
    assert one.output == "A summary mentioning keyword1." and one.error is None
    assert one.template_sha256 and one.input_tokens and one.output_tokens
    assert one.cost == pytest.approx((one.input_tokens + 2 * one.output_tokens) / 1e6)
    assert one.latency_s > 0 and (one.ttft_s is not None) == stream
    assert one.metrics == {"icontains": 0.0 if one.case_id != "c1" else 1.0}


def test_variant_params_override_template_params(tmp_path: Path,
                                                 endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=1)
    path.write_text(path.read_text().replace("    template: summarize@2\n",
                                             "    template: summarize@2\n"
                                             "    params: {max_tokens: 7}\n"))
    run(path)
    bodies = {r.body["max_tokens"] for r in endpoint.requests}
    assert bodies == {60, 7}  # the template's 60, the variant's 7
    assert all(r.body["temperature"] == 0 for r in endpoint.requests)


def test_bad_responses_fail_only_their_case_and_are_not_cached(tmp_path: Path,
                                                               endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(responder_by_article({
        "Article number 0": Reply.malformed_json(),
        "Article number 1": Reply.html(),
    }))
    outcome, results = run(make_eval(tmp_path, endpoint))
    assert outcome.run.status == "finished" and len(results) == 6
    errors = {(r.case_id, r.error_kind) for r in results if r.error}
    assert errors == {("c0", "bad_response"), ("c1", "bad_response")}
    assert all(not r.passed for r in results if r.error)
    with ResponseCache(tmp_path / ".promptkit" / "cache.db") as cache:
        assert len(cache) == 2  # only c2's two good answers
    before = endpoint.count
    endpoint.respond_with(None)
    _, again = run(make_eval(tmp_path, endpoint))
    assert endpoint.count - before == 4  # the four failures asked again, c2 from the cache
    assert sum(r.cached for r in again) == 2


def test_second_run_is_served_from_the_cache(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    run(path)
    assert endpoint.count == 6
    _, results = run(path)
    assert endpoint.count == 6
    assert all(r.cached and r.requests == 0 for r in results)
    run(path, use_cache=False)
    assert endpoint.count == 12


def test_repeats_with_sampling_are_separate_requests(tmp_path: Path,
                                                     endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=2, repeat=3)
    _, results = run(path)
    assert len(results) == 12 and endpoint.count == 12
    run(path)
    assert endpoint.count == 12  # each sample index cached on its own


def test_a_case_that_cannot_render_fails_alone(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    with (tmp_path / "data.jsonl").open("a") as handle:  # a list where text is declared
        handle.write(json.dumps({"id": "broken", "article": ["x"], "keyword": "x"}) + "\n")
    _, results = run(path)
    broken = [r for r in results if r.case_id == "broken"]
    assert len(broken) == 2 and all(r.error_kind == "render" for r in broken)
    assert "article" in broken[0].error
    assert endpoint.count == 6


def test_a_later_case_missing_a_variable_is_invalid_input_before_any_request(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    with (tmp_path / "data.jsonl").open("a") as handle:
        handle.write(json.dumps({"id": "broken", "keyword": "x"}) + "\n")
    with pytest.raises(ConfigError) as info:
        plan_eval(load_spec(path))
    assert str(info.value).endswith(
        "data.jsonl:4: case 'broken' has no 'article', which summarize@1 (a required input) "
        "reads (its fields: keyword)")
    proc = promptkit_cli("eval", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and endpoint.count == 0


def test_missing_variable_in_every_case_is_invalid_input(tmp_path: Path,
                                                         endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    (tmp_path / "data.jsonl").write_text('{"id": "a", "text": "no article field"}\n')
    with pytest.raises(TemplateRenderError, match="'article' is undefined"):
        plan_eval(load_spec(path))


def test_unknown_template_is_invalid_input(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    path.write_text(path.read_text().replace("summarize@1", "summarise@1"))
    with pytest.raises(PromptkitError, match=r"eval\.yaml:3: prompts\[0\]: .*unknown template"):
        plan_eval(load_spec(path))


def test_resume_requests_only_what_is_missing(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    endpoint.respond_with(responder_by_article({"Article number 2": Reply.status(400)}))
    first, results = run(path)
    assert sum(r.error is not None for r in results) == 2
    with RunStore(tmp_path / ".promptkit" / "runs.db") as runs:
        runs.finish_run(first.run.run_id, "interrupted")  # as if it had been killed
    endpoint.respond_with(None)
    seen = endpoint.count
    second, results = run(path, resume=True)
    assert second.run.run_id == first.run.run_id
    assert endpoint.count - seen == 2  # only the two failed results
    assert len(results) == 6 and all(r.error is None for r in results)


def test_unreachable_endpoint_ends_the_run_quickly(tmp_path: Path,
                                                   endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=20)
    path.write_text(path.read_text().replace(endpoint.base_url, "http://127.0.0.1:9/v1"))
    outcome, results = run(path)
    assert list(outcome.unreachable) == ["fake"]
    assert len(results) == 40 and all(r.error_kind == "connection" for r in results)


def raw_chat(content, usage=None) -> Reply:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                           "finish_reason": "stop"}]}
    if usage is not None:
        answer["usage"] = usage
    return Reply.raw(answer)


def test_hostile_answers_fail_only_their_own_case(tmp_path: Path,
                                                  endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=6)
    path.write_text(path.read_text().replace("retries: 1", "retries: 1\n    timeout: 1"))
    endpoint.respond_with(responder_by_article({
        "Article number 0": Reply.raw('{"choices": [{"message": {"content": "\\ud800"}}]}'),
        "Article number 1": raw_chat("fine", {"prompt_tokens": "lots", "completion_tokens": 1}),
        "Article number 2": raw_chat(None),
        "Article number 3": Reply.status(429, headers={"retry-after": "inf"}),
        "Article number 4": Reply.status(503, headers={"retry-after-ms": "1e12"}),
    }))
    # Each of these once aborted or stalled the run; the guard turns a hang into a failure.
    outcome, results = asyncio.run(asyncio.wait_for(asyncio.to_thread(run, path), 60))
    assert outcome.run.status == "finished" and len(results) == 12
    kinds = {r.case_id: r.error_kind for r in results if r.prompt_id == "few"}
    assert kinds == {"c0": "bad_response", "c1": "bad_response", "c2": "bad_response",
                     "c3": "rate_limit", "c4": "server", "c5": None}
    with ResponseCache(tmp_path / ".promptkit" / "cache.db") as cache:
        assert len(cache) == 2  # only c5's answers: no error is ever cached


def test_a_case_whose_value_is_too_deep_to_render_fails_alone(tmp_path: Path,
                                                              endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=1)
    folder = tmp_path / "templates" / "deep"
    folder.mkdir()
    (folder / "v1.jinja").write_text(  # a legitimately recursive loop
        "{% for x in [extra] recursive %}({{ loop(x) }}){% endfor %}{{ article }}")
    path.write_text(path.read_text().replace("  - summarize@1\n", "  - deep@1\n"))
    nested = "[" * 400 + "]" * 400  # loads fine, but nests 400 loop levels deep
    with (tmp_path / "data.jsonl").open("w") as handle:  # not the first case: no preflight
        handle.write('{"id": "c0", "article": "a", "keyword": "k", "extra": []}\n')
        handle.write(f'{{"id": "deep", "article": "b", "keyword": "k", "extra": {nested}}}\n')
    outcome, results = run(path)
    assert outcome.run.status == "finished" and len(results) == 4
    deep = {r.prompt_id: r for r in results if r.case_id == "deep"}
    assert deep["deep@1"].error_kind == "render"
    assert "recursion" in deep["deep@1"].error.lower()
    assert deep["few"].error is None  # the rest of the run went on
    assert all(r.error is None for r in results if r.case_id == "c0")


def test_an_assertion_naming_a_missing_field_is_invalid_input(tmp_path: Path,
                                                              endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    path.write_text(path.read_text().replace("{{{{ keyword }}}}", "{{ keywrod }}")
                    .replace('"{{ keyword }}"', '"{{ keywrod }}"'))
    with pytest.raises(PromptkitError) as info:
        plan_eval(load_spec(path))
    message = str(info.value)
    assert "eval.yaml:" in message and "assert[0].value" in message
    assert "'keywrod' is undefined (case 'c0' has: article, keyword)" in message
    assert endpoint.count == 0


@pytest.mark.parametrize(("value", "problem"), [
    ("{{ keyword.lable }}", "has no attribute 'lable'"),
    ("{{ keyword * 100000000 }}", "exceeds the cap"),
])
def test_an_assertion_that_cannot_render_is_invalid_input(tmp_path: Path,
                                                          endpoint: FakeEndpoint, value: str,
                                                          problem: str) -> None:
    path = make_eval(tmp_path, endpoint)
    path.write_text(path.read_text().replace('"{{ keyword }}"', f'"{value}"'))
    with pytest.raises(PromptkitError, match=problem):
        plan_eval(load_spec(path))
    assert endpoint.count == 0


def test_a_default_filter_is_not_a_missing_field(tmp_path: Path,
                                                 endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=1)
    path.write_text(path.read_text().replace('"{{ keyword }}"', '"{{ lable|default(keyword) }}"'))
    _, results = run(path)
    assert results and all(r.error is None for r in results)


def test_a_judge_outage_is_an_outage_not_a_failure(tmp_path: Path,
                                                   endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=2)
    path.write_text(path.read_text().replace("dataset: data.jsonl", f"""graders:
  - id: judge
    base_url: {endpoint.base_url}
    model: judge
    retries: 0
dataset: data.jsonl""").replace(
        "repeat:", "  - {type: llm-judge, provider: judge, value: 'good?'}\nrepeat:"))

    def respond(request):
        if request.body.get("model") == "judge":
            return Reply.status(503, body="judge overloaded")
        return Reply.text("keyword0 keyword1")

    endpoint.respond_with(respond)
    _, results = run(path)
    assert {r.error_kind for r in results} == {"grader"}
    from promptkit.comparing.baseline import sample_outcome

    assert all(sample_outcome(r) is None for r in results)  # left out of comparisons


def test_a_judge_that_refuses_an_output_fails_the_case(tmp_path: Path,
                                                       endpoint: FakeEndpoint) -> None:
    # A 4xx from the judge (the output is too long, a content policy) is an answer about
    # this output, not an outage: the case fails and is compared like any failure.
    path = make_eval(tmp_path, endpoint, cases=2)
    path.write_text(path.read_text().replace("dataset: data.jsonl", f"""graders:
  - id: judge
    base_url: {endpoint.base_url}
    model: judge
    retries: 0
dataset: data.jsonl""").replace(
        "repeat:", "  - {type: llm-judge, provider: judge, value: 'good?'}\nrepeat:"))

    def respond(request):
        if request.body.get("model") == "judge":
            return Reply.status(400, body="context length exceeded")
        return Reply.text("keyword0 keyword1")

    endpoint.respond_with(respond)
    _, results = run(path)
    assert all(r.error is None and not r.passed for r in results)
    judged = [a for r in results for a in r.assertions if a["type"] == "llm-judge"]
    assert judged and all("context length exceeded" in a["error"] for a in judged)


def test_judge_requests_carry_the_verdict_schema(tmp_path: Path,
                                                 endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=1)
    grader = f"""graders:
  - id: judge
    base_url: {endpoint.base_url}
    model: judge
    retries: 0{{params}}
dataset: data.jsonl"""
    judged = "  - {type: llm-judge, provider: judge, value: 'good?'}\nrepeat:"
    original = path.read_text()

    def respond(request):
        if request.body.get("model") == "judge":
            return Reply.text('{"pass": true, "score": 1, "reason": "ok"}')
        return Reply.text("keyword0")

    endpoint.respond_with(respond)
    for params, expected in (("", "json_schema"), ("\n    params: {response_format: null}",
                                                   None)):
        path.write_text(original.replace("dataset: data.jsonl", grader.format(params=params))
                        .replace("repeat:", judged))
        endpoint.reset()
        endpoint.respond_with(respond)
        _, results = run(path, use_cache=False)
        assert all(r.error is None for r in results)
        (request, *_) = [r for r in endpoint.requests if r.body.get("model") == "judge"]
        sent = request.body.get("response_format")
        assert (sent or {}).get("type") == expected
        if expected:
            assert sent["json_schema"]["schema"]["required"] == ["pass", "score", "reason"]


def test_reasoning_and_estimated_usage_are_kept_with_the_result(tmp_path: Path,
                                                               endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text("keyword0 here", reasoning_content="let me think", usage=False)
    _, results = run(make_eval(tmp_path, endpoint, cases=1))
    assert all(r.reasoning == "let me think" and r.usage_estimated for r in results)
    assert all(r.output_tokens == 3 for r in results)  # "keyword0 here": 3 cl100k tokens


def test_a_cached_answer_keeps_the_latency_it_was_measured_with(tmp_path: Path,
                                                                 endpoint: FakeEndpoint) -> None:
    from promptkit.reporting.summary import summarize

    path = make_eval(tmp_path, endpoint, cases=2)
    endpoint.default = Reply.text("keyword0", latency=0.05)
    _, first = run(path)
    _, again = run(path)
    assert all(r.cached and r.requests == 0 for r in again)
    assert [r.latency_s for r in again] == [r.latency_s for r in first]
    assert all(r.latency_s >= 0.05 for r in again)
    rows = summarize(again).rows
    assert all(row.latency_p50 is not None and row.cached == row.cases for row in rows)


def test_results_keep_the_prompt_as_sent_and_the_examples_chosen(tmp_path: Path,
                                                                  endpoint: FakeEndpoint) -> None:
    _, results = run(make_eval(tmp_path, endpoint, cases=1))
    (zero,) = [r for r in results if r.prompt_id == "summarize@1"]
    assert zero.prompt == endpoint.requests[0].body["messages"] or zero.prompt == \
        endpoint.requests[1].body["messages"]
    assert "Article number 0 about keyword0." in zero.prompt[-1]["content"]
    assert zero.examples is None  # no fewshot: settings on this variant
