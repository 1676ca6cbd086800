"""Batch mode against the test endpoint's Files and Batch APIs: one batch and no per-case
request, every answer imported and scored, resume across the wait, expiry, the line limit,
duplicate requests sent once, conversations in rounds, and export/import round trips."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

import promptkit.running.batches as batches
from helpers import promptkit as promptkit_cli
from promptkit.api import evaluate, export_batch
from promptkit.errors import ConfigError
from promptkit.testing import FakeEndpoint, RecordedRequest

SPEC = """\
templates: templates
prompts:
  - id: plain
    template: qa@1
providers:
  - id: fake
    base_url: {base_url}
    model: m
    stream: false
    batch: true
dataset: cases.jsonl
assert:
  - type: icontains
    value: "{{{{ answer }}}}"
"""


def make_eval(tmp_path: Path, endpoint: FakeEndpoint, cases: int = 6, extra: str = "",
              rows: list[dict] | None = None) -> Path:
    folder = tmp_path / "templates" / "qa"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v1.jinja").write_text("Question: {{ question }}\n")
    rows = rows or [{"id": f"c{i}", "question": f"q{i}", "answer": f"a{i}"}
                    for i in range(cases)]
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "eval.yaml"
    path.write_text(SPEC.format(base_url=endpoint.base_url) + extra)
    return path


def answer(request: RecordedRequest) -> str:
    """Right for even-numbered questions, wrong for odd ones."""
    number = int(request.prompt_text.rsplit("q", 1)[1].split()[0])
    return f"a{number}" if number % 2 == 0 else "no idea"


def per_case_requests(endpoint: FakeEndpoint) -> list[RecordedRequest]:
    return [r for r in endpoint.requests if r.path.endswith("/completions")]


def test_a_batch_run_sends_one_batch_and_scores_every_answer(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    endpoint.respond_with(answer)
    report = evaluate(path)
    results = {r.case_id: r for r in report.results()}
    assert len(endpoint.batches) == 1 and per_case_requests(endpoint) == []
    assert len(endpoint.batch_requests) == 6
    assert {case: r.passed for case, r in results.items()} == {
        f"c{i}": i % 2 == 0 for i in range(6)}
    assert report.exit_code == 1 or report.exit_code == 0  # no threshold: 0
    assert report.run.status == "finished" and report.exit_code == 0
    # the same spec without batch answers the same from the cache: nothing is sent
    path.write_text(path.read_text().replace("    batch: true\n", ""))
    again = evaluate(path)
    assert [(r.case_id, r.passed, r.score) for r in again.results()] == [
        (r.case_id, r.passed, r.score) for r in report.results()]
    assert per_case_requests(endpoint) == [] and len(endpoint.batches) == 1


def test_identical_requests_are_sent_once_and_share_their_answer(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    rows = [{"id": f"c{i}", "question": "same", "answer": "x"} for i in range(5)]
    path = make_eval(tmp_path, endpoint, rows=rows)
    endpoint.respond_with(lambda request: "x")
    report = evaluate(path)
    (batch,) = endpoint.batches
    assert len(batch.lines) == 1
    assert [r.passed for r in report.results()] == [True] * 5


def test_more_lines_than_a_file_holds_are_split_into_batches(
        tmp_path: Path, endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "MAX_BATCH_LINES", 2)
    path = make_eval(tmp_path, endpoint, cases=5)
    endpoint.respond_with(answer)
    report = evaluate(path)
    assert [len(b.lines) for b in endpoint.batches] == [2, 2, 1]
    assert len(list(report.results())) == 5 and per_case_requests(endpoint) == []


def test_a_run_stopped_while_its_batch_runs_resumes_without_sending_it_again(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    endpoint.respond_with(answer)
    endpoint.batch_delay = 0.5

    def stop(provider_id: str, batch_id: str, status: str, done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(path, on_batch=stop)
    assert len(endpoint.batches) == 1
    report = evaluate(path, resume=True)
    assert len(endpoint.batches) == 1  # waited for, not sent again
    assert len(list(report.results())) == 6 and report.run.status == "finished"


def test_an_expired_batch_fails_only_its_unanswered_cases_and_resume_sends_just_those(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=8)
    endpoint.respond_with(answer)
    endpoint.expire_next_batch(0.5)
    first = evaluate(path)
    done = list(first.results())
    assert first.exit_code == 3 and first.run.status == "interrupted"
    assert 0 < len(done) < 8 and any("not answered" in w for w in first.warnings)
    report = evaluate(path, resume=True)
    assert len(endpoint.batches) == 2
    assert len(endpoint.batches[1].lines) == 8 - len(done)
    assert len(list(report.results())) == 8 and report.exit_code == 0


def test_a_conversation_sends_each_round_as_a_batch(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    rows = [{"id": f"c{i}", "question": f"q{i}", "answer": "second",
             "turns": ["and then?"]} for i in range(3)]
    path = make_eval(tmp_path, endpoint, rows=rows)
    endpoint.respond_with(lambda r: "second" if len(r.body["messages"]) > 1 else "first")
    report = evaluate(path)
    assert [len(b.lines) for b in endpoint.batches] == [3, 3]
    assert all(r.passed and r.output == "second" for r in report.results())
    assert per_case_requests(endpoint) == []


def test_an_exported_file_round_trips_through_batch_import(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    path.write_text(path.read_text().replace("    batch: true\n", ""))
    requests_file = tmp_path / "requests.jsonl"
    assert export_batch(path, requests_file) == 6
    lines = [json.loads(line) for line in requests_file.read_text().splitlines()]
    assert {line["url"] for line in lines} == {"/v1/chat/completions"}
    assert all(len(line["custom_id"]) == 64 for line in lines)  # the cache key, ≤ 64
    assert per_case_requests(endpoint) == [] and endpoint.batches == []
    # run it elsewhere (here: the test endpoint's batch API, as vllm run-batch would)
    endpoint.respond_with(answer)
    client = openai.OpenAI(base_url=endpoint.base_url, api_key="test")
    uploaded = client.files.create(file=("requests.jsonl", requests_file.read_bytes()),
                                   purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    while (batch := client.batches.retrieve(batch.id)).status != "completed":
        pass
    results_file = tmp_path / "results.jsonl"
    results_file.write_bytes(client.files.content(batch.output_file_id).content)
    done = promptkit_cli("batch", "import", str(path), str(results_file), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = evaluate(path)  # every answer now comes from the cache
    assert {r.case_id: r.passed for r in report.results()} == {
        f"c{i}": i % 2 == 0 for i in range(6)}
    assert per_case_requests(endpoint) == []


def test_batch_mode_needs_the_cache_and_an_endpoint(tmp_path: Path,
                                                   endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    with pytest.raises(ConfigError, match="needs the response cache"):
        evaluate(path, use_cache=False)
    assert endpoint.requests == []


def test_switching_batch_on_keeps_the_spec_for_resume_and_the_cache(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    from promptkit.running.spec import load_spec

    path = make_eval(tmp_path, endpoint)
    with_batch = load_spec(path).spec_hash()
    path.write_text(path.read_text().replace("    batch: true\n", ""))
    assert load_spec(path).spec_hash() == with_batch
    endpoint.respond_with(answer)
    done = promptkit_cli("eval", str(path), "--batch", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(endpoint.batches) == 1 and per_case_requests(endpoint) == []


def test_a_batch_the_endpoint_refuses_whole_says_why(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=3)
    endpoint.batch_max_lines = 2  # the server's own limit, below promptkit's
    report = evaluate(path)
    assert report.exit_code == 3 and list(report.results()) == []
    assert any("too_many_tasks" in w for w in report.warnings), report.warnings


def test_a_results_file_with_foreign_or_broken_lines_imports_the_rest(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=2)
    path.write_text(path.read_text().replace("    batch: true\n", ""))
    requests_file = tmp_path / "requests.jsonl"
    export_batch(path, requests_file)
    good = []
    for line in requests_file.read_text().splitlines():
        key = json.loads(line)["custom_id"]
        body = {"id": "x", "object": "chat.completion", "model": "m", "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                                              "content": "a0 a1"}}]}
        good.append(json.dumps({"custom_id": key, "response": {"status_code": 200,
                                                               "body": body}}))
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join(["[1, 2]", "null", '"text"', "{not json",
                                  json.dumps({"custom_id": "x" * 64, "response": "oops"}),
                                  json.dumps({"custom_id": json.loads(good[0])["custom_id"],
                                              "response": {"status_code": 400,
                                                           "body": "nope"}}),
                                  *good]) + "\n")
    done = promptkit_cli("batch", "import", str(path), str(results), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "lines skipped" in done.stderr and "Traceback" not in done.stderr


def test_each_provider_reports_its_own_unanswered_requests(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=4)
    path.write_text(path.read_text().replace("dataset:", f"""  - id: other
    base_url: {endpoint.base_url}
    model: m2
    stream: false
    batch: true
dataset:"""))
    endpoint.respond_with(answer)
    endpoint.expire_next_batch(0.5)
    report = evaluate(path)
    stops = [w for w in report.warnings if "not answered" in w]
    assert report.exit_code == 3 and len(stops) == 1
    expired = endpoint.batches[0].model
    assert ("fake" if expired == "m" else "other") in stops[0]
    healthy = "other" if expired == "m" else "fake"
    assert len([r for r in report.results() if r.provider_id == healthy]) == 4


def test_a_batch_goes_to_a_live_replica_and_a_lost_batch_is_sent_again(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    path = make_eval(tmp_path, endpoint)
    path.write_text(path.read_text().replace(
        f"base_url: {endpoint.base_url}", f"base_url: [{dead}, {endpoint.base_url}]"))
    endpoint.respond_with(answer)
    endpoint.batch_delay = 0.5

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(path, on_batch=stop)
    assert len(endpoint.batches) == 1  # sent to the live replica
    endpoint.reset()  # the server forgets the batch
    endpoint.respond_with(answer)
    report = evaluate(path, resume=True)
    assert any("known to no endpoint" in w for w in report.warnings)
    assert len(endpoint.batches) == 1 and report.exit_code == 0
    assert len(list(report.results())) == 6


def test_export_refuses_a_path_it_cannot_write_with_exit_2(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    for bad in ("missing/requests.jsonl", "requests.txt"):
        done = promptkit_cli("batch", "export", str(path), "-o", str(tmp_path / bad),
                             cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "requests.txt").exists()
