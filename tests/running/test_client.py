"""EndpointClient against a real HTTP server on 127.0.0.1, through the real openai SDK."""

from __future__ import annotations

import asyncio
import time

import pytest

from promptkit.running.client import AdaptiveLimit, EndpointClient, retry_after
from promptkit.running.spec import Provider
from promptkit.testing import FakeEndpoint, Reply

BODY = {"model": "m", "messages": [{"role": "user", "content": "Say hi"}]}


def client_for(endpoint: FakeEndpoint, **settings) -> EndpointClient:
    fields = {"id": "fake", "base_url": endpoint.base_url, "model": "m", "stream": False,
              "timeout": 5, **settings}
    return EndpointClient(Provider(**fields), endpoint.base_url, "sk-test")


async def request(endpoint: FakeEndpoint, body=BODY, **settings):
    client = client_for(endpoint, **settings)
    try:
        return await client.request(dict(body))
    finally:
        await client.client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_success_with_usage(endpoint: FakeEndpoint, stream: bool) -> None:
    endpoint.script(Reply.text("Hello there", usage={"prompt_tokens": 7,
                                                      "completion_tokens": 2,
                                                      "total_tokens": 9}))
    outcome = await request(endpoint, stream=stream)
    assert outcome.error is None and outcome.attempts == 1
    assert outcome.completion.text == "Hello there"
    assert (outcome.completion.input_tokens, outcome.completion.output_tokens) == (7, 2)
    assert not outcome.completion.usage_estimated
    assert outcome.latency_s > 0
    assert (outcome.ttft_s is not None) == stream
    if stream:
        assert endpoint.requests[0].body["stream"] is True
        assert endpoint.requests[0].body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", [False, True])
async def test_missing_usage_is_estimated_with_tiktoken(endpoint: FakeEndpoint,
                                                        stream: bool) -> None:
    endpoint.script(Reply.text("one two three", usage=False))
    outcome = await request(endpoint, stream=stream)
    assert outcome.completion.usage_estimated
    assert outcome.completion.output_tokens == 3
    assert outcome.completion.input_tokens > 0


async def test_completions_api(endpoint: FakeEndpoint) -> None:
    body = {"model": "m", "prompt": "Once upon", "max_tokens": 5}
    outcome = await request(endpoint, body=body, api="completions", stream=True)
    assert outcome.completion.text == "Once upon"  # the fake echoes the prompt
    assert endpoint.requests[0].path == "/v1/completions"


async def test_unknown_params_go_in_the_body(endpoint: FakeEndpoint) -> None:
    await request(endpoint, body={**BODY, "top_k": 40, "temperature": 0})
    sent = endpoint.requests[0].body
    assert sent["top_k"] == 40 and sent["temperature"] == 0


async def test_429_honours_retry_after(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply.status(429, retry_after=2), Reply.text("ok"))
    outcome = await request(endpoint)
    assert outcome.completion.text == "ok" and outcome.attempts == 2
    first, second = endpoint.requests
    assert second.received_at - first.received_at >= 2.0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_retried_then_succeeds(endpoint: FakeEndpoint, status: int) -> None:
    endpoint.script(Reply.status(status), Reply.status(status), Reply.text("ok"))
    outcome = await request(endpoint)
    assert outcome.completion.text == "ok"
    assert outcome.attempts == 3 and endpoint.count == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_4xx_fail_at_once(endpoint: FakeEndpoint, status: int) -> None:
    endpoint.script(Reply.status(status))
    outcome = await request(endpoint)
    assert outcome.completion is None and outcome.error_kind == "client"
    assert outcome.error.startswith(f"HTTP {status}")
    assert endpoint.count == 1


async def test_retries_give_up_with_the_last_error(endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.status(503)
    outcome = await request(endpoint, retries=2)
    assert outcome.error_kind == "server" and outcome.attempts == 3 and endpoint.count == 3


@pytest.mark.parametrize("reply", [Reply.malformed_json(), Reply.html()], ids=["json", "html"])
@pytest.mark.parametrize("stream", [False, True])
async def test_unusable_200_fails_without_retry(endpoint: FakeEndpoint, reply: Reply,
                                                stream: bool) -> None:
    endpoint.script(reply)
    outcome = await request(endpoint, stream=stream)
    assert outcome.completion is None and outcome.error_kind == "bad_response", outcome.error
    assert endpoint.count == 1


async def test_hang_ends_at_the_attempt_timeout(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply.hang(), Reply.text("late but fine"))
    started = time.monotonic()
    outcome = await request(endpoint, timeout=0.5)
    assert outcome.completion.text == "late but fine" and outcome.attempts == 2
    assert time.monotonic() - started < 3


async def test_total_timeout_bounds_a_case(endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.hang()
    started = time.monotonic()
    outcome = await request(endpoint, timeout=0.4, total_timeout=1.0, retries=10)
    assert outcome.error_kind == "timeout"
    assert time.monotonic() - started < 2.5


async def test_dropped_stream_is_never_a_success(endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.drop_stream(after_chunks=2, content="a b c d e f")
    outcome = await request(endpoint, stream=True, retries=1)
    assert outcome.completion is None
    assert outcome.error_kind == "connection" and outcome.attempts == 2


async def test_unreachable_endpoint_fails_fast_after_the_first_case() -> None:
    provider = Provider(id="x", base_url="http://127.0.0.1:9/v1", model="m", retries=1,
                        stream=False)
    client = EndpointClient(provider, provider.base_url, "unused")
    first = await client.request(dict(BODY))
    assert first.error_kind == "connection" and client.unreachable
    started = time.monotonic()
    second = await client.request(dict(BODY))
    assert second.error.startswith("endpoint unreachable") and second.attempts == 0
    assert time.monotonic() - started < 0.1
    await client.client.close()


async def test_api_key_is_sent_and_redacted_from_errors(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply.status(401, body={"error": {"message": "bad key sk-test given"}}))
    outcome = await request(endpoint)
    assert endpoint.requests[0].headers["authorization"] == "Bearer sk-test"
    assert "sk-test" not in outcome.error and "[redacted]" in outcome.error


async def test_rate_limit_lowers_concurrency_and_it_recovers() -> None:
    limit = AdaptiveLimit(8)
    limit.rate_limited()
    assert limit.limit == 4
    for _ in range(8):
        await limit.succeeded()
    assert limit.limit == 5


async def test_limit_bounds_requests_in_flight(endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text("x", latency=0.2)
    client = client_for(endpoint, concurrency=3)
    client.limit.limit = 2
    peak = 0

    async def watch():
        nonlocal peak
        while True:
            peak = max(peak, client.limit.in_flight)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(client.request(dict(BODY)) for _ in range(6)))
    watcher.cancel()
    await client.client.close()
    assert peak == 2


def test_retry_after_parsing() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({}) is None
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_retry_after_is_capped_and_garbage_is_ignored() -> None:
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"retry-after": "nan"}) is None
    assert retry_after({"retry-after": "Mon, 99 Foo 2015 07:28:00 GMT"}) is None
    assert retry_after({"retry-after": "inf"}, cap=7) == 7
    assert retry_after({"retry-after": "100000"}, cap=7) == 7
    assert retry_after({"retry-after-ms": "1e12"}, cap=7) == 7
    assert retry_after({"retry-after": "-5"}) == 0.0
    assert retry_after({"retry-after-ms": "junk", "retry-after": "3"}) == 3.0
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10**6))
    assert retry_after({"retry-after": future}, cap=7) == 7


@pytest.mark.parametrize("headers", [
    {"retry-after": "garbage"}, {"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"},
    {"retry-after": "inf"}, {"retry-after": "100000"}, {"retry-after-ms": "1e12"}])
async def test_hostile_retry_after_never_stalls_a_case(endpoint: FakeEndpoint,
                                                      headers: dict[str, str]) -> None:
    endpoint.script(Reply.status(429, headers=headers), Reply.text("ok"))
    # Without a cap these waits are hours or forever; the guard turns a hang into a failure.
    outcome = await asyncio.wait_for(request(endpoint, timeout=0.3, retries=1), 20)
    assert outcome.completion is not None and outcome.completion.text == "ok"
    assert outcome.attempts == 2


async def test_retry_after_never_sleeps_past_the_total_timeout(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply.status(503, retry_after=3), Reply.text("ok"))
    outcome = await asyncio.wait_for(
        request(endpoint, timeout=30, total_timeout=0.5, retries=3), 20)
    assert outcome.completion is None and outcome.error_kind == "timeout"
    assert "total timeout" in outcome.error and endpoint.count == 1


SURROGATE = '{"choices": [{"index": 0, "message": {"role": "assistant", "content": "a\\ud800b"}, ' \
    '"finish_reason": "stop"}]}'


def chat_answer(message: dict, usage: object = None) -> dict:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", **message},
                           "finish_reason": "stop"}]}
    if usage is not None:
        answer["usage"] = usage
    return answer


@pytest.mark.parametrize(("reply", "why"), [
    (Reply.raw(SURROGATE), "unpaired surrogate"),
    (Reply.raw(chat_answer({"content": "hi"}, {"prompt_tokens": "many",
                                               "completion_tokens": 2})), "usage.prompt_tokens"),
    (Reply.raw(chat_answer({"content": "hi"}, {"prompt_tokens": 1,
                                               "completion_tokens": -3})), "not a count"),
    (Reply.raw(chat_answer({"content": "hi"}, "lots")), "'usage' is not an object"),
    (Reply.raw(chat_answer({"content": None})), "no content"),
    (Reply.raw(chat_answer({"content": 42})), "not text"),
    (Reply.raw({"choices": "nope"}), "invalid response"),
    (Reply.raw("[1, 2]"), "invalid response"),
])
async def test_unusable_answers_fail_the_case_at_once(endpoint: FakeEndpoint, reply: Reply,
                                                      why: str) -> None:
    endpoint.script(reply)
    outcome = await request(endpoint)
    assert outcome.completion is None and outcome.error_kind == "bad_response"
    assert why in outcome.error and outcome.attempts == 1


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


@pytest.mark.parametrize(("events", "why"), [
    ((chunk({"content": "a\ud800"}, "stop"),), "unpaired surrogate"),
    ((chunk({"content": "hi"}, "stop"), {"choices": [], "usage": {"prompt_tokens": "x"}}),
     "usage.prompt_tokens"),
    ((chunk({"role": "assistant", "content": None}, "stop"),), "no content"),
    (('{"choices": [',), "not JSON"),
    (({"error": {"message": "model overloaded"}},), "model overloaded"),
])
async def test_unusable_streamed_answers_fail_the_case(endpoint: FakeEndpoint, events: tuple,
                                                       why: str) -> None:
    endpoint.default = Reply.events(*events)
    outcome = await request(endpoint, stream=True, retries=0)
    assert outcome.completion is None and outcome.error_kind in ("bad_response", "server")
    assert why in outcome.error


async def test_a_tool_call_or_a_refusal_is_an_answer_without_text(endpoint: FakeEndpoint) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    endpoint.script(Reply.raw(chat_answer({"content": None, "tool_calls": [call]})),
                    Reply.raw(chat_answer({"content": None, "refusal": "I can't help"})),
                    Reply.events(chunk({"tool_calls": [{"index": 0, **call}]}, "tool_calls")))
    tool = await request(endpoint)
    refusal = await request(endpoint)
    streamed = await request(endpoint, stream=True)
    assert tool.completion.text == "" and tool.error is None
    assert refusal.completion.text == "" and refusal.completion.refusal == "I can't help"
    assert streamed.completion.text == "" and streamed.completion.finish_reason == "tool_calls"


@pytest.mark.parametrize("api", ["chat", "completions"])
async def test_an_empty_streamed_answer_is_an_answer(endpoint: FakeEndpoint, api: str) -> None:
    """As "content": "" is unstreamed: an answer that fails its checks, not a bad response
    (a model that stops at once, e.g. on a stop sequence, answers "")."""
    key = "delta" if api == "chat" else None
    first = ({"choices": [{"index": 0, key: {"role": "assistant", "content": ""},
                           "finish_reason": None}]} if key else
             {"choices": [{"index": 0, "text": "", "finish_reason": None}]})
    last = ({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]} if key else
            {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
    endpoint.script(Reply.events(first, last), Reply.text(""))
    body = BODY if api == "chat" else {"model": "m", "prompt": "Say hi"}
    streamed = await request(endpoint, body, stream=True, api=api)
    unstreamed = await request(endpoint, body, stream=False, api=api)
    for outcome in (streamed, unstreamed):
        assert outcome.error is None, outcome.error
        assert outcome.completion.text == "" and outcome.completion.finish_reason == "stop"


async def test_a_stream_ending_with_done_but_no_finish_reason_is_complete(
        endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply.events(chunk({"content": "Hel"}), chunk({"content": "lo"})))
    outcome = await request(endpoint, stream=True, retries=0)
    assert outcome.error is None and outcome.completion.text == "Hello"
    assert outcome.completion.finish_reason is None


async def test_a_stream_ending_without_done_is_a_dropped_stream(endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.events(chunk({"content": "Hello"}, "stop"), done=False)
    outcome = await request(endpoint, stream=True, retries=1)
    assert outcome.completion is None and outcome.error_kind == "connection"
    assert "[DONE]" in outcome.error and outcome.attempts == 2  # retried, then given up


async def test_errors_are_redacted_before_they_are_shortened(endpoint: FakeEndpoint) -> None:
    from urllib.parse import quote

    key = "sk-canary/+=" + "x" * 40
    padding = "p" * 250  # the key straddles the 300-character cut
    endpoint.script(Reply.status(401, body=f"{padding} bad key {key} ({quote(key, safe='')}, "
                                           f"{key.upper()})"))
    client = EndpointClient(Provider(id="f", base_url=endpoint.base_url, model="m",
                                     stream=False), endpoint.base_url, key)
    outcome = await client.request(dict(BODY))
    await client.client.close()
    assert outcome.error_kind == "client"
    for form in (key, key[:20], quote(key, safe="")[:20], key.upper()[:20]):
        assert form not in outcome.error
    assert "[redacted]" in outcome.error


@pytest.mark.parametrize("api", ["chat", "completions"])
async def test_a_404_from_a_base_url_without_v1_says_it_probably_lacks_v1(
        endpoint: FakeEndpoint, api: str) -> None:
    root = endpoint.base_url.removesuffix("/v1")  # the fake serves under /v1 only
    body = BODY if api == "chat" else {"model": "m", "prompt": "Say hi"}
    client = EndpointClient(Provider(id="fake", base_url=root, model="m", api=api, timeout=5),
                            root, "sk-test")
    try:
        outcome = await client.request(dict(body))
    finally:
        await client.client.close()
    assert (outcome.error_kind, outcome.attempts) == ("client", 1)
    assert outcome.error.startswith("HTTP 404: ")
    assert outcome.error.endswith(f" (the base_url {root} probably lacks /v1: "
                                  f"OpenAI-compatible servers answer at {root}/v1)")
    # with /v1 already there, a 404 (an unknown model, say) gets no such hint
    endpoint.script(Reply.status(404, body="The model 'm' does not exist"))
    outcome = await request(endpoint)
    assert outcome.error.endswith("The model 'm' does not exist") and "/v1" not in outcome.error


async def test_a_404_from_a_whole_endpoint_url_says_to_drop_its_end(
        endpoint: FakeEndpoint) -> None:
    pasted = endpoint.base_url + "/chat/completions"
    client = EndpointClient(Provider(id="fake", base_url=pasted, model="m", timeout=5),
                            pasted, "sk-test")
    try:
        outcome = await client.request(dict(BODY))
    finally:
        await client.client.close()
    assert outcome.error.endswith(f" (the base_url {pasted} ends with /chat/completions, "
                                  f"which promptkit adds itself: use {endpoint.base_url})")
