"""A small HTTP/1.1 server on ``asyncio.start_server`` whose event loop runs in a daemon thread.

It owns the protocol and nothing else: it reads requests (keep-alive, ``Content-Length``
bodies; a chunked request body is refused with 411), hands each one to a handler coroutine
together with a :class:`Response` to answer through (a whole body, a chunked stream of
server-sent events, a body cut short, or no answer until the client leaves), keeps track of
open connections, and starts and stops cleanly. What the answers mean is the handler's
business: :class:`~promptkit.testing.fake.FakeEndpoint` is the OpenAI-compatible one.

The loop runs in its own thread, so synchronous code and other event loops can both call the
server. It costs one task per connection: no thread and no blocking sleep per request, so it
keeps up with benchmarks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

__all__ = ["ErrorBody", "HTTPRequest", "HTTPServer", "Handler", "Response", "plain_error_body"]

ErrorBody = Callable[[int, str], tuple[str, bytes]]
"""Renders an error: ``(status, message) -> (content type, body)``."""
Handler = Callable[["HTTPRequest", "Response"], Awaitable[None]]
"""Answers one request through its :class:`Response`; runs on the server's event loop."""


def plain_error_body(status: int, message: str) -> tuple[str, bytes]:
    """The default :data:`ErrorBody`: the message as plain text."""
    return "text/plain; charset=utf-8", message.encode()


@dataclass(frozen=True)
class HTTPRequest:
    """One request as read from the socket.

    Attributes:
        method: ``"POST"``, ``"GET"``...
        target: The request target as sent, query string included.
        headers: Header names lower-cased; repeated headers joined with ``", "``.
        body: The raw body (``b""`` when there is none).
        keep_alive: Whether the client asked to keep the connection open afterwards.
    """

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]


class Response:
    """How a handler answers one request: call exactly one of the ``send``/``wait`` methods.

    :attr:`keep_alive` says whether the connection serves another request afterwards; it
    starts as the client asked, and the methods that break the connection set it to False.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
        error_body: ErrorBody = plain_error_body,
    ) -> None:
        self.keep_alive = keep_alive
        self._reader = reader
        self._writer = writer
        self._error_body = error_body

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Write a whole response with a Content-Length; ``headers`` may override the usual ones."""
        head = {
            "content-type": content_type,
            "content-length": str(len(body)),
            "connection": "keep-alive" if self.keep_alive else "close",
            **(headers or {}),
        }
        self._writer.write(status_line_and_headers(status, head) + body)

    def send_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        """Write an error response, its body rendered by the server's :data:`ErrorBody`."""
        content_type, body = self._error_body(status, message)
        self.send(status, body, content_type, headers)

    async def send_events(
        self, events: Sequence[bytes], *, chunk_delay: float = 0.0, cut_after: int | None = None
    ) -> None:
        """Send server-sent events (``data: EVENT``) as a chunked 200 response.

        Args:
            events: The ``data:`` payloads, in order.
            chunk_delay: Seconds between events (the first goes out with the headers).
            cut_after: Send only this many events, then close the connection without the
                final zero-length chunk: the client sees a body cut short, as when a server
                or proxy dies mid-stream.
        """
        headers = {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "transfer-encoding": "chunked",
            "connection": "keep-alive" if self.keep_alive else "close",
        }
        frames = [b"data: %s\n\n" % event for event in events]
        if cut_after is not None:
            frames = frames[:cut_after]
        # One write per burst: fewer syscalls, and no writes piling up on a lost connection.
        burst = [status_line_and_headers(200, headers)]
        for index, frame in enumerate(frames):
            if index and chunk_delay:
                self._writer.write(b"".join(burst))
                burst.clear()
                await self._writer.drain()
                await asyncio.sleep(chunk_delay)
            burst.append(b"%x\r\n%s\r\n" % (len(frame), frame))
        if cut_after is None:
            burst.append(b"0\r\n\r\n")
        else:
            self.keep_alive = False
        self._writer.write(b"".join(burst))

    def send_truncated(self, status: int, body: bytes, content_type: str) -> None:
        """Announce ``body`` with its full Content-Length, send half of it, then close."""
        head = {"content-type": content_type, "content-length": str(len(body))}
        self._writer.write(status_line_and_headers(status, head) + body[: len(body) // 2])
        self.keep_alive = False

    async def wait_for_close(self) -> None:
        """Never answer: read and discard until the client closes the connection."""
        # Reading is how we notice the client leaving: EOF ends the wait.
        while await self._reader.read(65536):
            pass
        self.keep_alive = False


def status_line_and_headers(status: int, headers: dict[str, str]) -> bytes:
    """The head of a response: status line, headers in the given order, blank line."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # a valid code Python does not name, e.g. 599
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def parse_head(head: bytes) -> tuple[str, str, dict[str, str], bool]:
    """Parse the request line and headers into method, target, headers and keep-alive.

    Raises:
        ValueError: The request line or a header line is malformed, or it is not HTTP/1.x.
    """
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


class HTTPServer:
    """Serves ``handler`` on ``host:port`` from a daemon thread, until :meth:`stop`.

    Args:
        handler: The coroutine answering each request.
        host: The address to listen on.
        port: The port; 0 picks a free one (see the value :meth:`start` returns).
        error_body: How the server renders the errors it answers itself (a malformed request,
            headers too large, a chunked request body), and :meth:`Response.send_error`.
        thread_name: The name of the server thread, for debuggers and thread dumps.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        error_body: ErrorBody = plain_error_body,
        thread_name: str = "promptkit-http-server",
    ) -> None:
        self.host = host
        self.port = port
        self._handler = handler
        self._error_body = error_body
        self._thread_name = thread_name
        self._connections: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the server has been started and not stopped."""
        return self._thread is not None

    @property
    def connections(self) -> int:
        """How many client connections are open now."""
        return len(self._connections)

    def start(self) -> int:
        """Start listening; returns the port once bound (raises ``OSError`` if it can't)."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._run, args=(ready,), name=self._thread_name, daemon=True
        )
        thread.start()
        self.port = ready.result()
        self._thread = thread
        return self.port

    def stop(self) -> None:
        """Close the listening socket and every connection, then end the server thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = self._loop = None

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
        refuse = Response(reader, writer, False, self._error_body)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed the connection between requests
        except asyncio.LimitOverrunError:
            refuse.send_error(431, "Request header too large.")
            return False
        try:
            method, target, headers, keep_alive = parse_head(head)
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError(length)
        except ValueError:
            refuse.send_error(400, "Malformed HTTP request.")
            return False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            refuse.send_error(411, "Send the body with a Content-Length.")
            return False
        body = await reader.readexactly(length) if length else b""
        response = Response(reader, writer, keep_alive, self._error_body)
        await self._handler(HTTPRequest(method, target, headers, body, keep_alive), response)
        return response.keep_alive
