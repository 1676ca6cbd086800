"""HTTP to OpenAI-compatible endpoints: one ``AsyncOpenAI`` per endpoint, retries we control.

The SDK's own retries are off (``max_retries=0``) so that every rule is visible here:

* 429: wait at least ``Retry-After`` (or a backoff), and halve that endpoint's
  concurrency; it grows back one slot at a time as requests succeed.
* 5xx, 408, 409, timeouts, refused or dropped connections: retried with capped,
  jittered exponential backoff.
* Other 4xx and unusable 200 responses (invalid JSON, HTML): fail the case at once.
* An endpoint that has never answered and keeps failing to connect is marked
  unreachable, so the remaining cases fail fast instead of each retrying.

A streamed response that ends without a finish reason is a dropped stream, never a
success.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .results import ErrorKind
from .spec import Provider
from .tokens import count_prompt_tokens, count_tokens

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


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    if value := headers.get("retry-after-ms"):
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


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
    text = " ".join(str(text).split())
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
        self._secret = api_key if api_key != "unused" else None
        self.client = sdk_client or sdk_client_for(base_url, api_key, provider.headers)
        self.limit = AdaptiveLimit(provider.concurrency)
        self.answered = False
        self.unreachable: str | None = None

    async def aclose(self) -> None:
        """Close the SDK client (when it is not shared with other providers)."""
        await self.client.close()

    def redact(self, text: str) -> str:
        """Remove the API key from a message (some servers echo it back)."""
        return text.replace(self._secret, "[redacted]") if self._secret else text

    async def request(self, body: dict[str, Any]) -> Outcome:
        """Send ``body`` with retries; never raises for endpoint trouble."""
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
                        completion, ttft = await self._attempt(body)
                    outcome.latency_s = time.perf_counter() - started
                outcome.completion, outcome.ttft_s = completion, ttft
                self.answered = True
                await self.limit.succeeded()
                return outcome
            except Exception as exc:
                error = classify(exc)
            outcome.error, outcome.error_kind = self.redact(error.message), error.kind
            if error.kind == "rate_limit":
                self.limit.rate_limited()
            if error.kind not in RETRYABLE or attempt == provider.retries:
                break
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
            if error.retry_after is not None:
                # The server said when to come back: never earlier, and not much later.
                delay = error.retry_after + random.uniform(0, 0.1)
            if deadline is not None and time.monotonic() + delay > deadline:
                outcome.error_kind, outcome.error = "timeout", f"total timeout reached after " \
                    f"{outcome.error}"
                break
            await asyncio.sleep(delay)
        if not self.answered and outcome.error_kind in ("connection", "timeout"):
            self.unreachable = f"endpoint unreachable ({self.base_url}): {outcome.error}"
        return outcome

    async def _attempt(self, body: dict[str, Any]) -> tuple[Completion, float | None]:
        # AsyncOpenAI.post with plain JSON: the SDK's transport, auth and error types,
        # without its per-request typed transforms, which cost more CPU than the rest
        # of an eval step; any body key (vendor params too) goes through as given.
        from openai import AsyncStream

        chat = self.provider.api == "chat"
        path = "/chat/completions" if chat else "/completions"
        if not self.provider.stream:
            response = await self.client.post(path, body=body, cast_to=object,
                                              options={"timeout": self.provider.timeout})
            return self._with_usage(_parse_response(response, chat), body), None
        started = time.perf_counter()
        stream = await self.client.post(
            path, body={**body, "stream": True, "stream_options": {"include_usage": True}},
            cast_to=object, stream=True, stream_cls=AsyncStream[object],
            options={"timeout": self.provider.timeout})
        parts: list[str] = []
        reasoning: list[str] = []
        ttft = finish = usage = None
        chunks = 0
        async for chunk in stream:
            chunks += 1
            try:
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or ():
                    if choice.get("index", 0) != 0:
                        continue
                    delta = (choice.get("delta") or {}) if chat else choice
                    piece = delta.get("content") if chat else delta.get("text")
                    think = delta.get("reasoning_content") if chat else None
                    if (piece or think) and ttft is None:
                        ttft = time.perf_counter() - started
                    if piece:
                        parts.append(piece)
                    if think:
                        reasoning.append(think)
                    finish = choice.get("finish_reason") or finish
            except AttributeError:
                raise RequestError("bad_response", f"invalid response: unexpected stream "
                                   f"event {_short(repr(chunk), 120)}") from None
        if chunks == 0:
            raise RequestError("bad_response", "invalid response: the stream held no events "
                               "(is this an OpenAI-compatible endpoint?)")
        if finish is None:
            raise RequestError("connection", "stream ended before the answer was complete")
        completion = Completion("".join(parts), finish, reasoning="".join(reasoning) or None)
        _add_usage(completion, usage)
        return self._with_usage(completion, body), ttft

    def _with_usage(self, completion: Completion, body: dict[str, Any]) -> Completion:
        # Servers that report no usage get a tiktoken estimate, marked as such.
        if completion.input_tokens is None or completion.output_tokens is None:
            model = self.provider.model
            prompt = body.get("messages") or body.get("prompt") or ""
            completion.input_tokens = count_prompt_tokens(prompt, model)
            completion.output_tokens = count_tokens(completion.text, model)
            completion.usage_estimated = True
        return completion


def _add_usage(completion: Completion, usage: Any) -> None:
    if isinstance(usage, dict):
        completion.input_tokens = usage.get("prompt_tokens")
        completion.output_tokens = usage.get("completion_tokens")


def _parse_response(response: Any, chat: bool) -> Completion:
    """The first choice of a completion response (a JSON object), checked."""
    try:
        choice = response["choices"][0]
        if chat:
            message = choice["message"]
            text, reasoning = message.get("content") or "", message.get("reasoning_content")
        else:
            text, reasoning = choice.get("text") or "", None
        finish = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise RequestError("bad_response", f"invalid response: {_short(repr(response), 120)}"
                           ) from None
    if not isinstance(text, str):
        raise RequestError("bad_response", "invalid response: the content is not text")
    completion = Completion(text, finish, reasoning=reasoning)
    _add_usage(completion, response.get("usage"))
    return completion
