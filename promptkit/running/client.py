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
A provider given a list of replicas sends each attempt through one of them
(:mod:`.replicas`), by the same rules.
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
from urllib.parse import urlsplit

from ..errors import GraderOutage, PromptkitError
from ..redact import add_secret, redact, redact_data, shorten, strip_userinfo
from ..results import CaseResult, ErrorKind
from ..tokens import count_prompt_tokens, count_tokens
from .responses import (
    Completion,
    RequestError,
    StreamedAnswer,
    parse_response,
    raw_events_class,
)
from .spec import Provider

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRYABLE: frozenset[ErrorKind] = frozenset({"rate_limit", "server", "timeout", "connection"})


@dataclass
class RequestOutcome:
    """The end of a request with retries: a completion or an error, with timings."""

    completion: Completion | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    attempts: int = 0
    embeddings: list[list[float]] | None = None
    started_at: float | None = None  # epoch seconds the first attempt was sent


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
        text = f"HTTP {status}: {shorten(exc.message)}"
        if status == 429:
            return RequestError("rate_limit", text, retry_after(exc.response.headers))
        if status >= 500 or status in (408, 409):
            return RequestError("server", text, retry_after(exc.response.headers))
        return RequestError("client", text)
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return RequestError("timeout", "request timed out")
    if isinstance(exc, (openai.APIConnectionError, *_transport_errors())):
        cause = exc.__cause__ or exc
        return RequestError("connection", f"connection failed: {shorten(str(cause)) or 'closed'}")
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError | ValueError):
        return RequestError("bad_response", f"invalid response: {shorten(str(exc))}")
    return RequestError("bad_response", f"{type(exc).__name__}: {shorten(str(exc))}")


def _not_found(exc: BaseException) -> bool:
    import openai

    return isinstance(exc, openai.NotFoundError)


def sdk_client_for(base_url: str, api_key: str, headers: Mapping[str, str] | None = None
                   ) -> Any:
    """An ``AsyncOpenAI`` with the SDK's own retries off (promptkit retries itself)."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                       default_headers=dict(headers) if headers else None)


def attempt_timeout(provider: Provider, deadline: float | None) -> float:
    """Seconds the next attempt may take: the provider's ``timeout``, cut short by the
    ``deadline`` of its ``total_timeout`` (0 or less once it has passed)."""
    if deadline is None:
        return provider.timeout
    return min(provider.timeout, deadline - time.monotonic())


def backoff(error: RequestError, attempt: int, provider: Provider) -> float:
    """Seconds to wait before retrying after ``error`` on attempt ``attempt`` (from 0):
    capped, jittered exponential backoff, or what the server said."""
    if error.retry_after is not None:
        # The server said when to come back: never earlier, and not much later; but never
        # longer than one attempt may take (a hint of hours is a broken server).
        return min(error.retry_after, provider.timeout) + random.uniform(0, 0.1)
    return min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)


async def wait_to_retry(outcome: RequestOutcome, delay: float, deadline: float | None
                        ) -> bool:
    """Sleep ``delay`` seconds before the next attempt; ``False`` instead when that would
    pass the ``deadline`` (``outcome`` then says the total timeout was reached)."""
    if deadline is not None and time.monotonic() + delay > deadline:
        outcome.error_kind = "timeout"
        outcome.error = f"total timeout reached after {outcome.error}"
        return False
    await asyncio.sleep(delay)
    return True


class RequestClient:
    """What the runner sends a provider's requests through: one endpoint
    (:class:`EndpointClient`) or a list of replicas
    (:class:`~promptkit.running.replicas.ReplicaSet`).

    Attributes:
        provider: The provider's settings.
        base_url: Where requests go (the first replica's URL for a list of replicas).
        unreachable: Why the endpoint is given up on: it never answered and every attempt
            failed to connect; the remaining requests fail at once.
    """

    provider: Provider
    base_url: str
    unreachable: str | None = None

    async def request(self, body: dict[str, Any], path: str | None = None) -> RequestOutcome:
        """Send ``body`` with retries; never raises for endpoint trouble.

        ``path`` ``/embeddings`` asks for embeddings (``RequestOutcome.embeddings``) instead of a
        completion.
        """
        raise NotImplementedError

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


class EndpointClient(RequestClient):
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

    async def request(self, body: dict[str, Any], path: str | None = None) -> RequestOutcome:
        """Send ``body`` with retries; never raises for endpoint trouble.

        ``path`` ``/embeddings`` asks for embeddings (``RequestOutcome.embeddings``) instead of a
        completion.
        """
        provider = self.provider
        deadline = time.monotonic() + provider.total_timeout if provider.total_timeout else None
        outcome = RequestOutcome()
        for attempt in range(provider.retries + 1):
            if self.unreachable:
                outcome.error, outcome.error_kind = self.unreachable, "connection"
                return outcome
            outcome.attempts = attempt + 1
            error = await self.attempt(body, path, outcome, attempt_timeout(provider, deadline))
            if error is None:
                return outcome
            outcome.error, outcome.error_kind = error.message, error.kind
            if error.kind not in RETRYABLE or attempt == provider.retries:
                break
            if not await wait_to_retry(outcome, backoff(error, attempt, provider), deadline):
                break
        if not self.answered and outcome.error_kind in ("connection", "timeout"):
            self.unreachable = f"endpoint unreachable ({self.shown_url}): {outcome.error}"
        return outcome

    async def attempt(self, body: dict[str, Any], path: str | None, outcome: RequestOutcome,
                      timeout: float) -> RequestError | None:
        """One attempt, within ``timeout`` seconds and the endpoint's limit: ``None`` when
        it answered (``outcome`` holds the answer and its timings), else what went wrong
        (its message redacted). A rate limit halves the limit."""
        try:
            if timeout <= 0:
                raise RequestError("timeout", "total timeout reached")
            async with self.limit:
                started = time.perf_counter()
                outcome.started_at = outcome.started_at or time.time()
                async with asyncio.timeout(timeout):
                    if path == "/embeddings":
                        outcome.embeddings = await self._embeddings(body, len(body["input"]))
                        completion, ttft = None, None
                    else:
                        completion, ttft = await self._attempt(body)
                outcome.latency_s = time.perf_counter() - started
        except Exception as exc:
            error = classify(exc)
            hint = self._missing_v1_hint() if path is None and _not_found(exc) else ""
            if error.kind == "rate_limit":
                self.limit.rate_limited()
            return RequestError(error.kind, redact(error.message + hint), error.retry_after)
        outcome.completion, outcome.ttft_s = completion, ttft
        self.answered = True
        await self.limit.succeeded()
        return None

    def _missing_v1_hint(self) -> str:
        """Why ``/chat/completions`` or ``/completions`` was not found: OpenAI-compatible
        servers serve them under ``/v1``, which a base URL often lacks."""
        path = urlsplit(self.shown_url).path.rstrip("/")
        for endpoint in ("/chat/completions", "/completions"):
            if path.endswith(endpoint):  # the whole endpoint URL pasted as the base
                base = self.shown_url.rstrip("/")[:-len(endpoint)]
                return (f" (the base_url {self.shown_url} ends with {endpoint}, which "
                        f"promptkit adds itself: use {base})")
        if path.endswith("/v1"):
            return ""
        return (f" (the base_url {self.shown_url} probably lacks /v1: OpenAI-compatible "
                f"servers answer at {self.shown_url.rstrip('/')}/v1)")

    async def _attempt(self, body: dict[str, Any]) -> tuple[Completion, float | None]:
        # AsyncOpenAI.post with plain JSON: the SDK's transport, auth and error types,
        # without its per-request typed transforms, which cost more CPU than the rest
        # of an eval step; any body key (vendor params too) goes through as given.
        chat = self.provider.api == "chat"
        path = "/chat/completions" if chat else "/completions"
        if not self.provider.stream:
            response = await self.client.post(path, body=body, cast_to=object,
                                              options={"timeout": self.provider.timeout})
            return self._with_usage(parse_response(response, chat), body), None
        started = time.perf_counter()
        stream = await self.client.post(
            path, body={**body, "stream": True, "stream_options": {"include_usage": True}},
            cast_to=object, stream=True, stream_cls=raw_events_class(),
            options={"timeout": self.provider.timeout})
        answer = StreamedAnswer(chat)
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
                               f"{shorten(repr(response), 120)}") from None
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
        if completion.tool_calls:
            completion.tool_calls = redact_data(completion.tool_calls)
        # Servers that report no usage get a tiktoken estimate, marked as such.
        if completion.input_tokens is None or completion.output_tokens is None:
            model = self.provider.model
            prompt = body.get("messages") or body.get("prompt") or ""
            completion.input_tokens = count_prompt_tokens(prompt, model)
            completion.output_tokens = count_tokens(
                completion.text + (json.dumps(completion.tool_calls) if completion.tool_calls
                                   else ""), model)
            completion.usage_estimated = True
        return completion


def record_answers(result: CaseResult,
                   answers: list[tuple[Completion | None, RequestOutcome | None]],
                   samples: int, *, sequential: bool = False) -> list[Completion]:
    """Record a case's answers' attempts, timings and error in ``result``; the completions.

    Parallel samples take the longest latency and the shortest time to first token;
    ``sequential`` answers (a conversation) add their latencies, and the first answer's
    time to first token is the case's.
    """
    completions = []
    for completion, outcome in answers:
        latency = ttft = None
        if outcome is not None:
            result.attempts += outcome.attempts
            latency, ttft = outcome.latency_s or 0.0, outcome.ttft_s
            if outcome.started_at is not None:
                result.started_at = min(result.started_at or outcome.started_at,
                                        outcome.started_at)
            if completion is None:
                result.error, result.error_kind = outcome.error, outcome.error_kind
        elif completion is not None:  # from the cache: the latency it was measured with
            latency, ttft = completion.latency_s, completion.ttft_s
        if latency is not None:
            result.latency_s = (result.latency_s or 0.0) + latency if sequential else max(
                result.latency_s or 0.0, latency)
        if ttft is not None and not (sequential and result.ttft_s is not None):
            result.ttft_s = min(result.ttft_s or ttft, ttft)
        if completion is not None:
            completions.append(completion)
    result.requests = sum(outcome is not None for _, outcome in answers)
    result.cached = result.requests == 0
    timed = [o for _, o in answers if o is not None and o.latency_s is not None]
    if len(timed) == samples:  # every sample was asked for and timed
        result.generation_s = sum(o.latency_s - (o.ttft_s or 0.0) for o in timed)
    return completions
