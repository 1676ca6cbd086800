"""The responder contract (promptkit.testing.fake.as_reply) through ``respond_with``.

A responder returns a str, a dict, a Reply or None; test_cli checks that the same function
answers alike from ``python -m promptkit.testing --responder``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from promptkit.testing import FakeEndpoint, RecordedRequest, Reply

COMPLETION = {
    "id": "chatcmpl-given", "object": "chat.completion", "created": 7, "model": "given-model",
    "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "time", "arguments": "{}"}},
            ]}},
        {"index": 1, "finish_reason": "stop",
         "message": {"role": "assistant", "content": "It is sunny."}},
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}


def answer(request: RecordedRequest):
    """One answer of each type, chosen by the prompt."""
    prompt = request.prompt_text
    if prompt == "str":
        return f"{request.body['model']} {request.path} {request.headers['x-app']}"
    if prompt == "dict":
        return COMPLETION
    if prompt == "chunk":
        return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": {"content": "one event"}}]}
    if prompt == "reply":
        return Reply.text("a Reply", finish_reason="length")
    if prompt == "list":
        return ["not", "allowed"]
    if prompt == "set":
        return {"answer": {"a set"}}
    if prompt == "raise":
        raise KeyError("oops")
    if prompt == "exit":
        raise SystemExit(3)
    if prompt == "interrupt":
        raise KeyboardInterrupt
    if prompt == "unprintable":
        raise Unprintable
    return None


class Unprintable(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


@pytest.fixture
def sdk() -> Iterator[openai.OpenAI]:
    with FakeEndpoint(default=Reply.text("the default")) as endpoint:
        endpoint.respond_with(answer)
        with openai.OpenAI(base_url=endpoint.base_url, api_key="t", max_retries=0,
                           default_headers={"x-app": "demo"}) as client:
            yield client


def ask(sdk: openai.OpenAI, prompt: str, **kwargs):
    messages = [{"role": "user", "content": prompt}]
    return sdk.chat.completions.create(model="gpt-test", messages=messages, **kwargs)


def test_a_str_is_the_answer_text(sdk: openai.OpenAI) -> None:
    result = ask(sdk, "str")
    assert result.choices[0].message.content == "gpt-test /v1/chat/completions demo"
    assert result.usage is not None and result.usage.prompt_tokens == 1  # as Reply.text
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in ask(
        sdk, "str", stream=True) if chunk.choices)
    assert streamed == "gpt-test /v1/chat/completions demo"


def test_a_dict_is_the_body_as_given(sdk: openai.OpenAI) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "dict"}])
    assert raw.status_code == 200 and raw.http_response.json() == COMPLETION
    calls = raw.parse().choices[0].message.tool_calls
    assert [call.function.name for call in calls] == ["weather", "time"]


def test_a_streamed_chat_completion_dict_is_sent_as_its_chunks(sdk: openai.OpenAI) -> None:
    chunks = list(ask(sdk, "dict", stream=True))
    assert {(chunk.object, chunk.id, chunk.model, chunk.created) for chunk in chunks} == {
        ("chat.completion.chunk", "chatcmpl-given", "given-model", 7)}
    first = chunks[0].choices[0]  # as OpenAI: the role, null content and the first call
    assert (first.index, first.delta.role, first.delta.content) == (0, "assistant", None)
    assert [(call.index, call.id, call.type, call.function.name, call.function.arguments)
            for call in first.delta.tool_calls] == [(0, "call_1", "function", "weather", "")]
    fragments: dict[int, list[str]] = {}
    for chunk in chunks[1:-1]:
        for call in chunk.choices[0].delta.tool_calls or ():
            fragments.setdefault(call.index, []).append(call.function.arguments)
    assert fragments == {0: ['{"', "city", '":', " ", '"', "Paris", '"}'], 1: ["", "{}"]}
    second = "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1]
                     if chunk.choices[0].index == 1)
    assert second == "It is sunny."
    assert [(chunk.choices[0].index, chunk.choices[0].finish_reason) for chunk in chunks[:-1]
            if chunk.choices[0].finish_reason] == [(0, "tool_calls"), (1, "stop")]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 8

    dict_prompt = [{"role": "user", "content": "dict"}]
    with sdk.chat.completions.stream(model="m", messages=dict_prompt) as stream:
        final = stream.get_final_completion()  # the SDK's own accumulator agrees
    calls = final.choices[0].message.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_1", "weather", '{"city": "Paris"}'), ("call_2", "time", "{}")]
    assert final.choices[1].message.content == "It is sunny."


def test_any_other_streamed_dict_is_one_event(sdk: openai.OpenAI) -> None:
    chunks = list(ask(sdk, "chunk", stream=True))
    assert [chunk.choices[0].delta.content for chunk in chunks] == ["one event"]


def test_a_reply_is_sent_as_it_is_and_none_means_the_default(sdk: openai.OpenAI) -> None:
    result = ask(sdk, "reply")
    assert (result.choices[0].message.content, result.choices[0].finish_reason) == (
        "a Reply", "length")
    assert ask(sdk, "anything else").choices[0].message.content == "the default"


UNENCODABLE = "the responder's answer cannot be sent: Object of type set is not JSON serializable"


@pytest.mark.parametrize(
    ("prompt", "stream", "message"),
    [
        ("list", False, "the responder returned list: return a str, a dict, a Reply or None"),
        ("set", False, UNENCODABLE),
        ("set", True, UNENCODABLE),  # encoded before the stream starts: the same 500
        ("raise", False, "the responder raised KeyError('oops')"),
        ("exit", False, "the responder raised SystemExit(3)"),
        ("interrupt", True, "the responder raised KeyboardInterrupt()"),
        ("unprintable", False, "the responder raised Unprintable"),
    ],
)
def test_anything_else_is_a_500_saying_why(
    sdk: openai.OpenAI, prompt: str, stream: bool, message: str
) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        ask(sdk, prompt, stream=stream)
    assert caught.value.body["message"] == message
    assert ask(sdk, "str").choices[0].message.content  # and the endpoint keeps serving


def test_concurrent_requests_call_the_responder_concurrently() -> None:
    # Each call waits for all four to be inside the responder: called one at a time, the
    # first would wait alone and break the barrier.
    inside = threading.Barrier(4, timeout=10)

    def blocking(request: RecordedRequest) -> str:
        inside.wait()
        time.sleep(0.5)  # a blocking call, as a real app's function may make
        return request.prompt_text

    with FakeEndpoint() as endpoint, openai.OpenAI(
        base_url=endpoint.base_url, api_key="t", max_retries=0
    ) as client, ThreadPoolExecutor(4) as pool:
        endpoint.respond_with(blocking)
        prompts = [f"request {number}" for number in range(4)]
        answers = list(pool.map(lambda prompt: ask(client, prompt), prompts))
    assert [answer.choices[0].message.content for answer in answers] == prompts


def test_a_blocked_responder_holds_up_only_its_own_request() -> None:
    release = threading.Event()
    endpoint = FakeEndpoint()

    def waits(request: RecordedRequest) -> str:
        release.wait(10)
        return "released"

    with endpoint, openai.OpenAI(base_url=endpoint.base_url, api_key="t", max_retries=0,
                                 timeout=5) as client, ThreadPoolExecutor(1) as pool:
        endpoint.respond_with(waits)
        blocked = pool.submit(ask, client, "first")
        while endpoint.count < 1:
            time.sleep(0.01)
        endpoint.script(Reply.text("scripted"))  # queued after the first request arrived
        assert ask(client, "second").choices[0].message.content == "scripted"
        assert [model.id for model in client.models.list()] == ["fake-model"]
        assert not blocked.done()
        release.set()
        assert blocked.result(timeout=5).choices[0].message.content == "released"


async def answer_later(request: RecordedRequest):
    """``answer``, from an ``async def`` function."""
    await asyncio.sleep(0.01)
    if request.prompt_text == "raise later":
        raise KeyError("late")
    return answer(request)


def test_an_async_responder_is_awaited() -> None:
    with FakeEndpoint(default=Reply.text("the default")) as endpoint, openai.OpenAI(
        base_url=endpoint.base_url, api_key="t", max_retries=0, default_headers={"x-app": "demo"}
    ) as client:
        endpoint.respond_with(answer_later)
        assert ask(client, "str").choices[0].message.content == "gpt-test /v1/chat/completions demo"
        assert ask(client, "dict").choices[1].message.content == "It is sunny."
        assert [c.choices[0].delta.content for c in ask(client, "chunk", stream=True)] == [
            "one event"]
        assert ask(client, "reply").choices[0].finish_reason == "length"
        assert ask(client, "anything else").choices[0].message.content == "the default"
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client, "raise later")
        assert caught.value.body["message"] == "the responder raised KeyError('late')"
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client, "exit")  # SystemExit out of asyncio.run: still the responder's
        assert caught.value.body["message"] == "the responder raised SystemExit(3)"


def nan_answer(request: RecordedRequest) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}],
            "score": float("nan")}


@pytest.mark.parametrize("stream", [False, True])
def test_a_dict_holding_nan_is_a_500_not_invalid_json(stream: bool) -> None:
    with FakeEndpoint() as endpoint, openai.OpenAI(
        base_url=endpoint.base_url, api_key="t", max_retries=0
    ) as client:
        endpoint.respond_with(nan_answer)
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client, "hi", stream=stream)
    assert caught.value.body["message"].startswith(
        "the responder's answer cannot be sent: Out of range float values are not JSON compliant")


def test_on_responder_error_hears_of_each_failure_with_the_500s_message() -> None:
    heard: list[tuple[str, str, str]] = []
    with FakeEndpoint(on_responder_error=lambda request, problem: heard.append(
        (request.path, request.prompt_text, problem)
    )) as endpoint, openai.OpenAI(base_url=endpoint.base_url, api_key="t", max_retries=0,
                                  default_headers={"x-app": "demo"}) as client:
        endpoint.respond_with(answer)
        for prompt in ("raise", "list", "set", "str", "reply", "anything else"):
            try:
                ask(client, prompt)
            except openai.InternalServerError as error:
                assert error.body["message"] == heard[-1][2]
    assert heard == [  # "reply" is a 500 the responder meant: no failure
        ("/v1/chat/completions", "raise", "the responder raised KeyError('oops')"),
        ("/v1/chat/completions", "list",
         "the responder returned list: return a str, a dict, a Reply or None"),
        ("/v1/chat/completions", "set", UNENCODABLE),
    ]


def test_a_hook_that_raises_is_shown_and_the_500_is_sent_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown: list[BaseException | None] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, trace: shown.append(error))

    def broken_hook(request: RecordedRequest, problem: str) -> None:
        raise RuntimeError("the hook is broken")

    with FakeEndpoint(on_responder_error=broken_hook) as endpoint, openai.OpenAI(
        base_url=endpoint.base_url, api_key="t", max_retries=0, timeout=5
    ) as client:
        endpoint.respond_with(answer)
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client, "raise")
    assert caught.value.body["message"] == "the responder raised KeyError('oops')"
    assert [repr(error) for error in shown] == ["RuntimeError('the hook is broken')"]
