"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests.

promptkit's own tests and benchmarks, and users testing their apps, point the real ``openai``
SDK (or any HTTP client) at :class:`FakeEndpoint` instead of monkeypatching it. Each
completion request is answered by a :class:`Reply`: normal text, JSON text, tool calls, an
echo of the prompt, an HTTP error with ``Retry-After``, malformed JSON, an HTML page, a hang
or a dropped stream, each optionally after some latency. Every request is recorded for
assertions.

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
``GET /v1/models``, OpenAI's Files and Batch APIs (below); anything else is a 404 with an
OpenAI-style error body. Embeddings are
:func:`fake_embedding` vectors: deterministic, and closer for similar texts. A completion
request takes its reply from the scripted FIFO queue (:meth:`FakeEndpoint.script`), else from
the responder function (:meth:`FakeEndpoint.respond_with`), else :attr:`FakeEndpoint.default`.
A responder gets the :class:`RecordedRequest` (its JSON ``body`` as a dict, ``prompt_text``,
``path``, ``headers``, and the conversation so far: ``messages``, ``last_user_message``,
``tool_results``, ``turn``) and returns a ``str`` (the answer text), a ``dict`` (the
response body as given, or ``{"tool_calls": [...]}`` for :meth:`Reply.tool_calls`; see
:func:`as_reply`), a :class:`Reply` or ``None`` (the default); ``python -m promptkit.testing
--responder module:function`` takes the same function.
Each responder call runs in a thread of its own, so a responder may block (sleep, wait on an
event, call a real service) without holding up other requests; an ``async def`` responder
is run there with ``asyncio.run`` (:func:`call_responder`). A responder that raises, or
answers what cannot be sent, gets its request a 500 saying why, and
``on_responder_error`` hears of it (the command line prints it).
Embeddings and models requests never consume the queue; embeddings answer normally unless
:attr:`FakeEndpoint.embeddings_reply` is set (to script an embeddings outage). For answers no
well-behaved server sends, :meth:`Reply.raw` sends any body and :meth:`Reply.events` any
stream of server-sent events, with or without ``[DONE]``.

With pytest, promptkit's plugin (installed with promptkit, no conftest needed) provides the
``fake_endpoint`` fixture: one :class:`FakeEndpoint` started for the whole session and
:meth:`~FakeEndpoint.reset` before each test, so every test starts with an empty script, no
responder, the echo default, no ``embeddings_reply``, no recorded requests, a count of 0 and
no files nor batches::

    def test_retries_a_rate_limit(fake_endpoint):
        fake_endpoint.script(Reply.status(429, retry_after=0), Reply.text("Paris"))
        assert my_app.ask("Capital of France?", base_url=fake_endpoint.base_url) == "Paris"
        assert fake_endpoint.count == 2

Batches: ``client.files.create(file=("cases.jsonl", data), purpose="batch")``, then
``client.batches.create(input_file_id=..., endpoint="/v1/chat/completions",
completion_window="24h")``, ``retrieve``, ``cancel``, ``list`` and ``client.files.content``
/ ``retrieve`` / ``delete``, in OpenAI's shapes (:mod:`~promptkit.testing.batches`). Each
line is answered as the same request to its ``url`` would be (script, responder, default; the
responder's request holds the line's ``body`` and ``url``) into the output file, or the error
file when that answer is an error; lines come out shuffled. A batch ends
:attr:`~FakeEndpoint.batch_delay` seconds after its creation (0: at the first request about
it), ``in_progress`` then ``finalizing`` on the way, brought forward only by requests about
it; more than ``batch_max_lines`` lines or ``batch_max_bytes`` bytes fail it (OpenAI's 50,000
and 200 MB unless set). :meth:`~FakeEndpoint.expire_next_batch` and
:meth:`~FakeEndpoint.fail_lines` script the rest; :attr:`~FakeEndpoint.batches`,
:attr:`~FakeEndpoint.files` and :attr:`~FakeEndpoint.batch_requests` tell what happened (batch
lines are never in :attr:`~FakeEndpoint.requests` nor :attr:`~FakeEndpoint.count`, which
hold HTTP requests: the upload, the batch, the polls)::

    def test_sends_one_batch(fake_endpoint):
        fake_endpoint.fail_lines({"case-3"})  # by custom_id: into the error file, as a 500
        report = my_app.run_as_batch(cases, base_url=fake_endpoint.base_url)
        assert len(fake_endpoint.batches) == 1 and fake_endpoint.count == 0
        assert len(fake_endpoint.batch_requests) == len(cases)

From a shell: ``python -m promptkit.testing --port 8000 --latency 0.1 [--reply TEXT]
[--script replies.jsonl] [--responder module:function]`` (see :mod:`promptkit.testing.cli`).

The HTTP side is :mod:`promptkit.testing.http_server` (HTTP/1.1 on ``asyncio.start_server``
in a daemon thread); the bodies and chunks come from :mod:`promptkit.testing.payloads`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

from . import payloads
from .batch_files import MAX_BATCH_BYTES, MAX_BATCH_LINES, FileRecord
from .batches import BatchAPI, BatchRecord, Outcome, reply_outcome
from .http_server import HTTPRequest, HTTPServer, Response
from .payloads import fake_embedding
from .reply import Reply, json_text
from .responders import (
    RecordedRequest,
    Responder,
    ResponderErrorHook,
    UnsendableAnswer,
    as_reply,
    call_responder,
    describe_exception,
    in_new_thread,
)

__all__ = [
    "BatchRecord", "FakeEndpoint", "FileRecord", "RecordedRequest", "Reply", "Responder",
    "ResponderErrorHook", "UnsendableAnswer", "as_reply", "call_responder", "fake_embedding",
]

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MODELS_PATH = "/v1/models"


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
        on_responder_error: ResponderErrorHook | None = None,
    ) -> None:
        """Create the server; it listens once started. ``port=0`` picks a free port.

        ``on_responder_error(request, message)`` is called each time the responder raises or
        answers what cannot be sent, with the message of the 500 the request gets, before
        it is sent; in the thread that called the responder, so it may block. What it
        raises is shown as an uncaught exception (``sys.excepthook``), and the 500 is sent
        all the same. ``python -m promptkit.testing`` prints a line on stderr.
        """
        self.host = host
        self.port = port
        self.model = model
        self.default = default or Reply.echo()
        self.on_responder_error = on_responder_error
        self._lock = threading.Lock()  # the test thread and the server thread share these
        self._queue: deque[Reply] = deque()
        self._responder: Responder | None = None
        self._requests: list[RecordedRequest] = []
        self._count = 0
        self._ids = itertools.count(1)
        self._server: HTTPServer | None = None
        self.embeddings_reply: Reply | None = None
        """When set, every ``/v1/embeddings`` request gets this reply (``status`` or ``raw``)."""
        self.batch_delay = 0.0
        """Seconds from a batch's creation to its end (read as each batch is created)."""
        self.batch_max_lines = MAX_BATCH_LINES
        """More lines than this fail a batch (``too_many_tasks``), as at OpenAI (50,000)."""
        self.batch_max_bytes = MAX_BATCH_BYTES
        """A larger input file fails a batch (``file_too_large``), as at OpenAI (200 MB)."""
        self._batch_api = BatchAPI(self, self._answer_batch_line)

    @property
    def base_url(self) -> str:
        """The URL to give ``OpenAI(base_url=...)``, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self._server is None:
            raise RuntimeError("FakeEndpoint is not running: use `with FakeEndpoint() as ep:`")
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"http://{host}:{self.port}/v1"

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
        return 0 if self._server is None else self._server.connections

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next completion requests, one per request, first in first out."""
        with self._lock:
            self._queue.extend(replies)

    def respond_with(self, responder: Responder | None) -> None:
        """Decide each reply with ``responder(request)`` when the script queue is empty.

        The function gets the :class:`RecordedRequest` and returns a ``str`` (the answer
        text), a ``dict`` (the response body, sent as given, or ``{"tool_calls": [...]}``), a
        :class:`Reply`, or ``None`` for :attr:`default` (exactly: :func:`as_reply`); anything
        else, or raising anything (``SystemExit`` too), answers 500 with a message saying
        why (also given to ``on_responder_error``), and serving goes on. The request's
        ``messages``, ``last_user_message``, ``tool_results`` and ``turn`` tell where the
        conversation stands.

        Each call runs in a new daemon thread: the function may block, holding up only its own
        request, and concurrent requests call it concurrently (so guard any state it keeps
        with a lock). An ``async def`` function is run to its end in that thread with
        ``asyncio.run`` (:func:`call_responder`). ``None`` removes the responder.
        """
        self._responder = responder

    @property
    def batches(self) -> list[BatchRecord]:
        """Every batch created, oldest first, as last brought up to date (a request about a
        batch does it): ``id``, ``status``, ``lines`` (the input lines, parsed),
        ``requests``, ``total``/``completed``/``failed``, ``output_file_id``..."""
        return self._batch_api.batches

    @property
    def files(self) -> list[FileRecord]:
        """Every file uploaded or written by a batch, oldest first (deleted ones marked)."""
        return self._batch_api.store.files

    @property
    def batch_requests(self) -> list[RecordedRequest]:
        """A request per batch line answered so far (batches oldest first, lines in the order
        answered); built on each access. Never in :attr:`requests` nor :attr:`count`."""
        return [request for batch in self.batches for request in batch.requests]

    def expire_next_batch(self, answered: int | float = 0.5) -> None:
        """Make the next batch created end ``expired`` after answering ``answered`` of its lines
        (an int: that many; a float from 0 to 1: that share, rounded down); the rest go to
        its error file as ``batch_expired``. It expires :attr:`batch_delay` after creation."""
        self._batch_api.expire_next(answered)

    def fail_lines(self, which: Callable[[str], bool] | Collection[str] | str | None, *,
                   status: int = 500, message: str | None = None) -> None:
        """Fail the batch lines whose ``custom_id`` ``which`` picks (a predicate, ids, one id)
        with ``status`` and OpenAI's error body, into the error file, without asking the
        script or responder; until :meth:`reset` or ``fail_lines(None)``."""
        self._batch_api.fail_lines(which, status, message)

    def reset(self) -> None:
        """Forget the script queue, the responder, :attr:`embeddings_reply`, the recorded
        requests and the count, and set :attr:`default` back to echo; forget every file and
        batch and their scripting (:attr:`batch_delay` back to 0, the limits OpenAI's)."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._count = 0
            self._responder = None
            self.default = Reply.echo()
            self.embeddings_reply = None
            self.batch_delay = 0.0
            self.batch_max_lines, self.batch_max_bytes = MAX_BATCH_LINES, MAX_BATCH_BYTES
        self._batch_api.reset()

    def start(self) -> FakeEndpoint:
        """Start listening; returns once the port is bound (raises ``OSError`` if it can't)."""
        if self._server is not None:
            raise RuntimeError("FakeEndpoint is already running")
        server = HTTPServer(self._handle, host=self.host, port=self.port,
                            error_body=payloads.error_body,
                            thread_name="promptkit-fake-endpoint")
        self.port = server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection, then end the server thread."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeEndpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _handle(self, http: HTTPRequest, response: Response) -> None:
        """Record one request, then route it: completions, embeddings, models or 404."""
        try:
            body = json.loads(http.body) if http.body else None
        except ValueError:
            body = None
        method, path = http.method, http.path
        request = RecordedRequest(method, path, http.headers, body, payloads.prompt_text(body),
                                  time.monotonic())
        is_completion = method == "POST" and path in (CHAT_PATH, COMPLETIONS_PATH)
        answerable = is_completion and isinstance(body, dict)
        with self._lock:
            self._requests.append(request)
            self._count += is_completion
            # Taken as the request is counted: a reply scripted once a test sees the count go
            # up is for a later request, even while this one waits for its responder.
            scripted = self._queue.popleft() if answerable and self._queue else None

        if path.split("/")[1:3] in (["v1", "files"], ["v1", "batches"]):
            await self._batch_api.handle(http, response)
        elif (is_completion or path == EMBEDDINGS_PATH) and not isinstance(body, dict):
            response.send_error(400, "The body must be a JSON object.")
        elif is_completion:
            reply = scripted if scripted is not None else await self._unscripted_reply(request)
            await self._answer_completion(request, response, reply)
        elif method == "POST" and path == EMBEDDINGS_PATH:
            self._answer_embeddings(request.body, response)
        elif method == "GET" and path == MODELS_PATH:
            model = {"id": self.model, "object": "model", "created": 0, "owned_by": "promptkit"}
            response.send(200, json.dumps({"object": "list", "data": [model]}).encode())
        else:
            response.send_error(404, f"Unknown endpoint: {method} {path}")

    def _answer_embeddings(self, body: dict[str, Any], response: Response) -> None:
        reply = self.embeddings_reply
        if reply is not None and reply.kind == "raw":
            response.send(reply.status_code, str(reply.body).encode("utf-8", "surrogatepass"),
                          headers=dict(reply.headers))
        elif reply is not None:
            message = reply.body if isinstance(reply.body, str) else None
            message = payloads.scripted_message(reply.status_code, message)
            response.send_error(reply.status_code, message, dict(reply.headers))
        else:
            try:
                payload = payloads.embeddings_payload(body, self.model)
            except (TypeError, ValueError) as exc:
                response.send_error(400, f"Invalid embeddings request: {exc}")
            else:
                response.send(200, json.dumps(payload).encode())

    async def _unscripted_reply(self, request: RecordedRequest) -> Reply:
        """The responder's reply (called in a thread of its own: it may block), else the default."""
        responder = self._responder
        if responder is not None:
            reply = await in_new_thread(lambda: self._responder_reply(responder, request))
            if reply is not None:
                return reply
        return self.default

    def _responder_reply(self, responder: Responder, request: RecordedRequest) -> Reply | None:
        """What ``responder`` answers to ``request`` (``None``: the default); never raises, so
        that a bug in the test's or app's function reaches the client as a 500 saying why."""
        try:
            return as_reply(call_responder(responder, request), request)
        except UnsendableAnswer as exc:
            problem = str(exc)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the endpoint goes on
            problem = f"the responder raised {describe_exception(exc)}"
        report = self.on_responder_error
        if report is not None:
            try:
                report(request, problem)
            except BaseException:  # nobody to raise it to; the client still gets its 500
                sys.excepthook(*sys.exc_info())
        return Reply.status(500, body=problem)

    async def _answer_completion(
        self, request: RecordedRequest, response: Response, reply: Reply
    ) -> None:
        """Answer a chat or completions request with its reply."""
        if reply.kind == "hang":
            await response.wait_for_close()
            return
        if reply.latency:
            await asyncio.sleep(reply.latency)
        stream = bool(request.body.get("stream"))
        if reply.kind == "status":
            headers = {} if reply.retry_after is None else {"retry-after": f"{reply.retry_after:g}"}
            headers.update(reply.headers)
            if isinstance(reply.body, dict):
                response.send(reply.status_code, json_text(reply.body).encode(), headers=headers)
            else:
                message = payloads.scripted_message(reply.status_code, reply.body)
                response.send_error(reply.status_code, message, headers)
        elif reply.kind == "html":
            response.send(reply.status_code, payloads.HTML_PAGE, "text/html; charset=utf-8")
        elif reply.kind == "raw":
            response.send(reply.status_code, str(reply.body).encode("utf-8", "surrogatepass"),
                          headers=dict(reply.headers))
        elif reply.kind == "events":
            events = [(json_text(e) if isinstance(e, dict) else e).encode("utf-8", "surrogatepass")
                      for e in reply.sse_events]
            await _send_stream(response, events, reply)
        elif reply.kind == "malformed_json" and stream:
            await _send_stream(response, [payloads.MALFORMED_JSON], reply)
        elif reply.kind == "malformed_json":
            response.send(200, payloads.MALFORMED_JSON)
        else:
            await self._answer_content(request, response, reply, stream)

    def _answer_batch_line(self, request: RecordedRequest) -> Outcome:
        """A batch line's answer, as its request would get it: scripted, the responder's (called
        in this thread) or the default; see :func:`~promptkit.testing.batches.reply_outcome`."""
        with self._lock:
            reply = self._queue.popleft() if self._queue else None
        responder = self._responder
        if reply is None and responder is not None:
            reply = self._responder_reply(responder, request)
        return reply_outcome(reply or self.default,
                             lambda whole: self._whole_completion(request, whole))

    def _whole_completion(self, request: RecordedRequest, reply: Reply) -> Outcome:
        completion = self._completion(request, reply)
        if isinstance(completion, str):
            return 400, payloads.error_payload(400, completion)
        reply, base, texts, counts = completion
        chat = request.path == CHAT_PATH
        return 200, payloads.completion_payload(base, texts, reply, counts, chat)

    def _completion(
        self, request: RecordedRequest, reply: Reply
    ) -> tuple[Reply, dict[str, Any], list[str], dict[str, int] | None] | str:
        """A text, tool_calls, echo or drop_stream answer to ``request``: the reply (its calls
        numbered), the payload's first keys, the texts and the usage; or why it is a 400."""
        body: dict[str, Any] = request.body
        n = body.get("n") or 1
        if not isinstance(n, int) or n < 1:
            return f"Invalid n: {n!r}"
        chat = request.path == CHAT_PATH
        if reply.kind == "tool_calls" and not chat:
            return ("A tool-call reply answers chat completions only "
                    f"(POST {CHAT_PATH}), not {request.path}.")
        if reply.kind == "tool_calls":
            reply = payloads.number_tool_calls(reply, request.messages)
            contents = reply.content or ("",)
        else:
            contents = reply.content or (payloads.echo_text(body, request.prompt_text),)
        texts = [contents[index % len(contents)] for index in range(n)]
        counts = payloads.usage(request.prompt_text, texts, reply)
        base = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-fake{next(self._ids):06d}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
        }
        return reply, base, texts, counts

    async def _answer_content(
        self, request: RecordedRequest, response: Response, reply: Reply, stream: bool
    ) -> None:
        """Answer a text, tool_calls, echo or drop_stream reply, streamed or not."""
        completion = self._completion(request, reply)
        if isinstance(completion, str):
            response.send_error(400, completion)
            return
        reply, base, texts, counts = completion
        chat = request.path == CHAT_PATH
        if stream:
            include_usage = (request.body.get("stream_options") or {}).get("include_usage")
            stream_counts = counts if include_usage else None
            chunks = payloads.chat_chunks if chat else payloads.completion_chunks
            events = [json.dumps(event).encode()
                      for event in chunks(base, texts, reply, stream_counts)]
            await _send_stream(response, events, reply)
            return
        payload = json.dumps(payloads.completion_payload(base, texts, reply, counts, chat)).encode()
        if reply.kind == "drop_stream":
            response.send_truncated(200, payload, "application/json")
        else:
            response.send(200, payload)


async def _send_stream(response: Response, events: list[bytes], reply: Reply) -> None:
    """Stream ``events`` as OpenAI does: then ``data: [DONE]``, unless the reply says not to."""
    if reply.kind == "drop_stream":
        await response.send_events(events, chunk_delay=reply.chunk_delay,
                                   cut_after=reply.after_chunks)
        return
    if reply.done:
        events = [*events, b"[DONE]"]
    await response.send_events(events, chunk_delay=reply.chunk_delay)
