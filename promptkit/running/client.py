"""HTTP to OpenAI-compatible endpoints: one ``AsyncOpenAI`` per endpoint, retries we control.

The SDK's own retries are off (``max_retries=0``) so that every rule is visible here:

* 429: wait at least ``Retry-After`` (or a backoff), and halve that endpoint's
  concurrency; it grows back one slot at a time as requests succeed.
* 5xx, 408, 409, timeouts, refused or dropped connections: retried with capped,
  jittered exponential backoff.
* Other 4xx and unusable 200 responses (invalid JSON, HTML): fail the case at once.
* An endpoint that has never answered and keeps failing to connect is marked
  unreachable, so the remaining cases fail fast instead of each retrying.

Answers are checked before anyone uses them: a body that is not a completion, ``content:
null`` without tool calls or a refusal, ``usage`` counts that are not numbers, or text with
unpaired surrogates fail that case (``bad_response``), and none of them is cached. A
streamed answer is complete only when the server sends ``data: [DONE]``; a stream that
stops before it is a dropped stream (retried, never cached). The SDK hides ``[DONE]``, so
streams are read event by event here.

Every error message goes through :func:`promptkit.redact.redact` before it is shortened.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import GraderOutage, PromptkitError
from ..redact import add_secret, redact, strip_userinfo
from ..results import ErrorKind
from ..tokens import count_prompt_tokens, count_tokens
from .spec import Provider

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRYABLE: frozenset[ErrorKind] = frozenset({"rate_limit", "server", "timeout", "connection"})


@dataclass
class Completion:
    """A usable answer: what gets cached and scored."""

    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning: str | None = None
    usage_estimated: bool = False
    refusal: str | None = None

    def to_record(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Outcome:
    """The end of a request with retries: a completion or an error, with timings."""

    completion: Completion | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    attempts: int = 0
    embeddings: list[list[float]] | None = None


class RequestError(Exception):
    """One failed attempt, classified."""

    def __init__(self, kind: ErrorKind, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after


class AdaptiveLimit:
    """A concurrency limit that halves on rate limiting and recovers slowly."""

    def __init__(self, limit: int):
        self.max_limit = limit
        self.limit = limit
        self.in_flight = 0
        self._successes = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1

    async def __aexit__(self, *exc: object) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify()

    def rate_limited(self) -> None:
        self.limit = max(1, self.limit // 2)
        self._successes = 0

    async def succeeded(self) -> None:
        if self.limit >= self.max_limit:
            return
        self._successes += 1
        if self._successes >= 2 * self.limit:  # one more slot per two rounds of successes
            self._successes = 0
            self.limit += 1
            async with self._changed:
                self._changed.notify()


@functools.cache
def _transport_errors() -> tuple[type[BaseException], ...]:
    try:
        import httpx2 as httpx  # what the openai SDK uses from 3.x on
    except ImportError:  # pragma: no cover - older SDKs
        import httpx
    return (httpx.TransportError, httpx.StreamError)


def retry_after(headers: Mapping[str, str] | None, cap: float = BACKOFF_CAP) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Whatever a server sends, the answer is ``None`` (no usable hint: garbage, NaN) or a
    number of seconds in ``[0, cap]``: ``inf``, ``100000`` or ``retry-after-ms: 1e12``
    wait ``cap`` seconds, a date in the past waits 0.
    """
    if not headers:
        return None
    seconds = None
    if value := headers.get("retry-after-ms"):
        seconds = _number(value)
        seconds = None if seconds is None else seconds / 1000
    if seconds is None and (value := headers.get("retry-after")):
        seconds = _number(value)
        if seconds is None:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
                seconds = parsed.timestamp() - time.time()
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    if seconds is None:
        return None
    return min(max(seconds, 0.0), cap)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def classify(exc: BaseException) -> RequestError:
    """Map an SDK or transport exception to a :class:`RequestError`."""
    import openai

    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        text = f"HTTP {status}: {_short(exc.message)}"
        if status == 429:
            return RequestError("rate_limit", text, retry_after(exc.response.headers))
        if status >= 500 or status in (408, 409):
            return RequestError("server", text, retry_after(exc.response.headers))
        return RequestError("client", text)
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return RequestError("timeout", "request timed out")
    if isinstance(exc, (openai.APIConnectionError, *_transport_errors())):
        cause = exc.__cause__ or exc
        return RequestError("connection", f"connection failed: {_short(str(cause)) or 'closed'}")
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError | ValueError):
        return RequestError("bad_response", f"invalid response: {_short(str(exc))}")
    return RequestError("bad_response", f"{type(exc).__name__}: {_short(str(exc))}")


def _short(text: str, limit: int = 300) -> str:
    # Redact first: a key past the cut would otherwise survive cut in half.
    text = " ".join(redact(str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sdk_client_for(base_url: str, api_key: str, headers: Mapping[str, str] | None = None
                   ) -> Any:
    """An ``AsyncOpenAI`` with the SDK's own retries off (promptkit retries itself)."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                       default_headers=dict(headers) if headers else None)


class EndpointClient:
    """Requests to one provider's endpoint, with retries and an adaptive limit.

    Args:
        provider: The provider's settings.
        base_url: Where to send requests (a local server's URL for ``local``).
        api_key: The key value; kept only in the SDK client, removed from messages.
    """

    def __init__(self, provider: Provider, base_url: str, api_key: str,
                 sdk_client: Any | None = None):
        self.provider = provider
        self.base_url = base_url
        add_secret(api_key)
        for value in provider.headers.values():
            add_secret(value)
        self.shown_url = strip_userinfo(base_url)
        self.client = sdk_client or sdk_client_for(base_url, api_key, provider.headers)
        self.limit = AdaptiveLimit(provider.concurrency)
        self.answered = False
        self.unreachable: str | None = None

    async def aclose(self) -> None:
        """Close the SDK client (when it is not shared with other providers)."""
        await self.client.close()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings of ``texts`` from ``/v1/embeddings``, with the same retries.

        Raises:
            GraderOutage: the endpoint did not answer (rate limits, 5xx, timeouts, lost
                connections, after retries).
            PromptkitError: it answered with an error (4xx) or something that is not an
                embeddings response. Messages are redacted.
        """
        body = {"model": self.provider.model or self.provider.id, "input": texts,
                "encoding_format": "float"}
        outcome = await self.request(body, path="/embeddings")
        if outcome.embeddings is None:
            message = f"embeddings from {self.provider.id} failed: {outcome.error}"
            if outcome.error_kind in RETRYABLE:  # the endpoint did not answer: an outage
                raise GraderOutage(message)
            raise PromptkitError(message)  # it answered, with a refusal: counts as a failure
        return outcome.embeddings

    async def request(self, body: dict[str, Any], path: str | None = None) -> Outcome:
        """Send ``body`` with retries; never raises for endpoint trouble.

        ``path`` ``/embeddings`` asks for embeddings (``Outcome.embeddings``) instead of a
        completion.
        """
        provider = self.provider
        deadline = time.monotonic() + provider.total_timeout if provider.total_timeout else None
        outcome = Outcome()
        for attempt in range(provider.retries + 1):
            if self.unreachable:
                outcome.error, outcome.error_kind = self.unreachable, "connection"
                return outcome
            outcome.attempts = attempt + 1
            timeout = provider.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
            try:
                if timeout <= 0:
                    raise RequestError("timeout", "total timeout reached")
                async with self.limit:
                    started = time.perf_counter()
                    async with asyncio.timeout(timeout):
                        if path == "/embeddings":
                            outcome.embeddings = await self._embeddings(body, len(body["input"]))
                            completion, ttft = None, None
                        else:
                            completion, ttft = await self._attempt(body)
                    outcome.latency_s = time.perf_counter() - started
                outcome.completion, outcome.ttft_s = completion, ttft
                self.answered = True
                await self.limit.succeeded()
                return outcome
            except Exception as exc:
                error = classify(exc)
            outcome.error, outcome.error_kind = redact(error.message), error.kind
            if error.kind == "rate_limit":
                self.limit.rate_limited()
            if error.kind not in RETRYABLE or attempt == provider.retries:
                break
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
            if error.retry_after is not None:
                # The server said when to come back: never earlier, and not much later; but
                # never longer than one attempt may take (a hint of hours is a broken server).
                delay = min(error.retry_after, provider.timeout) + random.uniform(0, 0.1)
            if deadline is not None and time.monotonic() + delay > deadline:
                outcome.error_kind, outcome.error = "timeout", f"total timeout reached after " \
                    f"{outcome.error}"
                break
            await asyncio.sleep(delay)
        if not self.answered and outcome.error_kind in ("connection", "timeout"):
            self.unreachable = f"endpoint unreachable ({self.shown_url}): {outcome.error}"
        return outcome

    async def _attempt(self, body: dict[str, Any]) -> tuple[Completion, float | None]:
        # AsyncOpenAI.post with plain JSON: the SDK's transport, auth and error types,
        # without its per-request typed transforms, which cost more CPU than the rest
        # of an eval step; any body key (vendor params too) goes through as given.
        chat = self.provider.api == "chat"
        path = "/chat/completions" if chat else "/completions"
        if not self.provider.stream:
            response = await self.client.post(path, body=body, cast_to=object,
                                              options={"timeout": self.provider.timeout})
            return self._with_usage(_parse_response(response, chat), body), None
        started = time.perf_counter()
        stream = await self.client.post(
            path, body={**body, "stream": True, "stream_options": {"include_usage": True}},
            cast_to=object, stream=True, stream_cls=_raw_events_class(),
            options={"timeout": self.provider.timeout})
        answer = _StreamedAnswer(chat)
        ttft = None
        try:
            async for event in stream:
                if answer.done:
                    continue  # read to the end, so the connection can be reused
                if answer.add(event.data) and ttft is None:
                    ttft = time.perf_counter() - started
        finally:
            await stream.close()
        completion = answer.completion()
        return self._with_usage(completion, body), ttft

    async def _embeddings(self, body: dict[str, Any], count: int) -> list[list[float]]:
        response = await self.client.post("/embeddings", body=body, cast_to=object,
                                          options={"timeout": self.provider.timeout})
        try:
            items = sorted(response["data"], key=lambda item: item.get("index", 0))
            vectors = [item["embedding"] for item in items]
        except (KeyError, TypeError, AttributeError):
            raise RequestError("bad_response", f"invalid embeddings response: "
                               f"{_short(repr(response), 120)}") from None
        if len(vectors) != count or not all(
                isinstance(v, list) and v and all(isinstance(x, int | float) for x in v)
                for v in vectors):
            raise RequestError("bad_response", f"invalid embeddings response: expected "
                               f"{count} vectors of numbers")
        return vectors

    def _with_usage(self, completion: Completion, body: dict[str, Any]) -> Completion:
        # A server that echoes a secret into its answer must not get it cached or stored.
        completion.text = redact(completion.text)
        if completion.reasoning:
            completion.reasoning = redact(completion.reasoning)
        if completion.refusal:
            completion.refusal = redact(completion.refusal)
        # Servers that report no usage get a tiktoken estimate, marked as such.
        if completion.input_tokens is None or completion.output_tokens is None:
            model = self.provider.model
            prompt = body.get("messages") or body.get("prompt") or ""
            completion.input_tokens = count_prompt_tokens(prompt, model)
            completion.output_tokens = count_tokens(completion.text, model)
            completion.usage_estimated = True
        return completion


@functools.cache
def _raw_events_class() -> type:
    """An SDK stream class that yields each server-sent event as it came, ``[DONE]`` too."""
    from openai import AsyncStream

    class RawEvents(AsyncStream[object]):
        async def __stream__(self) -> Any:  # type: ignore[override]
            async for event in self._iter_events():
                yield event

    return RawEvents


class _StreamedAnswer:
    """Assembles the first choice of a streamed completion, event by event."""

    def __init__(self, chat: bool):
        self.chat = chat
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.finish: str | None = None
        self.usage: Any = None
        self.events = 0
        self.done = False
        self.tool_calls = False
        self.refusal: list[str] = []

    def add(self, data: str) -> bool:
        """Take one event's data; returns whether it carried text (for time to first token)."""
        if data.startswith("[DONE]"):
            self.done = True
            return False
        if not data.strip():
            return False
        self.events += 1
        try:
            chunk = json.loads(data)
        except ValueError:
            raise RequestError("bad_response", f"invalid response: a stream event is not "
                               f"JSON: {_short(data, 120)}") from None
        if not isinstance(chunk, dict):
            raise RequestError("bad_response", f"invalid response: unexpected stream event "
                               f"{_short(repr(chunk), 120)}")
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise RequestError("server", f"error in the stream: {_short(str(message))}")
        self.usage = chunk.get("usage") or self.usage
        text = False
        choices = chunk.get("choices")
        choices = [] if choices is None else choices
        if not isinstance(choices, list):
            raise RequestError("bad_response", "invalid response: 'choices' is not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise RequestError("bad_response", "invalid response: a choice is not an object")
            if choice.get("index", 0) != 0:
                continue
            delta = (choice.get("delta") or {}) if self.chat else choice
            if not isinstance(delta, dict):
                raise RequestError("bad_response", "invalid response: a delta is not an object")
            piece = delta.get("content") if self.chat else delta.get("text")
            think = delta.get("reasoning_content") if self.chat else None
            for value in (piece, think):
                if value is not None and not isinstance(value, str):
                    raise RequestError("bad_response", "invalid response: the content is not "
                                       "text")
            if piece:
                self.parts.append(piece)
            if think:
                self.reasoning.append(think)
            if self.chat:
                self.tool_calls = self.tool_calls or bool(delta.get("tool_calls"))
                if isinstance(delta.get("refusal"), str):
                    self.refusal.append(delta["refusal"])
            self.finish = choice.get("finish_reason") or self.finish
            text = text or bool(piece or think)
        return text

    def completion(self) -> Completion:
        if self.events == 0 and not self.done:
            raise RequestError("bad_response", "invalid response: the stream held no events "
                               "(is this an OpenAI-compatible endpoint?)")
        if not self.done:
            raise RequestError("connection", "the stream ended before data: [DONE] (a dropped "
                               "stream)")
        text = "".join(self.parts)
        if not text and not self.tool_calls and not self.refusal:
            _no_content()
        completion = Completion(text, self.finish, reasoning="".join(self.reasoning) or None,
                                refusal="".join(self.refusal) or None)
        _add_usage(completion, self.usage)
        _check_text(completion)
        return completion


def _no_content() -> None:
    raise RequestError("bad_response", "invalid response: the answer has no content (no "
                       "text, no tool calls, no refusal)")


def _check_text(completion: Completion) -> None:
    """Text JSON can carry but UTF-8 cannot (a lone surrogate such as \\ud800) is refused
    here, before it reaches the cache, the run store or a report."""
    for value in (completion.text, completion.reasoning, completion.refusal):
        if value is None:
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError("bad_response", "invalid response: the answer holds an "
                               "unpaired surrogate (not valid Unicode text)") from None


def _token_count(usage: dict[str, Any], key: str) -> int | None:
    value = usage.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value >= 0 and value == int(value)):
        raise RequestError("bad_response", f"invalid response: usage.{key} is "
                           f"{_short(repr(value), 40)}, not a count")
    return int(value)


def _add_usage(completion: Completion, usage: Any) -> None:
    if usage is None:
        return
    if not isinstance(usage, dict):
        raise RequestError("bad_response", "invalid response: 'usage' is not an object")
    completion.input_tokens = _token_count(usage, "prompt_tokens")
    completion.output_tokens = _token_count(usage, "completion_tokens")


def _parse_response(response: Any, chat: bool) -> Completion:
    """The first choice of a completion response (a JSON object), checked."""
    refusal = None
    try:
        choice = response["choices"][0]
        if chat:
            message = choice["message"]
            text, reasoning = message.get("content"), message.get("reasoning_content")
            refusal = message.get("refusal")
            if text is None and (message.get("tool_calls") or isinstance(refusal, str)):
                text = ""  # a tool call or a refusal is an answer without text
        else:
            text, reasoning = choice.get("text"), None
        finish = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise RequestError("bad_response", f"invalid response: {_short(repr(response), 120)}"
                           ) from None
    if text is None:
        _no_content()
    if not isinstance(text, str) or not isinstance(reasoning, str | None):
        raise RequestError("bad_response", "invalid response: the content is not text")
    completion = Completion(text, finish, reasoning=reasoning,
                            refusal=refusal if isinstance(refusal, str) else None)
    _add_usage(completion, response.get("usage"))
    _check_text(completion)
    return completion
