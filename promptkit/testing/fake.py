"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests.

promptkit's own tests and benchmarks, and users testing their apps, point the real ``openai``
SDK (or any HTTP client) at :class:`FakeEndpoint` instead of monkeypatching it. Each
completion request is answered by a :class:`Reply`: normal text, an echo of the prompt, an
HTTP error with ``Retry-After``, malformed JSON, an HTML page, a hang or a dropped stream,
each optionally after some latency. Every request is recorded for assertions.

Example::

    import openai
    from promptkit.testing.fake import FakeEndpoint, Reply

    messages = [{"role": "user", "content": "Capital of France?"}]
    with FakeEndpoint() as ep:
        client = openai.OpenAI(base_url=ep.base_url, api_key="test", max_retries=0)
        ep.script(Reply.status(429, retry_after=1), Reply.text("Paris"))
        try:  # the 1st request gets the 429, the 2nd "Paris", later ones ep.default (echo)
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        except openai.RateLimitError as error:
            assert error.response.headers["retry-after"] == "1"
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert answer.choices[0].message.content == "Paris"
        assert ep.requests[0].body["messages"] == messages

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (both also with
``"stream": true`` and ``stream_options.include_usage``), ``POST /v1/embeddings``,
``GET /v1/models``; anything else is a 404 with an OpenAI-style error body. Embeddings are
:func:`fake_embedding` vectors: deterministic, and closer for similar texts. A completion
request takes its reply from the scripted FIFO queue (:meth:`FakeEndpoint.script`), else from
the responder function (:meth:`FakeEndpoint.respond_with`), else :attr:`FakeEndpoint.default`.
Embeddings and models requests never consume the queue; embeddings answer normally unless
:attr:`FakeEndpoint.embeddings_reply` is set (to script an embeddings outage). For answers no
well-behaved server sends, :meth:`Reply.raw` sends any body and :meth:`Reply.events` any
stream of server-sent events, with or without ``[DONE]``.

From a shell: ``python -m promptkit.testing --port 8000 --latency 0.1 [--reply TEXT]``.

The server is a small HTTP/1.1 implementation on ``asyncio.start_server`` (keep-alive,
Content-Length request bodies, chunked streaming responses) whose event loop runs in a daemon
thread, so synchronous code and other event loops can both use it. It costs one task per
connection: no thread and no blocking sleep per request, so it keeps up with benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import itertools
import json
import math
import re
import signal
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

__all__ = ["FakeEndpoint", "RecordedRequest", "Reply", "fake_embedding", "main"]

ReplyKind = Literal[
    "text", "echo", "status", "malformed_json", "html", "hang", "drop_stream", "raw", "events"
]
Usage = dict[str, int] | Literal[False] | None
Responder = Callable[["RecordedRequest"], "Reply | None"]

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
EMBEDDING_DIMENSIONS = 64

_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n"
    b"<body><h1>Welcome to nginx!</h1><p>This is not an API endpoint.</p></body></html>\n"
)
# Cut off inside a string, like a body truncated by a crashing proxy.
_MALFORMED_JSON = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index'


@dataclass(frozen=True)
class Reply:
    """How :class:`FakeEndpoint` answers one completion request; build it with a class method.

    Every kind but ``hang`` waits ``latency`` seconds before the first byte (the time to first
    token when streaming), on the server's event loop, so other requests are not held up.
    """

    kind: ReplyKind
    content: tuple[str, ...] | None = None
    latency: float = 0.0
    usage: Usage = None
    finish_reason: str = "stop"
    reasoning_content: str | None = None
    chunk_delay: float = 0.0
    status_code: int = 200
    body: dict[str, Any] | str | None = None
    retry_after: float | None = None
    after_chunks: int = 2
    headers: tuple[tuple[str, str], ...] = ()
    sse_events: tuple[Any, ...] = ()
    done: bool = True

    def __post_init__(self) -> None:
        if self.latency < 0 or self.chunk_delay < 0:
            raise ValueError("latency and chunk_delay must be >= 0")
        if not 100 <= self.status_code <= 599:
            raise ValueError(f"not an HTTP status code: {self.status_code}")

    @classmethod
    def text(
        cls,
        content: str | Sequence[str],
        *,
        finish_reason: str = "stop",
        reasoning_content: str | None = None,
        usage: Usage = None,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> Reply:
        """A normal completion answering ``content``.

        Args:
            content: The answer. A sequence gives choice ``i`` of an ``n > 1`` request
                ``content[i % len(content)]`` (e.g. to test self-consistency voting).
            finish_reason: ``"stop"``, ``"length"``, ``"content_filter"``...
            reasoning_content: Sent as ``message.reasoning_content`` (the field DeepSeek, vLLM
                and llama.cpp use for reasoning models); streamed before the content.
            usage: ``None`` estimates tokens as whitespace-separated words (prompt: all
                message contents or the prompt; completion: every choice's content and
                reasoning), which is good enough for tests. A dict overrides those counts
                (``total_tokens`` is recomputed unless given). ``False`` omits ``usage``,
                like servers that do not report it.
            latency: Seconds before the first byte.
            chunk_delay: Seconds between streamed chunks.
        """
        contents = (content,) if isinstance(content, str) else tuple(content)
        if not contents:
            raise ValueError("content must not be an empty sequence")
        return cls(
            "text",
            content=contents,
            latency=latency,
            usage=usage,
            finish_reason=finish_reason,
            reasoning_content=reasoning_content,
            chunk_delay=chunk_delay,
        )

    @classmethod
    def echo(cls, *, usage: Usage = None, latency: float = 0.0, chunk_delay: float = 0.0) -> Reply:
        """Answer with the last user message (chat) or the prompt (completions).

        Args:
            usage: As for :meth:`text`.
            latency: Seconds before the first byte.
            chunk_delay: Seconds between streamed chunks.
        """
        return cls("echo", latency=latency, usage=usage, chunk_delay=chunk_delay)

    @classmethod
    def status(
        cls,
        code: int,
        *,
        body: dict[str, Any] | str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        latency: float = 0.0,
    ) -> Reply:
        """An HTTP error with an OpenAI-style body ``{"error": {"message", "type", "code"}}``.

        Args:
            code: The HTTP status, e.g. 429 or 500.
            body: A dict is sent verbatim as the JSON body; a string replaces the message.
            retry_after: Seconds for the ``Retry-After`` header (omitted when ``None``).
            headers: More response headers, sent as given (e.g. a garbage ``Retry-After``
                or ``retry-after-ms``).
            latency: Seconds before answering.
        """
        return cls("status", latency=latency, status_code=code, body=body,
                   retry_after=retry_after, headers=tuple((headers or {}).items()))

    @classmethod
    def raw(
        cls,
        body: str | bytes | dict[str, Any],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        latency: float = 0.0,
    ) -> Reply:
        """Any body, sent as given with ``Content-Type: application/json`` (a dict as JSON).

        For answers no well-behaved server sends: a string holding ``"\\ud800"`` (a lone
        surrogate), ``"usage": {"prompt_tokens": "many"}``, ``"content": null``...
        """
        text = json.dumps(body) if isinstance(body, dict) else body
        return cls("raw", latency=latency, status_code=status,
                   body=text.decode() if isinstance(text, bytes) else text,
                   headers=tuple((headers or {}).items()))

    @classmethod
    def events(
        cls,
        *events: dict[str, Any] | str,
        done: bool = True,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> Reply:
        """A server-sent-event stream of exactly these events, then ``data: [DONE]`` when
        ``done``, and a complete HTTP body either way (unlike :meth:`drop_stream`).

        A dict is sent as JSON, a string as the ``data:`` text. Streaming requests only.
        """
        return cls("events", latency=latency, chunk_delay=chunk_delay, sse_events=events,
                   done=done)

    @classmethod
    def malformed_json(cls, *, latency: float = 0.0) -> Reply:
        """Status 200 and ``Content-Type: application/json``, but a truncated JSON body.

        A streaming request gets a ``text/event-stream`` whose ``data:`` line is not JSON.
        """
        return cls("malformed_json", latency=latency)

    @classmethod
    def html(cls, status: int = 200, *, latency: float = 0.0) -> Reply:
        """An HTML page (what a misconfigured proxy or a wrong base URL returns)."""
        return cls("html", latency=latency, status_code=status)

    @classmethod
    def hang(cls) -> Reply:
        """Never answer: hold the connection until the client goes away or the server stops."""
        return cls("hang")

    @classmethod
    def drop_stream(
        cls, after_chunks: int = 2, *, content: str | None = None, latency: float = 0.0
    ) -> Reply:
        """Close the TCP connection in the middle of the answer.

        A streaming request gets ``after_chunks`` SSE chunks (in chat, the first one carries
        only the role), then the connection closes without ``[DONE]`` and without the final empty
        HTTP chunk, so clients see a truncated body. A non-streaming request gets the headers
        and half the JSON body, then the close.

        Args:
            after_chunks: How many SSE chunks to send before closing.
            content: The answer being cut off; ``None`` echoes the prompt.
            latency: Seconds before the first byte.
        """
        contents = None if content is None else (content,)
        return cls("drop_stream", content=contents, latency=latency, after_chunks=after_chunks)


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request received by :class:`FakeEndpoint`.

    Attributes:
        method: ``"POST"``, ``"GET"``...
        path: The path without the query string, e.g. ``"/v1/chat/completions"``.
        headers: Header names lower-cased; repeated headers joined with ``", "``.
        body: The parsed JSON body, or ``None`` when empty or not JSON.
        prompt_text: All message contents joined by newlines (chat), the prompt
            (completions) or the inputs (embeddings); ``""`` otherwise.
        received_at: ``time.monotonic()`` when the request was fully read.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    prompt_text: str
    received_at: float


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


class FakeEndpoint:
    """A scriptable OpenAI-compatible server on a background thread; see the module docstring.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`). Attributes may be
    changed while it runs: :attr:`default` is the reply when the script queue is empty and no
    responder is set (:meth:`Reply.echo` unless given).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "fake-model",
        default: Reply | None = None,
    ) -> None:
        """Create the server; it listens once started. ``port=0`` picks a free port."""
        self.host = host
        self.port = port
        self.model = model
        self.default = default or Reply.echo()
        self._lock = threading.Lock()  # the test thread and the server thread share these
        self._queue: deque[Reply] = deque()
        self._responder: Responder | None = None
        self._requests: list[RecordedRequest] = []
        self._count = 0
        self._ids = itertools.count(1)
        self._connections: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.embeddings_reply: Reply | None = None
        """When set, every ``/v1/embeddings`` request gets this reply (``status`` or ``raw``)."""

    @property
    def base_url(self) -> str:
        """The URL to give ``OpenAI(base_url=...)``, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self._thread is None:
            raise RuntimeError("FakeEndpoint is not running: use `with FakeEndpoint() as ep:`")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        """How many completion requests (chat and completions) were received."""
        return self._count

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        return len(self._queue)

    @property
    def connections(self) -> int:
        """How many client connections are open now (to check that clients don't leak)."""
        return len(self._connections)

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next completion requests, one per request, first in first out."""
        with self._lock:
            self._queue.extend(replies)

    def respond_with(self, responder: Responder | None) -> None:
        """Decide each reply with ``responder(request)`` when the script queue is empty.

        The function runs on the server's thread, so it must be quick: express delays with
        ``latency=``. Returning ``None`` falls back to :attr:`default`; raising answers 500.
        ``None`` removes the responder.
        """
        self._responder = responder

    def reset(self) -> None:
        """Forget the script queue, the responder, the recorded requests and the count, and
        set :attr:`default` back to echo."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._count = 0
            self._responder = None
            self.default = Reply.echo()

    def start(self) -> FakeEndpoint:
        """Start listening; returns once the port is bound (raises ``OSError`` if it can't)."""
        if self._thread is not None:
            raise RuntimeError("FakeEndpoint is already running")
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._run, args=(ready,), name="promptkit-fake-endpoint", daemon=True
        )
        thread.start()
        self.port = ready.result()
        self._thread = thread
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection, then end the server thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = self._loop = None

    def __enter__(self) -> FakeEndpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # this thread's own loop, never the caller's
        try:
            server = loop.run_until_complete(
                asyncio.start_server(self._serve_connection, self.host, self.port, backlog=1024)
            )
        except BaseException as exc:
            loop.close()
            ready.set_exception(exc)
            return
        self._loop = loop
        ready.set_result(server.sockets[0].getsockname()[1])
        try:
            loop.run_forever()
        finally:
            # Python 3.11's Server.close() leaves accepted connections open: cancel them too.
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(asyncio.sleep(0))  # let the transports close their sockets
            loop.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            keep_alive = True
            while keep_alive:
                keep_alive = await self._serve_one(reader, writer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request or mid-answer: nobody left to answer
        except asyncio.CancelledError:
            # The server is stopping. Python 3.11's start_server logs a traceback for a
            # cancelled connection task, so end it normally.
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; returns whether to keep the connection open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed the connection between requests
        except asyncio.LimitOverrunError:
            _send_error(writer, 431, "Request header too large.", False)
            return False
        try:
            method, target, headers, keep_alive = _parse_head(head)
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError(length)
        except ValueError:
            _send_error(writer, 400, "Malformed HTTP request.", False)
            return False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            _send_error(writer, 411, "Send the body with a Content-Length.", False)
            return False
        raw = await reader.readexactly(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = target.partition("?")[0]
        request = RecordedRequest(method, path, headers, body, _prompt_text(body), time.monotonic())
        is_completion = method == "POST" and path in (CHAT_PATH, COMPLETIONS_PATH)
        with self._lock:
            self._requests.append(request)
            self._count += is_completion

        if (is_completion or path == EMBEDDINGS_PATH) and not isinstance(body, dict):
            _send_error(writer, 400, "The body must be a JSON object.", keep_alive)
        elif is_completion:
            return await self._answer_completion(reader, writer, request, keep_alive)
        elif method == "POST" and path == EMBEDDINGS_PATH and self.embeddings_reply:
            reply = self.embeddings_reply
            if reply.kind == "raw":
                _send(writer, reply.status_code, str(reply.body).encode("utf-8", "surrogatepass"),
                      keep_alive, headers=dict(reply.headers))
            else:
                _send_error(writer, reply.status_code, reply.body if isinstance(reply.body, str)
                            else None, keep_alive, dict(reply.headers))
        elif method == "POST" and path == EMBEDDINGS_PATH:
            try:
                _send(writer, 200, self._embeddings(body), keep_alive)
            except (TypeError, ValueError) as exc:
                _send_error(writer, 400, f"Invalid embeddings request: {exc}", keep_alive)
        elif method == "GET" and path == "/v1/models":
            model = {"id": self.model, "object": "model", "created": 0, "owned_by": "promptkit"}
            _send(writer, 200, {"object": "list", "data": [model]}, keep_alive)
        else:
            _send_error(writer, 404, f"Unknown endpoint: {method} {path}", keep_alive)
        return keep_alive

    def _choose_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        responder = self._responder
        if responder is not None:
            try:
                reply = responder(request)
            except Exception as exc:  # report the test's bug to the client, keep serving
                return Reply.status(500, body=f"respond_with function raised {exc!r}")
            if isinstance(reply, Reply):
                return reply
            if reply is not None:
                problem = f"respond_with function returned {type(reply).__name__}, not a Reply"
                return Reply.status(500, body=problem)
        return self.default

    async def _answer_completion(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: RecordedRequest,
        keep_alive: bool,
    ) -> bool:
        reply = self._choose_reply(request)
        if reply.kind == "hang":
            # Reading (and discarding) is how we notice the client leaving: EOF ends the hang.
            while await reader.read(65536):
                pass
            return False
        if reply.latency:
            await asyncio.sleep(reply.latency)
        stream = bool(request.body.get("stream"))
        if reply.kind == "status":
            retry_after = (
                {} if reply.retry_after is None else {"retry-after": f"{reply.retry_after:g}"}
            )
            retry_after.update(reply.headers)
            if isinstance(reply.body, dict):
                _send(writer, reply.status_code, reply.body, keep_alive, headers=retry_after)
            else:
                _send_error(writer, reply.status_code, reply.body, keep_alive, retry_after)
        elif reply.kind == "html":
            _send(writer, reply.status_code, _HTML_PAGE, keep_alive, "text/html; charset=utf-8")
        elif reply.kind == "raw":
            _send(writer, reply.status_code, str(reply.body).encode("utf-8", "surrogatepass"),
                  keep_alive, headers=dict(reply.headers))
        elif reply.kind == "events":
            frames = [(json.dumps(e) if isinstance(e, dict) else e).encode("utf-8", "surrogatepass")
                      for e in reply.sse_events]
            return await _send_stream(writer, frames, reply, keep_alive)
        elif reply.kind == "malformed_json" and stream:
            return await _send_stream(writer, [_MALFORMED_JSON], reply, keep_alive)
        elif reply.kind == "malformed_json":
            _send(writer, 200, _MALFORMED_JSON, keep_alive)
        else:
            return await self._answer_content(writer, request, reply, stream, keep_alive)
        return keep_alive

    async def _answer_content(
        self,
        writer: asyncio.StreamWriter,
        request: RecordedRequest,
        reply: Reply,
        stream: bool,
        keep_alive: bool,
    ) -> bool:
        """Answer a text, echo or drop_stream reply, streamed or not."""
        body: dict[str, Any] = request.body
        n = body.get("n") or 1
        if not isinstance(n, int) or n < 1:
            _send_error(writer, 400, f"Invalid n: {n!r}", keep_alive)
            return keep_alive
        chat = request.path == CHAT_PATH
        contents = reply.content or (_echo_text(request),)
        texts = [contents[index % len(contents)] for index in range(n)]
        usage = _usage(request.prompt_text, texts, reply)
        base = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-fake{next(self._ids):06d}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
        }
        if stream:
            include_usage = (body.get("stream_options") or {}).get("include_usage")
            stream_usage = usage if include_usage else None
            if chat:
                events = _chat_chunks(base, texts, reply, stream_usage)
            else:
                events = _completion_chunks(base, texts, reply, stream_usage)
            frames = [json.dumps(event).encode() for event in events]
            return await _send_stream(writer, frames, reply, keep_alive)

        if chat:
            choices = [_chat_choice(index, text, reply) for index, text in enumerate(texts)]
            payload = {**base, "choices": choices, "system_fingerprint": None}
        else:
            choices = [
                _text_choice(index, text, reply.finish_reason) for index, text in enumerate(texts)
            ]
            payload = {**base, "choices": choices}
        if usage is not None:
            payload["usage"] = usage
        if reply.kind == "drop_stream":
            data = json.dumps(payload).encode()
            head = {"content-type": "application/json", "content-length": str(len(data))}
            writer.write(_head(200, head) + data[: len(data) // 2])
            return False
        _send(writer, 200, payload, keep_alive)
        return keep_alive

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
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
            "model": body.get("model") or self.model,
            "usage": usage,
        }


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str], bool]:
    """Parse the request line and headers; raises ValueError when malformed."""
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, version = request_line.split(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(version)
    headers: dict[str, str] = {}
    for line in filter(None, header_lines):
        name, separator, value = line.partition(":")
        if not separator:
            raise ValueError(line)
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    connection = headers.get("connection", "").lower()
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    return method, target, headers, keep_alive


def _head(status: int, headers: dict[str, str]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # a valid code Python does not name, e.g. 599
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes | dict[str, Any],
    keep_alive: bool,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    """Write a whole response with a Content-Length; a dict body is sent as JSON."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = {
        "content-type": content_type,
        "content-length": str(len(data)),
        "connection": "keep-alive" if keep_alive else "close",
        **(headers or {}),
    }
    writer.write(_head(status, head) + data)


def _send_error(
    writer: asyncio.StreamWriter,
    status: int,
    message: str | None,
    keep_alive: bool,
    headers: dict[str, str] | None = None,
) -> None:
    """Write an error with the body OpenAI uses, which the SDK reads into its exceptions."""
    if status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", None
    if message is None:
        message = f"Error {status} scripted by promptkit.testing"
    error = {"message": message, "type": kind, "param": None, "code": code}
    _send(writer, status, {"error": error}, keep_alive, headers=headers)


async def _send_stream(
    writer: asyncio.StreamWriter, events: list[bytes], reply: Reply, keep_alive: bool
) -> bool:
    """Send SSE events as a chunked body; returns whether the connection stays usable."""
    headers = {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "transfer-encoding": "chunked",
        "connection": "keep-alive" if keep_alive else "close",
    }
    dropping = reply.kind == "drop_stream"
    frames = [b"data: %s\n\n" % event for event in events]
    if dropping:
        frames = frames[: reply.after_chunks]
    elif reply.done:
        frames.append(b"data: [DONE]\n\n")
    # One write per burst: fewer syscalls, and no writes piling up on a lost connection.
    burst = [_head(200, headers)]
    for index, frame in enumerate(frames):
        if index and reply.chunk_delay:
            writer.write(b"".join(burst))
            burst.clear()
            await writer.drain()
            await asyncio.sleep(reply.chunk_delay)
        burst.append(b"%x\r\n%s\r\n" % (len(frame), frame))
    if not dropping:
        burst.append(b"0\r\n\r\n")
    # When dropping, the caller closes the socket without the final zero-length chunk: the
    # client sees a body cut short, as when a server or proxy dies mid-stream.
    writer.write(b"".join(burst))
    return keep_alive and not dropping


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content parts: keep the text ones, skip images and audio
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return "\n".join(text for text in texts if isinstance(text, str))
    return content if isinstance(content, str) else ""


def _prompt_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("messages"), list):
        return "\n".join(_message_text(message) for message in body["messages"])
    prompt = body.get("prompt", body.get("input", ""))
    return "\n".join(str(item) for item in prompt) if isinstance(prompt, list) else str(prompt)


def _echo_text(request: RecordedRequest) -> str:
    messages = request.body.get("messages")
    if not isinstance(messages, list):
        return request.prompt_text
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    candidates = users or messages
    return _message_text(candidates[-1]) if candidates else ""


def _usage(prompt_text: str, texts: list[str], reply: Reply) -> dict[str, int] | None:
    if reply.usage is False:
        return None
    reasoning_words = len((reply.reasoning_content or "").split())
    usage = {
        "prompt_tokens": len(prompt_text.split()),
        "completion_tokens": sum(len(text.split()) + reasoning_words for text in texts),
    }
    usage.update(reply.usage or {})
    if not reply.usage or "total_tokens" not in reply.usage:
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


def _pieces(text: str) -> list[str]:
    """Split text into word-sized stream deltas that concatenate back to exactly ``text``."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", text) if piece]


def _chat_choice(index: int, text: str, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if reply.reasoning_content is not None:
        message["reasoning_content"] = reply.reasoning_content
    return {
        "index": index,
        "message": message,
        "logprobs": None,
        "finish_reason": reply.finish_reason,
    }


def _text_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}


def _chat_chunks(
    base: dict[str, Any], texts: list[str], reply: Reply, usage: dict[str, int] | None
) -> list[dict[str, Any]]:
    """The chunks OpenAI streams; ``usage`` is given when ``include_usage`` was asked."""
    header = {**base, "object": "chat.completion.chunk", "system_fingerprint": None}
    # With include_usage OpenAI sends "usage": null on every chunk, then a usage-only chunk.
    usage_field = {"usage": None} if usage else {}

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**header, "choices": [choice], **usage_field}

    events = []
    for index, text in enumerate(texts):
        events.append(chunk(index, {"role": "assistant", "content": ""}))
        reasoning = _pieces(reply.reasoning_content or "")
        events.extend(chunk(index, {"reasoning_content": piece}) for piece in reasoning)
        events.extend(chunk(index, {"content": piece}) for piece in _pieces(text))
        events.append(chunk(index, {}, reply.finish_reason))
    if usage:
        events.append({**header, "choices": [], "usage": usage})
    return events


def _completion_chunks(
    base: dict[str, Any], texts: list[str], reply: Reply, usage: dict[str, int] | None
) -> list[dict[str, Any]]:
    """The legacy completions chunks; ``usage`` is given when ``include_usage`` was asked."""
    usage_field = {"usage": None} if usage else {}
    events = []
    for index, text in enumerate(texts):
        for piece in [*_pieces(text), ""]:  # the empty last piece carries the finish reason
            finish = None if piece else reply.finish_reason
            events.append({**base, "choices": [_text_choice(index, piece, finish)], **usage_field})
    if usage:
        events.append({**base, "choices": [], "usage": usage})
    return events


def main(argv: list[str] | None = None) -> int:
    """Serve a :class:`FakeEndpoint` until SIGINT or SIGTERM (``python -m promptkit.testing``)."""
    parser = argparse.ArgumentParser(
        prog="python -m promptkit.testing",
        description="Serve a fake OpenAI-compatible API; prints its base URL, then serves "
        "until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--reply", help="answer every completion with this text (default: echo)")
    parser.add_argument("--model", default="fake-model", help="the model /v1/models lists")
    args = parser.parse_args(argv)

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    if args.reply is None:
        default = Reply.echo(latency=args.latency)
    else:
        default = Reply.text(args.reply, latency=args.latency)
    with FakeEndpoint(host=args.host, port=args.port, model=args.model, default=default) as ep:
        print(ep.base_url, flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
