"""The responder contract (promptkit.testing.fake.as_reply) through ``respond_with``.

A responder returns a str, a dict, a Reply or None; test_cli checks that the same function
answers alike from ``python -m promptkit.testing --responder``.
"""

from __future__ import annotations

from collections.abc import Iterator

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
    return None


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
    assert [chunk.object for chunk in chunks] == ["chat.completion.chunk"] * 3
    assert {(chunk.id, chunk.model, chunk.created) for chunk in chunks} == {
        ("chatcmpl-given", "given-model", 7)}
    first, second, usage = chunks
    assert [call.index for call in first.choices[0].delta.tool_calls] == [0, 1]
    assert first.choices[0].finish_reason == "tool_calls"
    assert (second.choices[0].index, second.choices[0].delta.content) == (1, "It is sunny.")
    assert usage.choices == [] and usage.usage.total_tokens == 8

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


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("list", "the responder returned list: return a str, a dict, a Reply or None"),
        ("set", "the responder's answer cannot be sent: Object of type set is not JSON "
                "serializable"),
        ("raise", "the responder raised KeyError('oops')"),
    ],
)
def test_anything_else_is_a_500_saying_why(sdk: openai.OpenAI, prompt: str, message: str) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        ask(sdk, prompt)
    assert caught.value.body["message"] == message
    assert ask(sdk, "str").choices[0].message.content  # and the endpoint keeps serving
