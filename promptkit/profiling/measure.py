"""One streamed request, timed: when it was sent, when each content chunk came, when the
last byte came, and how many tokens it produced.

The request goes through the openai SDK client promptkit uses everywhere
(:func:`~promptkit.running.client.sdk_client_for`, its own retries off) and its stream is
read event by event as the eval runner reads it (:class:`~promptkit.running.responses.
StreamedAnswer`), so an answer is complete only with ``data: [DONE]`` and is checked the
same way. Nothing is retried: a profile measures the endpoint as it is, and a failed
request is counted, with its (redacted) reason.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from ..redact import redact
from ..running.client import classify
from ..running.responses import StreamedAnswer, raw_events_class


@dataclass
class RequestRecord:
    """What one request measured; times in seconds from when it was sent.

    Attributes:
        sent_at: ``time.perf_counter()`` when it was sent.
        ttft: Until the first streamed content (text or reasoning) chunk.
        e2el: Until the last byte of the stream.
        itl: The gaps between consecutive content chunks.
        output_tokens: From the stream's ``usage``, else the content chunks counted.
        tokens_from_usage: Whether ``output_tokens`` came from ``usage``.
        input_tokens: From ``usage``, else counted by tiktoken (set by the caller).
        error: Why it failed (redacted); None when it succeeded.
    """

    sent_at: float
    ttft: float | None = None
    e2el: float | None = None
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    tokens_from_usage: bool = False
    input_tokens: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tpot(self) -> float | None:
        """(E2EL − TTFT) / (output tokens − 1); None with fewer than two tokens."""
        if not self.ok or self.ttft is None or self.e2el is None or self.output_tokens < 2:
            return None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)

    @property
    def finished_at(self) -> float:
        return self.sent_at + (self.e2el or 0.0)


async def timed_request(client: Any, path: str, body: dict[str, Any], *, chat: bool,
                        timeout: float) -> RequestRecord:
    """Send ``body`` (streamed, with usage asked for) and time it; never raises for
    endpoint trouble, which becomes the record's ``error``."""
    record = RequestRecord(time.perf_counter())
    chunk_times: list[float] = []
    answer = StreamedAnswer(chat)
    try:
        async with asyncio.timeout(timeout):
            stream = await client.post(
                path, body={**body, "stream": True, "stream_options": {"include_usage": True}},
                cast_to=object, stream=True, stream_cls=raw_events_class(),
                options={"timeout": timeout})
            try:
                async for event in stream:
                    if not answer.done and answer.add(event.data):
                        chunk_times.append(time.perf_counter())
            finally:
                await stream.close()
        record.e2el = time.perf_counter() - record.sent_at
        completion = answer.completion()
    except Exception as exc:
        record.error = redact(classify(exc).message)
        return record
    if not chunk_times:
        record.error = "the stream carried no content"
        return record
    record.ttft = chunk_times[0] - record.sent_at
    record.itl = [later - earlier for earlier, later in itertools.pairwise(chunk_times)]
    record.tokens_from_usage = completion.output_tokens is not None
    record.output_tokens = (completion.output_tokens if completion.output_tokens is not None
                            else len(chunk_times))
    record.input_tokens = completion.input_tokens
    return record
