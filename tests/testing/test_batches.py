"""The fake endpoint's Files and Batch APIs, driven through the real openai SDK."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from promptkit.testing import FakeEndpoint, RecordedRequest, Reply

CHAT = "/v1/chat/completions"


def line(custom_id: str, content: str = "", *, url: str = CHAT, model: str = "gpt-test",
         **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": content or custom_id}]}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body, **extra}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(item) + "\n" for item in lines).encode()


def start(client: openai.OpenAI, lines: list[dict[str, Any]] | bytes, endpoint: str = CHAT,
          **kwargs: Any) -> Any:
    data = lines if isinstance(lines, bytes) else jsonl(lines)
    uploaded = client.files.create(file=("cases.jsonl", data), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint=endpoint,  # type: ignore[arg-type]
                                 completion_window="24h", **kwargs)


def wait(client: openai.OpenAI, batch_id: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        assert time.monotonic() < deadline, f"still {batch.status}"
        time.sleep(0.05)


def read(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(text) for text in client.files.content(file_id).text.splitlines()]


def by_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["custom_id"]: item for item in lines}


def test_a_batch_answers_every_line_as_the_responder_says(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.respond_with(lambda request: f"answer to {request.last_user_message}")
    ids = [f"case-{number}" for number in range(20)]
    created = start(client, [line(custom_id) for custom_id in ids], metadata={"run": "r1"})
    assert (created.status, created.object, created.endpoint) == ("validating", "batch", CHAT)
    assert created.id.startswith("batch_") and created.metadata == {"run": "r1"}

    batch = wait(client, created.id)
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed,
            batch.request_counts.failed) == (20, 20, 0)
    assert batch.error_file_id is None and batch.model == "gpt-test"
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.usage is not None and batch.usage.output_tokens == 3 * 20

    output = read(client, batch.output_file_id)
    assert [item["custom_id"] for item in output] != ids  # shuffled, as OpenAI does
    assert sorted(item["custom_id"] for item in output) == sorted(ids)
    for item in output:
        assert item["id"].startswith("batch_req_") and item["error"] is None
        response = item["response"]
        assert response["status_code"] == 200 and response["request_id"]
        assert response["body"]["object"] == "chat.completion"
        message = response["body"]["choices"][0]["message"]["content"]
        assert message == f"answer to {item['custom_id']}"
    output_file = client.files.retrieve(batch.output_file_id)
    assert output_file.purpose == "batch_output"
    assert output_file.filename == f"{batch.id}_output.jsonl"

    # one batch, no per-case requests: the lines are apart from the HTTP requests
    assert endpoint.count == 0
    assert [request.path for request in endpoint.requests if "completions" in request.path] == []
    assert [(b.id, b.status) for b in endpoint.batches] == [(batch.id, "completed")]
    assert [item["custom_id"] for item in endpoint.batches[0].lines] == ids
    requests = endpoint.batch_requests
    assert sorted(request.last_user_message for request in requests) == sorted(ids)
    assert {request.path for request in requests} == {CHAT}
    assert [b.id for b in client.batches.list()] == [batch.id]


def test_failed_lines_land_in_the_error_file_with_the_counts_right(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    def responder(request: RecordedRequest) -> Any:
        text = request.last_user_message
        if text == "overloaded":
            return Reply.status(500, body="overloaded today")
        if text == "crash":
            raise RuntimeError("boom")
        if text == "hang":
            return Reply.hang()
        return None  # the default: echo

    endpoint.respond_with(responder)
    endpoint.fail_lines({"picked"}, status=429)
    endpoint.script(Reply.text("scripted"))  # the first line answered takes it
    cases = ["a", "b", "c", "overloaded", "crash", "hang", "picked"]
    batch = wait(client, start(client, [line(case) for case in cases]).id)
    assert batch.status == "completed"
    counts = batch.request_counts
    assert (counts.total, counts.completed, counts.failed) == (7, 3, 4)

    output = by_id(read(client, batch.output_file_id))
    errors = by_id(read(client, batch.error_file_id))
    assert sorted(output) == ["a", "b", "c"] and sorted(errors) == sorted(cases[3:])
    texts = sorted(item["response"]["body"]["choices"][0]["message"]["content"]
                   for item in output.values())
    assert "scripted" in texts and len(texts) == 3
    overloaded = errors["overloaded"]["response"]
    assert overloaded["status_code"] == 500
    assert overloaded["body"]["error"]["message"] == "overloaded today"
    assert "boom" in errors["crash"]["response"]["body"]["error"]["message"]
    assert errors["hang"]["response"] is None
    assert errors["hang"]["error"]["code"] == "request_timeout"
    picked = errors["picked"]["response"]
    assert picked["status_code"] == 429 and picked["body"]["error"]["code"] == "rate_limit_exceeded"
    assert len(endpoint.batch_requests) == 7 and endpoint.pending == 0


def test_a_delay_keeps_the_batch_in_progress_until_it_elapses(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.batch_delay = 4.0  # lines answered over 3.6 s, then finalizing until 4 s
    before = time.monotonic()
    created = start(client, [line(f"case-{number}") for number in range(10)])
    began = time.monotonic()
    assert client.batches.retrieve(created.id).status == "in_progress"
    time.sleep(1.6)
    halfway = client.batches.retrieve(created.id)
    assert halfway.status == "in_progress" and halfway.output_file_id is None
    assert 0 < halfway.request_counts.completed < 10
    time.sleep(max(0.0, began + 3.65 - time.monotonic()))
    assert client.batches.retrieve(created.id).status == "finalizing"
    batch = wait(client, created.id)
    assert batch.status == "completed" and time.monotonic() - before >= 4.0
    assert len(read(client, batch.output_file_id)) == 10


@pytest.mark.parametrize(("answered", "kept"), [(4, 4), (0.25, 2), (0, 0)])
def test_an_expired_batch_answers_only_its_share(
    endpoint: FakeEndpoint, client: openai.OpenAI, answered: float, kept: int
) -> None:
    endpoint.expire_next_batch(answered)
    batch = wait(client, start(client, [line(f"case-{number}") for number in range(10)]).id)
    assert batch.status == "expired" and batch.expired_at
    counts = batch.request_counts
    assert (counts.total, counts.completed, counts.failed) == (10, kept, 10 - kept)
    output, errors = read(client, batch.output_file_id), read(client, batch.error_file_id)
    assert len(output) == kept and len(endpoint.batch_requests) == kept
    assert {item["error"]["code"] for item in errors} == {"batch_expired"}
    assert sorted(item["custom_id"] for item in output + errors) == sorted(
        f"case-{number}" for number in range(10))
    # only the next batch expires
    assert wait(client, start(client, [line("again")]).id).status == "completed"


def test_cancel_keeps_the_lines_answered_and_drops_the_rest(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.batch_delay = 2.0
    created = start(client, [line(f"case-{number}") for number in range(20)])
    time.sleep(0.6)
    cancelling = client.batches.cancel(created.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    batch = client.batches.retrieve(created.id)
    assert batch.status == "cancelled" and batch.cancelled_at
    answered = batch.request_counts.completed
    assert 0 < answered < 20 and batch.request_counts.failed == 0
    assert len(read(client, batch.output_file_id)) == answered and batch.error_file_id is None
    assert len(endpoint.batch_requests) == answered
    time.sleep(1.5)  # past the delay: nothing more is answered
    assert client.batches.retrieve(created.id).request_counts.completed == answered
    assert client.batches.cancel(created.id).status == "cancelled"

    endpoint.batch_delay = 0
    done = wait(client, start(client, [line("quick")]).id)
    with pytest.raises(openai.ConflictError, match="completed"):
        client.batches.cancel(done.id)


@pytest.mark.parametrize(("lines", "code", "at_line"), [
    ([line("a"), line("b"), line("a")], "duplicate_custom_id", 3),
    ([line("a"), line("b", url="/v1/completions")], "url_mismatch", 2),
    ([line("a"), line("b", model="other")], "model_mismatch", 2),
    ([line("a"), line("b", method="GET")], "invalid_value", 2),
    (b'{"custom_id": "a"\n', "invalid_json_line", 1),
    ([{"custom_id": "a", "method": "POST", "url": CHAT}], "missing_required_parameter", 1),
    (b"\n", "empty_file", None),
])
def test_a_bad_input_file_fails_the_batch(
    client: openai.OpenAI, lines: Any, code: str, at_line: int | None
) -> None:
    created = start(client, lines)
    assert created.status == "validating"
    batch = wait(client, created.id)
    assert batch.status == "failed" and batch.failed_at
    assert batch.errors is not None and batch.errors.data is not None
    assert [(error.code, error.line) for error in batch.errors.data] == [(code, at_line)]
    assert batch.output_file_id is None and batch.error_file_id is None


def test_too_many_lines_or_bytes_fail_the_batch(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    lines = [line(f"case-{number}") for number in range(4)]
    endpoint.batch_max_lines = 3
    assert wait(client, start(client, lines).id).errors.data[0].code == "too_many_tasks"
    endpoint.batch_max_lines, endpoint.batch_max_bytes = 4, 100
    assert wait(client, start(client, lines).id).errors.data[0].code == "file_too_large"
    endpoint.batch_max_bytes = 10_000
    assert wait(client, start(client, lines).id).status == "completed"


def test_a_completions_batch_echoes_each_prompt(client: openai.OpenAI) -> None:
    lines = [{"custom_id": f"p{n}", "method": "POST", "url": "/v1/completions",
              "body": {"model": "base", "prompt": f"Once {n}"}} for n in range(3)]
    batch = wait(client, start(client, lines, endpoint="/v1/completions").id)
    output = by_id(read(client, batch.output_file_id))
    assert {key: item["response"]["body"]["choices"][0]["text"] for key, item in output.items()} \
        == {"p0": "Once 0", "p1": "Once 1", "p2": "Once 2"}


def test_a_file_round_trips_and_can_be_deleted(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    data = jsonl([line("a"), line("b")]) + "é\n".encode()
    uploaded = client.files.create(file=("cases.jsonl", data), purpose="batch")
    assert uploaded.id.startswith("file-") and uploaded.object == "file"
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose, uploaded.status) == (
        len(data), "cases.jsonl", "batch", "processed")
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).content == data
    assert [item.id for item in client.files.list(purpose="batch")] == [uploaded.id]
    assert [record.id for record in endpoint.files] == [uploaded.id]

    deleted = client.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted) == (uploaded.id, True)
    assert endpoint.files[0].deleted and endpoint.files[0].content == b""
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)
    with pytest.raises(openai.BadRequestError, match="jsonl"):
        client.files.create(file=("cases.txt", data), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("cases.jsonl", data), purpose="nonsense")  # type: ignore[arg-type]


def test_unknown_ids_are_404(client: openai.OpenAI) -> None:
    for call in (lambda: client.batches.retrieve("batch_nope"),
                 lambda: client.batches.cancel("batch_nope"),
                 lambda: client.files.retrieve("file-nope"),
                 lambda: client.files.content("file-nope"),
                 lambda: client.files.delete("file-nope"),
                 lambda: client.batches.create(input_file_id="file-nope", endpoint=CHAT,
                                               completion_window="24h")):
        with pytest.raises(openai.NotFoundError, match="nope") as raised:
            call()
        assert raised.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_reset_forgets_files_batches_and_their_scripting(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.batch_delay, endpoint.batch_max_lines = 5.0, 1
    endpoint.fail_lines(lambda custom_id: True)
    endpoint.expire_next_batch(1)
    start(client, [line("a")])
    endpoint.reset()
    assert (endpoint.batches, endpoint.files, endpoint.batch_requests) == ([], [], [])
    assert (endpoint.batch_delay, endpoint.batch_max_lines) == (0.0, 50_000)
    batch = wait(client, start(client, [line("a"), line("b")]).id)
    assert (batch.status, batch.request_counts.completed) == ("completed", 2)


def test_a_100000_line_batch_completes(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    data = jsonl([line(f"case-{number}", f"question {number}") for number in range(100_000)])
    assert wait(client, start(client, data).id).errors.data[0].code == "too_many_tasks"
    endpoint.batch_max_lines = 100_000
    began = time.monotonic()
    batch = wait(client, start(client, data).id, timeout=600)
    output = client.files.content(batch.output_file_id).content
    print(f"100,000-line batch: {time.monotonic() - began:.1f} s to complete and download "
          f"({len(data) / 1e6:.0f} MB in, {len(output) / 1e6:.0f} MB out)")
    assert batch.status == "completed" and batch.request_counts.completed == 100_000
    assert output.count(b"\n") == 100_000
