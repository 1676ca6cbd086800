"""Budgets (`--max-requests`, `--max-cost`, the spec's keys) and the runner's case filter,
against a real scripted endpoint: requests are counted where they arrive."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from helpers import promptkit as promptkit_cli
from promptkit.api import evaluate
from promptkit.errors import ConfigError
from promptkit.running.budget import Budget, worst_case_cost
from promptkit.running.plan import plan_eval
from promptkit.running.runner import RunOptions, run_eval
from promptkit.running.spec import load_spec
from promptkit.testing import FakeEndpoint, Reply
from promptkit.tokens import count_prompt_tokens

REPO = Path(__file__).parents[2]

# Prices high enough that a request costs cents: $0.001 per input token, $0.002 per output
# token; summarize@1 asks for at most 60 output tokens (its params.max_tokens).
SPEC = """\
templates: templates
prompts:
  - summarize@1
providers:
  - id: fake
    base_url: {base_url}
    model: m
    stream: false
    concurrency: {concurrency}
    retries: {retries}
    price: {{input_per_mtok: 1000.0, output_per_mtok: 2000.0}}
assert:
  - type: icontains
    value: "{{{{ keyword }}}}"
cases: {cases}
"""
INPUT_PRICE, OUTPUT_PRICE, MAX_TOKENS = 1000.0 / 1e6, 2000.0 / 1e6, 60


def make_eval(tmp_path: Path, endpoint: FakeEndpoint, cases: int = 12, concurrency: int = 1,
              retries: int = 0, extra: str = "") -> Path:
    """An eval of summarize@1 on ``cases`` inline cases, one priced provider."""
    shutil.copytree(REPO / "templates", tmp_path / "templates", dirs_exist_ok=True)
    rows = [{"id": f"c{i}", "article": f"Article number {i} about keyword{i}.",
             "keyword": f"keyword{i}"} for i in range(cases)]
    path = tmp_path / "eval.yaml"
    path.write_text(SPEC.format(base_url=endpoint.base_url, concurrency=concurrency,
                                retries=retries, cases=json.dumps(rows)) + extra)
    return path


def case_ids(report) -> list[str]:
    return sorted((r.case_id for r in report.results()), key=lambda c: int(c[1:]))


def test_max_requests_sends_that_many_stores_them_and_resume_sends_the_rest(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text("A summary.")
    path = make_eval(tmp_path, endpoint)
    report = evaluate(path, max_requests=5)
    assert endpoint.count == 5
    assert report.run.status == "interrupted" and report.exit_code == 3
    assert report.budget_reached == "budget reached: 5 of 5 requests sent"
    assert case_ids(report) == ["c0", "c1", "c2", "c3", "c4"]
    resumed = evaluate(path, resume=True, max_requests=100)  # a fresh, larger budget
    assert endpoint.count == 12  # only the seven left
    assert resumed.run.run_id == report.run.run_id and resumed.run.status == "finished"
    assert resumed.budget_reached is None and resumed.exit_code != 3
    assert case_ids(resumed) == [f"c{i}" for i in range(12)]


def test_requests_in_flight_together_never_pass_max_requests(tmp_path: Path,
                                                             endpoint: FakeEndpoint) -> None:
    lock, in_flight, most = threading.Lock(), [0], [0]

    def slow(request) -> Reply:  # each responder call runs in a thread of its own
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return Reply.text("A summary.")

    endpoint.respond_with(slow)
    report = evaluate(make_eval(tmp_path, endpoint, concurrency=4), max_requests=5)
    assert most[0] == 4  # the requests overlapped
    assert endpoint.count == 5
    assert len(case_ids(report)) == 5 and report.run.status == "interrupted"


def test_cache_hits_are_free(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    evaluate(path)
    assert endpoint.count == 12
    again = evaluate(path, max_requests=1)
    assert endpoint.count == 12
    assert again.run.status == "finished" and again.budget_reached is None
    assert len(case_ids(again)) == 12 and again.exit_code != 3


def test_a_request_and_its_retries_count_once_and_a_failed_one_counts(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=3, retries=2)
    endpoint.script(Reply.status(500), Reply.text("A summary."))
    report = evaluate(path, max_requests=3, use_cache=False)
    assert endpoint.count == 4  # c0 answered at its second attempt: one request
    assert report.run.status == "finished"
    endpoint.reset()
    endpoint.script(Reply.status(400))  # fails at once: counted all the same
    report = evaluate(path, max_requests=1, use_cache=False)
    assert endpoint.count == 1
    (failed,) = report.results()
    assert failed.error_kind == "client" and report.run.status == "interrupted"


def worst_case(body: dict) -> float:
    """What a request may cost, worked out here from the prices and the prompt."""
    return count_prompt_tokens(body["messages"], "m") * INPUT_PRICE + MAX_TOKENS * OUTPUT_PRICE


@pytest.mark.parametrize("concurrency", [1, 4])
def test_max_cost_is_never_exceeded(tmp_path: Path, endpoint: FakeEndpoint,
                                    concurrency: int) -> None:
    endpoint.default = Reply.text("A summary of the article.", latency=0.05)
    path = make_eval(tmp_path, endpoint, concurrency=concurrency)
    budget = Budget(max_cost=0.5)
    report = evaluate(path, budget=budget)
    sent = [r.body for r in endpoint.requests]
    results = list(report.results())
    spent = sum(r.cost for r in results)
    assert report.run.status == "interrupted" and report.exit_code == 3
    assert 0 < len(sent) < 12 and len(results) == len(sent)
    assert spent <= 0.5 and budget.cost_spent == pytest.approx(spent) and budget.requests_sent \
        == len(sent)
    provider = load_spec(path).spec.providers[0]
    assert all(worst_case_cost(body, provider) == pytest.approx(worst_case(body))
               for body in sent)
    assert report.budget_reached.startswith("budget reached: $")
    assert "of $0.50 spent (the next request could cost up to $0." in report.budget_reached
    if concurrency == 1:  # the next request's worst case did not fit in what was left
        evaluate(path, resume=True)
        refused = endpoint.requests[len(sent)].body
        assert spent + worst_case(refused) > 0.5
        assert endpoint.count == 12


def test_max_cost_needs_max_tokens_of_every_priced_request(tmp_path: Path,
                                                           endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    brief = tmp_path / "templates" / "brief"
    brief.mkdir()
    (brief / "v1.jinja").write_text("---\ninputs:\n  article: {type: string}\n---\n"
                                    "Summarize: {{ article }}\n")
    path.write_text(path.read_text().replace("  - summarize@1", "  - brief@1"))
    with pytest.raises(ConfigError, match=re.escape(
            "provider 'fake' with prompt 'brief@1' sends no max_tokens: set params.max_tokens")):
        evaluate(path, max_cost=1.0)
    proc = promptkit_cli("eval", str(path), "--max-cost", "1", "-q", cwd=tmp_path)
    assert proc.returncode == 2 and "set params.max_tokens" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert endpoint.count == 0
    assert evaluate(path, max_requests=2).run.status == "interrupted"  # no max_cost: fine


def test_an_unpriced_provider_is_warned_about_and_costs_nothing(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=3)
    path.write_text(path.read_text().replace(
        "    price: {input_per_mtok: 1000.0, output_per_mtok: 2000.0}\n", ""))
    report = evaluate(path, max_cost=0.01)
    assert report.run.status == "finished" and endpoint.count == 3
    assert any("max_cost counts no cost for fake" in w for w in report.warnings)


def test_budget_keys_in_the_spec_flags_win_and_resume_ignores_them(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, extra="max_requests: 3\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text(path.read_text().replace("max_requests: 3\n", ""))
    assert load_spec(path).spec_hash() == load_spec(plain).spec_hash()
    first = evaluate(path)
    assert endpoint.count == 3 and first.run.status == "interrupted"
    second = evaluate(path, resume=True, max_requests=4)  # the flag wins over the key
    assert endpoint.count == 7 and second.run.run_id == first.run.run_id
    path.write_text(path.read_text().replace("max_requests: 3", "max_cost: 100.0"))
    third = evaluate(path, resume=True, budget=Budget(max_requests=2))  # the object wins
    assert endpoint.count == 9 and third.run.run_id == first.run.run_id
    last = evaluate(path, resume=True)  # the spec changed only its budget: same run
    assert last.run.status == "finished" and endpoint.count == 12
    assert len(case_ids(last)) == 12


def test_judge_requests_count(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=4, extra=f"""graders:
  - id: judge
    base_url: {endpoint.base_url}
    model: judge
    retries: 0
""")
    path.write_text(path.read_text().replace(
        "cases:", "  - {type: llm-judge, provider: judge, value: 'good?'}\ncases:"))

    def respond(request) -> Reply:
        if request.body.get("model") == "judge":
            return Reply.text('{"pass": true, "score": 1, "reason": "ok"}')
        return Reply.text("keyword0 keyword1 keyword2 keyword3")

    endpoint.respond_with(respond)
    report = evaluate(path, max_requests=3)  # c0: answer and verdict; c1: answer, refused
    assert endpoint.count == 3 and case_ids(report) == ["c0"]
    assert report.run.status == "interrupted"
    evaluate(path, resume=True)
    models = [r.body["model"] for r in endpoint.requests]
    assert models.count("m") == 4  # c1's answer came from the cache
    assert models.count("judge") == 4


def test_the_cli_flags_stop_with_exit_3_and_resume_finishes(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=4)
    proc = promptkit_cli("eval", str(path), "--max-requests", "2", "-q", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "budget reached: 2 of 2 requests sent; continue with --resume" in proc.stderr
    assert endpoint.count == 2
    resumed = promptkit_cli("eval", str(path), "--resume", "--max-cost", "10", "-q",
                            cwd=tmp_path)
    assert resumed.returncode in (0, 1), resumed.stderr
    assert endpoint.count == 4
    bad = promptkit_cli("eval", str(path), "--max-requests", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--max-requests" in bad.stderr
    helped = promptkit_cli("eval", "--help", cwd=tmp_path)
    assert "--max-cost" in helped.stdout and "budget" in helped.stdout


def test_case_ids_run_only_those_cases(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=6)
    plan = plan_eval(load_spec(path))
    started = []
    options = RunOptions(case_ids=frozenset({"c1", "c4", "nope"}),
                         on_start=lambda run, planned, done: started.append(planned))
    finished = asyncio.run(run_eval(plan, options))
    assert started == [2] and finished.run.planned == 2
    assert sorted(r.case_id for r in finished.results()) == ["c1", "c4"]
    assert endpoint.count == 2 and finished.run.status == "finished"
    options = RunOptions(case_ids=frozenset({"c1", "c4"}), limit=3, use_cache=False)
    finished = asyncio.run(run_eval(plan, options))  # applied after limit
    assert [r.case_id for r in finished.results()] == ["c1"] and finished.run.planned == 1


def test_a_budget_reserves_worst_cases_and_settles_what_was_spent() -> None:
    budget = Budget(max_requests=3, max_cost=1.0, requests_sent=1, cost_spent=0.25)
    assert budget.reserve(0.5) and budget.requests_sent == 2
    assert not budget.reserve(0.5)  # 0.25 spent + 0.5 in flight + 0.5 > 1.0
    assert budget.exhausted == ("budget reached: $0.25 of $1.00 spent (the next request "
                                "could cost up to $0.50)")
    budget.settle(0.5, 0.1)  # its usage said $0.10
    assert budget.cost_spent == pytest.approx(0.35) and budget.reserve(0.5)
    budget.settle(0.5)  # no usage known: the worst case is spent
    assert budget.cost_spent == pytest.approx(0.85)
    assert not budget.reserve(0.0)
    assert budget.exhausted == "budget reached: 3 of 3 requests sent"
    with pytest.raises(ConfigError, match="max_requests"):
        Budget(max_requests=0)
    with pytest.raises(ConfigError, match="max_cost"):
        Budget(max_cost=0)
