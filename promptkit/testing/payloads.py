"""The OpenAI wire format the fake endpoint speaks: response bodies, stream chunks, errors.

Pure functions from a request body and a :class:`~promptkit.testing.reply.Reply` to what
OpenAI would send: chat and legacy completion payloads and their streamed chunks (a whole
message becomes its deltas in :func:`message_deltas`, tool calls included), estimated
``usage``, embeddings (:func:`fake_embedding`), the error body the ``openai`` SDK reads
into its exceptions (:func:`error_payload`), and the stream a responder's dict becomes
(:func:`dict_as_events`); and what a request's conversation holds (:func:`message_text`,
:func:`tool_results`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
import struct
import zlib
from typing import Any

from .reply import Reply

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "HTML_PAGE",
    "MALFORMED_JSON",
    "chat_chunks",
    "completion_chunks",
    "completion_payload",
    "dict_as_events",
    "echo_text",
    "embeddings_payload",
    "error_body",
    "error_payload",
    "fake_embedding",
    "message_deltas",
    "message_text",
    "number_tool_calls",
    "prompt_text",
    "scripted_message",
    "tool_results",
    "usage",
]

EMBEDDING_DIMENSIONS = 64

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n"
    b"<body><h1>Welcome to nginx!</h1><p>This is not an API endpoint.</p></body></html>\n"
)
# Cut off inside a string, like a body truncated by a crashing proxy.
MALFORMED_JSON = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index'


def error_payload(status: int, message: str) -> dict[str, Any]:
    """The error OpenAI answers with ``status``: ``{"error": {"message", "type", "param",
    "code"}}`` (a batch's error file holds it as a failed line's response body)."""
    if status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def error_body(status: int, message: str) -> tuple[str, bytes]:
    """The error body OpenAI sends (:func:`error_payload`) and its content type."""
    return "application/json", json.dumps(error_payload(status, message)).encode()


def scripted_message(status: int, message: str | None) -> str:
    """The message of a scripted error: ``message``, else one saying who scripted it."""
    return f"Error {status} scripted by promptkit.testing" if message is None else message


def fake_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The deterministic unit vector the fake ``/v1/embeddings`` returns for ``text``.

    A bag of hashed character bigrams of the lower-cased text padded with a space on each
    side: each bigram adds +1 or -1 to one of ``dimensions`` buckets, both chosen by its
    CRC-32, then the vector is L2-normalized. Strings sharing many bigrams therefore have a
    high cosine similarity and unrelated strings score near 0. CRC-32 (not ``hash()``) keeps
    the vectors identical across processes.
    """
    padded = f" {text.lower()} "
    vector = [0.0] * dimensions
    for start in range(len(padded) - 1):
        digest = zlib.crc32(padded[start : start + 2].encode())
        vector[digest % dimensions] += 1.0 if digest & 0x8000_0000 else -1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def embeddings_payload(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The ``/v1/embeddings`` answer; raises ``TypeError`` or ``ValueError`` on a bad request."""
    inputs = body.get("input")
    if isinstance(inputs, str) or (
        inputs and isinstance(inputs, list) and isinstance(inputs[0], int)
    ):
        inputs = [inputs]  # one text, or one text given as token ids
    if not inputs or not isinstance(inputs, list):
        raise ValueError("input must be a string or a non-empty list")
    dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
    if dimensions < 1:
        raise ValueError("dimensions must be positive")
    data, words = [], 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(str(token) for token in item)
        vector: list[float] | str = fake_embedding(text, dimensions)
        if body.get("encoding_format") == "base64":  # the openai SDK asks for it by default
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
        words += len(text.split())
    usage = {"prompt_tokens": words, "total_tokens": words}
    return {
        "object": "list",
        "data": data,
        "model": body.get("model") or model,
        "usage": usage,
    }


def message_text(message: Any) -> str:
    """A message's text: its ``content`` string, or its text parts joined by newlines."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content parts: keep the text ones, skip images and audio
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return "\n".join(text for text in texts if isinstance(text, str))
    return content if isinstance(content, str) else ""


def prompt_text(body: Any) -> str:
    """All message contents joined by newlines, the prompt, or the embeddings inputs."""
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("messages"), list):
        return "\n".join(message_text(message) for message in body["messages"])
    prompt = body.get("prompt", body.get("input", ""))
    return "\n".join(str(item) for item in prompt) if isinstance(prompt, list) else str(prompt)


def echo_text(body: dict[str, Any], prompt: str) -> str:
    """What an echo answers: the last user message (chat), else ``prompt``."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return prompt
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    candidates = users or messages
    return message_text(candidates[-1]) if candidates else ""


def _assistant_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls the conversation's assistant messages hold, in order."""
    return [call for message in messages if message.get("role") == "assistant"
            and isinstance(message.get("tool_calls"), list)
            for call in message["tool_calls"] if isinstance(call, dict)]


def tool_results(messages: list[dict[str, Any]]) -> dict[str, str]:
    """The text of each ``tool`` message, keyed by its ``tool_call_id`` and by the name of the
    function called (from the assistant's call of that id, else the message's ``name``);
    for a function called more than once, its name keys the latest result."""
    names = {}
    for call in _assistant_calls(messages):
        function = call.get("function")
        if isinstance(call.get("id"), str) and isinstance(function, dict):
            names[call["id"]] = function.get("name")
    results: dict[str, str] = {}
    for message in messages:
        if message.get("role") != "tool":
            continue
        call_id = message.get("tool_call_id")
        name = names.get(call_id) if isinstance(call_id, str) else None
        for key in (call_id, name or message.get("name")):
            if isinstance(key, str):
                results[key] = message_text(message)
    return results


def number_tool_calls(reply: Reply, messages: list[dict[str, Any]]) -> Reply:
    """``reply`` with an id for each of its calls that has none: ``call_N``, numbered on from
    the tool calls the conversation's assistant messages already hold."""
    made = len(_assistant_calls(messages))
    calls = tuple(call if call.id is not None
                  else dataclasses.replace(call, id=f"call_{made + position}")
                  for position, call in enumerate(reply.calls, start=1))
    return dataclasses.replace(reply, calls=calls)


def usage(prompt: str, texts: list[str], reply: Reply) -> dict[str, int] | None:
    """Token counts estimated as words, overridden by ``reply.usage``; ``None`` to omit."""
    if reply.usage is False:
        return None
    reasoning_words = len((reply.reasoning_content or "").split())
    call_words = sum(len(call.name.split()) + len(call.arguments.split()) for call in reply.calls)
    counts = {
        "prompt_tokens": len(prompt.split()),
        "completion_tokens": sum(len(text.split()) + reasoning_words + call_words
                                 for text in texts),
    }
    counts.update(reply.usage or {})
    if not reply.usage or "total_tokens" not in reply.usage:
        counts["total_tokens"] = counts["prompt_tokens"] + counts["completion_tokens"]
    return counts


def _pieces(text: str) -> list[str]:
    """Split text into word-sized stream deltas that concatenate back to exactly ``text``."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", text) if piece]


def _argument_pieces(arguments: str) -> list[str]:
    """Split a call's arguments as a tokenizer might: runs of word characters, of spaces and
    of punctuation (``{"city": "Paris"}`` is 7 fragments); they concatenate back exactly."""
    return re.findall(r"\w+|\s+|[^\w\s]+", arguments)


def _chat_choice(index: int, text: str, reply: Reply) -> dict[str, Any]:
    # A tool-call reply without text has "content": null, as OpenAI sends it.
    content = None if reply.kind == "tool_calls" and reply.content is None else text
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if reply.reasoning_content is not None:
        message["reasoning_content"] = reply.reasoning_content
    if reply.calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments}}
            for call in reply.calls
        ]
    return {
        "index": index,
        "message": message,
        "logprobs": None,
        "finish_reason": reply.finish_reason,
    }


def _text_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}


def completion_payload(
    base: dict[str, Any], texts: list[str], reply: Reply, counts: dict[str, int] | None, chat: bool
) -> dict[str, Any]:
    """A whole (not streamed) chat or legacy completion, one choice per text."""
    if chat:
        choices = [_chat_choice(index, text, reply) for index, text in enumerate(texts)]
        payload = {**base, "choices": choices, "system_fingerprint": None}
    else:
        choices = [
            _text_choice(index, text, reply.finish_reason) for index, text in enumerate(texts)
        ]
        payload = {**base, "choices": choices}
    if counts is not None:
        payload["usage"] = counts
    return payload


def chat_chunks(
    base: dict[str, Any], texts: list[str], reply: Reply, counts: dict[str, int] | None
) -> list[dict[str, Any]]:
    """The chunks OpenAI streams; ``counts`` is given when ``include_usage`` was asked."""
    header = {**base, "object": "chat.completion.chunk", "system_fingerprint": None}
    # With include_usage OpenAI sends "usage": null on every chunk, then a usage-only chunk.
    usage_field = {"usage": None} if counts else {}

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**header, "choices": [choice], **usage_field}

    events = []
    for index, text in enumerate(texts):
        message = _chat_choice(index, text, reply)["message"]
        events.extend(chunk(index, delta) for delta in message_deltas(message))
        events.append(chunk(index, {}, reply.finish_reason))
    if counts:
        events.append({**header, "choices": [], "usage": counts})
    return events


def completion_chunks(
    base: dict[str, Any], texts: list[str], reply: Reply, counts: dict[str, int] | None
) -> list[dict[str, Any]]:
    """The legacy completions chunks; ``counts`` is given when ``include_usage`` was asked."""
    usage_field = {"usage": None} if counts else {}
    events = []
    for index, text in enumerate(texts):
        for piece in [*_pieces(text), ""]:  # the empty last piece carries the finish reason
            finish = None if piece else reply.finish_reason
            events.append({**base, "choices": [_text_choice(index, piece, finish)], **usage_field})
    if counts:
        events.append({**base, "choices": [], "usage": counts})
    return events


def message_deltas(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``delta`` objects OpenAI streams a whole chat ``message`` as (the finish reason
    follows them, in a chunk of its own).

    The first delta holds the ``role``, ``"content": ""`` (``null`` when the message has no
    text) and the message's other keys as given (``refusal``...); then come
    ``reasoning_content`` and ``content`` in word-sized pieces, then each tool call: a delta
    with its ``index``, ``id``, ``type`` and ``function.name`` and empty ``arguments`` (in the
    first delta when there is no text before it), then its arguments in fragments, each with
    the call's ``index``. A tool call that is not ``{"function": {"arguments": <str>}}`` is
    sent whole, with its ``index``, in one delta.
    """
    content, reasoning = message.get("content"), message.get("reasoning_content")
    first = {key: value for key, value in message.items()
             if key not in ("content", "reasoning_content", "tool_calls")}
    first.setdefault("role", "assistant")
    first["content"] = "" if isinstance(content, str) else content
    deltas = [first]
    if isinstance(reasoning, str):
        deltas.extend({"reasoning_content": piece} for piece in _pieces(reasoning))
    elif reasoning is not None:
        first["reasoning_content"] = reasoning
    if isinstance(content, str):
        deltas.extend({"content": piece} for piece in _pieces(content))
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        if calls is not None:
            first["tool_calls"] = calls  # not a list: sent as given
        return deltas
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if not isinstance(arguments, str):
            deltas.append({"tool_calls": [{"index": index, **call} if isinstance(call, dict)
                                          else call]})
            continue
        header = {"index": index, **call, "function": {**function, "arguments": ""}}
        if len(deltas) == 1 and "tool_calls" not in first and not content:
            first["tool_calls"] = [header]  # OpenAI sends the first call with the role
        else:
            deltas.append({"tool_calls": [header]})
        deltas.extend({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                      for piece in _argument_pieces(arguments))
    return deltas


def dict_as_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The server-sent events a responder's dict is streamed as, when the request streams.

    A chat completion (a dict whose ``choices`` all hold a ``message``) becomes the
    ``chat.completion.chunk`` events OpenAI would stream: per choice, its message as
    :func:`message_deltas` (text in pieces, tool calls as their header then argument
    fragments), then a chunk with its ``finish_reason`` and ``logprobs``; then a chunk with
    no choices carrying its ``usage`` if it has one. Any other dict (a chunk, a legacy
    completion, an error) is one event, sent as given.
    """
    choices = body.get("choices")
    if not choices or not isinstance(choices, list) or not all(
        isinstance(choice, dict) and isinstance(choice.get("message"), dict) for choice in choices
    ):
        return [body]
    header = {key: value for key, value in body.items() if key not in ("choices", "usage")}
    header["object"] = "chat.completion.chunk"

    def chunk(index: Any, delta: dict[str, Any], logprobs: Any = None,
              finish: Any = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return {**header, "choices": [choice]}

    events = []
    for position, choice in enumerate(choices):
        index = choice.get("index", position)
        events.extend(chunk(index, delta) for delta in message_deltas(choice["message"]))
        events.append(chunk(index, {}, choice.get("logprobs"), choice.get("finish_reason")))
    if body.get("usage") is not None:
        events.append({**header, "choices": [], "usage": body["usage"]})
    return events
