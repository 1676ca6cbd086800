"""Tests for promptkit.testing.fake: the fake endpoint, driven through the real openai SDK."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
import urllib.error
import urllib.request

import openai
import pytest

from promptkit.testing import FakeEndpoint, Reply, fake_embedding

USER = [{"role": "user", "content": "What is the capital of France?"}]


def chat(client: openai.OpenAI, content: str = "What is the capital of France?", **kwargs):
    messages = [{"role": "user", "content": content}]
    return client.chat.completions.create(model="gpt-test", messages=messages, **kwargs)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_text_reply_is_parsed_by_the_sdk(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    endpoint.script(Reply.text("Paris"))
    result = chat(client)
    assert result.choices[0].message.content == "Paris"
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].finish_reason == "stop"
    assert result.object == "chat.completion"
    assert result.model == "gpt-test"
    assert result.id.startswith("chatcmpl-")


def test_default_reply_echoes_the_last_user_message_or_the_prompt(
    client: openai.OpenAI,
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
    ]
    result = client.chat.completions.create(model="m", messages=messages)
    assert result.choices[0].message.content == "second question"

    completion = client.completions.create(model="base", prompt="Once upon a time")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "Once upon a time"


def test_usage_is_estimated_by_words_or_overridden_or_omitted(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.script(
        Reply.text("It is Paris."),
        Reply.text("Paris", usage={"prompt_tokens": 11, "completion_tokens": 2}),
        Reply.text("Paris", usage=False),
    )
    estimated = chat(client).usage
    assert estimated is not None
    assert (estimated.prompt_tokens, estimated.completion_tokens) == (6, 3)
    assert estimated.total_tokens == 9

    overridden = chat(client).usage
    assert overridden is not None
    assert (overridden.prompt_tokens, overridden.completion_tokens) == (11, 2)
    assert overridden.total_tokens == 13

    assert chat(client).usage is None


def test_n_choices(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    result = chat(client, "same answer", n=3)
    assert [choice.index for choice in result.choices] == [0, 1, 2]
    assert {choice.message.content for choice in result.choices} == {"same answer"}
    assert result.usage is not None and result.usage.completion_tokens == 6

    endpoint.script(Reply.text(["42", "41"]))
    votes = chat(client, n=3)
    assert [choice.message.content for choice in votes.choices] == ["42", "41", "42"]


def test_reasoning_content_and_finish_reason(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    endpoint.script(Reply.text("4", reasoning_content="2 plus 2 is 4", finish_reason="length"))
    result = chat(client, "2+2?")
    message = result.choices[0].message
    assert message.content == "4"
    assert getattr(message, "reasoning_content") == "2 plus 2 is 4"  # noqa: B009  (extra field)
    assert result.choices[0].finish_reason == "length"


def test_streaming_chat_reassembles_and_ends_with_a_usage_chunk(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    text = "The capital of France is Paris, of course."
    endpoint.script(Reply.text(text, reasoning_content="easy one"))
    stream = chat(client, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 3  # really split, not one blob
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    assert reasoning == "easy one"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    final = chunks[-1]
    assert final.choices == []
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (6, 8 + 2)
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_include_usage_sends_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(chat(client, "a b c", stream=True))
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


async def test_async_streaming_completions(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply.text("jumped over the lazy dog"))
    async with openai.AsyncOpenAI(base_url=endpoint.base_url, api_key="test", max_retries=0) as sdk:
        stream = await sdk.completions.create(
            model="base",
            prompt="The quick brown fox",
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "jumped over the lazy dog"
    assert all(chunk.object == "text_completion" for chunk in chunks)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (4, 5)


def test_latency_delays_the_first_byte(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    endpoint.script(Reply.text("slow", latency=0.3))
    started = time.monotonic()
    chat(client)
    assert time.monotonic() - started >= 0.3


def test_streaming_latency_is_time_to_first_token_and_chunk_delay_paces_chunks(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.script(Reply.text("a b c", latency=0.2, chunk_delay=0.05))
    started = time.monotonic()
    stream = chat(client, stream=True)
    arrivals = [time.monotonic() - started for _chunk in stream]
    assert len(arrivals) == 5  # role, "a ", "b ", "c", finish
    assert arrivals[0] >= 0.2
    assert arrivals[-1] >= 0.2 + 4 * 0.05  # measured from the start: a late read can't shrink it


def test_429_raises_rate_limit_error_with_retry_after(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.script(Reply.status(429, retry_after=2))
    with pytest.raises(openai.RateLimitError) as caught:
        chat(client)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"


def test_500_raises_internal_server_error(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    endpoint.script(Reply.status(500, body="boom"))
    with pytest.raises(openai.InternalServerError) as caught:
        chat(client)
    assert caught.value.body == {
        "message": "boom",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert "retry-after" not in caught.value.response.headers


def test_malformed_json_raises_a_json_error_not_an_sdk_error(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    # The SDK does not wrap this: a runner must catch ValueError as well as openai.APIError.
    endpoint.script(Reply.malformed_json(), Reply.malformed_json())
    with pytest.raises(json.JSONDecodeError):
        chat(client)
    with pytest.raises(json.JSONDecodeError):
        list(chat(client, stream=True))


def test_html_page_comes_back_as_a_plain_string(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    # With a non-JSON content type and status 200 the SDK returns the text, not a model.
    endpoint.script(Reply.html(), Reply.html(), Reply.html(status=502))
    result = chat(client)
    assert isinstance(result, str)
    assert result.startswith("<!DOCTYPE html>")
    assert list(chat(client, stream=True)) == []  # a stream with no events ends "normally"
    with pytest.raises(openai.InternalServerError):
        chat(client)


def test_hang_is_ended_by_the_client_timeout_and_does_not_leak(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.script(Reply.hang())
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(client, timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert chat(client, "still alive").choices[0].message.content == "still alive"
    client.close()  # drop the keep-alive connection too: nothing may stay open on the server
    deadline = time.monotonic() + 2
    while endpoint.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert endpoint.connections == 0


def test_drop_stream_makes_stream_iteration_raise(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.script(Reply.drop_stream(after_chunks=2))
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in chat(client, "one two three four five", stream=True):
            received.append(chunk)
    assert len(received) == 2
    assert "".join(c.choices[0].delta.content or "" for c in received) == "one "

    endpoint.script(Reply.drop_stream())
    with pytest.raises(openai.APIConnectionError):
        chat(client)  # non-streaming: the body is cut in half
    assert chat(client, "recovered").choices[0].message.content == "recovered"


def test_requests_are_recorded_with_the_parsed_body(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *USER]
    client.chat.completions.create(model="gpt-test", messages=messages, temperature=0)
    client.completions.create(model="base", prompt="Hello")
    client.models.list()

    first, second, third = endpoint.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.body == {"model": "gpt-test", "messages": messages, "temperature": 0}
    assert first.prompt_text == "Be brief.\nWhat is the capital of France?"
    assert first.headers["authorization"] == "Bearer test"
    assert first.headers["content-type"] == "application/json"
    assert (second.path, second.prompt_text) == ("/v1/completions", "Hello")
    assert (third.method, third.path, third.body) == ("GET", "/v1/models", None)
    assert first.received_at <= second.received_at <= third.received_at
    assert endpoint.count == 2  # models requests are not completions


def test_script_is_fifo_then_falls_back_to_default(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.default = Reply.text("default")
    endpoint.script(Reply.text("first"), Reply.status(503))
    endpoint.script(Reply.text("third"))
    assert endpoint.pending == 3
    assert chat(client).choices[0].message.content == "first"
    with pytest.raises(openai.InternalServerError):
        chat(client)
    assert chat(client).choices[0].message.content == "third"
    assert chat(client).choices[0].message.content == "default"
    assert endpoint.pending == 0

    endpoint.reset()
    assert (endpoint.requests, endpoint.count) == ([], 0)
    assert chat(client, "echo again").choices[0].message.content == "echo again"


def test_reset_forgets_the_script_responder_default_and_embeddings_reply(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.script(Reply.text("queued"))
    endpoint.respond_with(lambda request: Reply.text("responder"))
    endpoint.default = Reply.text("default")
    endpoint.embeddings_reply = Reply.status(503)
    chat(client)
    endpoint.reset()
    assert (endpoint.pending, endpoint.count, endpoint.requests) == (0, 0, [])
    assert endpoint.embeddings_reply is None
    assert chat(client, "plain echo").choices[0].message.content == "plain echo"
    assert len(client.embeddings.create(model="e", input="a").data) == 1


def test_not_running_has_no_base_url_and_no_connections() -> None:
    endpoint = FakeEndpoint()
    with pytest.raises(RuntimeError, match="not running"):
        _ = endpoint.base_url
    assert endpoint.connections == 0
    with endpoint, pytest.raises(RuntimeError, match="already running"):
        endpoint.start()
    endpoint.stop()  # stopping a stopped endpoint is harmless


def test_an_ipv6_host_is_bracketed_in_the_base_url() -> None:
    endpoint = FakeEndpoint(host="::1")
    try:
        endpoint.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert endpoint.base_url == f"http://[::1]:{endpoint.port}/v1"
        with openai.OpenAI(base_url=endpoint.base_url, api_key="t", max_retries=0) as sdk:
            assert [model.id for model in sdk.models.list()] == ["fake-model"]
    finally:
        endpoint.stop()


def test_respond_with_decides_by_prompt_text(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    endpoint.respond_with(
        lambda request: Reply.text("new") if "v2" in request.prompt_text else None
    )
    assert chat(client, "prompt v2").choices[0].message.content == "new"
    assert chat(client, "prompt v1").choices[0].message.content == "prompt v1"  # None -> default
    endpoint.script(Reply.text("scripted"))  # the queue goes first
    assert chat(client, "prompt v2").choices[0].message.content == "scripted"

    endpoint.respond_with(lambda request: 1 / 0)
    with pytest.raises(openai.InternalServerError, match="ZeroDivisionError"):
        chat(client)


def test_embeddings_are_deterministic_and_similar_texts_are_closer(client: openai.OpenAI) -> None:
    texts = ["the cat sat on the mat", "the cat sat on a mat", "quarterly revenue grew 8%"]
    # The SDK asks for base64 by default and decodes it; ask for floats too, to check both.
    default = client.embeddings.create(model="embed", input=texts)
    floats = client.embeddings.create(model="embed", input=texts, encoding_format="float")
    cat, cat2, revenue = (item.embedding for item in floats.data)
    assert len(cat) == 64
    assert cat == fake_embedding(texts[0])
    for decoded, exact in zip(default.data, floats.data, strict=True):
        assert decoded.embedding == pytest.approx(exact.embedding, abs=1e-6)
    assert math.isclose(cosine(cat, cat), 1.0)
    assert cosine(cat, cat2) > 0.8
    assert cosine(cat, cat2) > cosine(cat, revenue) + 0.3
    assert default.model == "embed"
    assert default.usage.prompt_tokens == 6 + 6 + 4  # words
    one = client.embeddings.create(model="embed", input="hello", dimensions=16)
    assert len(one.data[0].embedding) == 16


def test_models_and_unknown_paths(endpoint: FakeEndpoint, client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["fake-model"]
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(endpoint.base_url + "/nope", timeout=5)
    assert caught.value.code == 404
    error = json.loads(caught.value.read())["error"]
    assert error["message"] == "Unknown endpoint: GET /v1/nope"
    assert error["type"] == "invalid_request_error"


async def test_concurrent_requests_are_served_in_parallel(endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.echo(latency=0.2)
    async with openai.AsyncOpenAI(base_url=endpoint.base_url, api_key="test", max_retries=0) as sdk:
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                sdk.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"request {i}"}]
                )
                for i in range(40)
            )
        )
        elapsed = time.monotonic() - started
    assert [r.choices[0].message.content for r in results] == [f"request {i}" for i in range(40)]
    assert elapsed < 2  # serial would take 8 s
    assert endpoint.count == 40


async def test_stop_closes_the_port_even_with_a_hung_client() -> None:
    endpoint = FakeEndpoint().start()
    port = endpoint.port
    endpoint.default = Reply.hang()
    sdk = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key="test", max_retries=0)
    pending = asyncio.create_task(sdk.chat.completions.create(model="m", messages=USER, timeout=10))
    while endpoint.count == 0:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    endpoint.stop()
    assert time.monotonic() - started < 1
    with pytest.raises(openai.APIConnectionError):
        await pending
    await sdk.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_raw_reply_and_extra_headers_are_sent_as_given(endpoint: FakeEndpoint) -> None:
    import httpx2 as httpx

    endpoint.script(Reply.raw('{"choices": [{"message": {"content": "\\ud800"}}]}'),
                    Reply.status(429, headers={"retry-after": "soon", "retry-after-ms": "1e12"}))
    url = endpoint.base_url + "/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    first = httpx.post(url, json=body)
    assert first.status_code == 200 and b'"\\ud800"' in first.content
    second = httpx.post(url, json=body)
    assert second.status_code == 429
    assert second.headers["retry-after"] == "soon"
    assert second.headers["retry-after-ms"] == "1e12"


def test_events_reply_streams_exactly_the_events_with_or_without_done(
    endpoint: FakeEndpoint,
) -> None:
    import httpx2 as httpx

    chunk = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    endpoint.script(Reply.events(chunk), Reply.events(chunk, done=False))
    url = endpoint.base_url + "/chat/completions"
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with_done = httpx.post(url, json=body).text
    without = httpx.post(url, json=body).text  # a complete body: read() does not raise
    assert with_done.count("data: ") == 2 and with_done.rstrip().endswith("data: [DONE]")
    assert without.count("data: ") == 1 and "[DONE]" not in without


def test_embeddings_reply_scripts_an_embeddings_outage(
    endpoint: FakeEndpoint, client: openai.OpenAI
) -> None:
    endpoint.embeddings_reply = Reply.status(503, body="embedder down")
    with pytest.raises(openai.InternalServerError, match="embedder down"):
        client.embeddings.create(model="e", input=["a"])
    endpoint.embeddings_reply = None
    assert len(client.embeddings.create(model="e", input=["a"]).data) == 1
