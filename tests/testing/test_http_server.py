"""Tests for promptkit.testing.http_server: the generic HTTP/1.1 server, over real sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from promptkit.testing.http_server import HTTPRequest, HTTPServer, Response


class Recorder:
    """A handler that records each request and answers as its path says."""

    def __init__(self) -> None:
        self.requests: list[HTTPRequest] = []
        self.closed = threading.Event()

    async def __call__(self, request: HTTPRequest, response: Response) -> None:
        self.requests.append(request)
        if request.path == "/events":
            await response.send_events([b"one", b"two", b"three"], chunk_delay=0.05)
        elif request.path == "/cut":
            await response.send_events([b"one", b"two", b"three"], cut_after=2)
        elif request.path == "/truncated":
            response.send_truncated(200, b"0123456789", "text/plain")
        elif request.path == "/hang":
            await response.wait_for_close()
            self.closed.set()
        elif request.path == "/error":
            response.send_error(418, "short and stout", {"x-extra": "1"})
        else:
            response.send(200, b"got " + request.body, "text/plain")


@pytest.fixture
def handler() -> Recorder:
    return Recorder()


@pytest.fixture
def server(handler: Recorder) -> Iterator[HTTPServer]:
    server = HTTPServer(handler)
    server.start()
    yield server
    server.stop()


def exchange(server: HTTPServer, data: bytes, timeout: float = 0.5) -> bytes:
    """Send raw bytes; return all the server sent until it closed or went quiet."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(data)
        sock.settimeout(timeout)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received + b"<open>"
    return received + b"<closed>"


def wait_until(condition, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_keep_alive_serves_several_requests_on_one_connection(
    server: HTTPServer, handler: Recorder
) -> None:
    first = b"POST /a?x=1 HTTP/1.1\r\nContent-Length: 5\r\nX-Tag: 1\r\nX-Tag: 2\r\n\r\nhello"
    second = b"GET /b HTTP/1.1\r\n\r\n"
    received = exchange(server, first + second)
    assert received.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert received.endswith(b"got <open>")  # the client did not ask to close
    assert b"content-type: text/plain\r\ncontent-length: 9\r\nconnection: keep-alive" in received
    assert b"\r\n\r\ngot hello" in received
    request = handler.requests[0]
    assert (request.method, request.target, request.path) == ("POST", "/a?x=1", "/a")
    assert request.headers["x-tag"] == "1, 2"
    assert (request.body, request.keep_alive) == (b"hello", True)
    assert handler.requests[1].body == b""


def test_connection_close_and_http_1_0_end_the_connection(server: HTTPServer) -> None:
    assert exchange(server, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").endswith(b"<closed>")
    assert exchange(server, b"GET / HTTP/1.0\r\n\r\n").endswith(b"<closed>")
    kept = exchange(server, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert kept.endswith(b"<open>")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"NONSENSE\r\n\r\n", b"400 Bad Request"),
        (b"GET / HTTP/2.0\r\n\r\n", b"400 Bad Request"),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", b"400 Bad Request"),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400 Bad Request"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"411 Length Required"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
         b"431 Request Header Fields Too Large"),
    ],
)
def test_bad_requests_are_refused_with_the_error_body_and_closed(
    handler: Recorder, data: bytes, status: bytes
) -> None:
    def error_body(code: int, message: str) -> tuple[str, bytes]:
        return "text/x-error", f"{code}: {message}".encode()

    server = HTTPServer(handler, error_body=error_body)
    server.start()
    try:
        received = exchange(server, data)
    finally:
        server.stop()
    assert received.startswith(b"HTTP/1.1 " + status + b"\r\ncontent-type: text/x-error\r\n")
    assert b"connection: close\r\n" in received
    assert received.endswith(b"<closed>")
    assert handler.requests == []


def test_send_error_uses_the_default_plain_text_body(server: HTTPServer) -> None:
    received = exchange(server, b"GET /error HTTP/1.1\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 418 I'm a Teapot\r\n"
                               b"content-type: text/plain; charset=utf-8\r\n")
    assert b"x-extra: 1\r\n\r\nshort and stout<open>" in received


def test_events_stream_as_chunked_server_sent_events_paced_by_chunk_delay(
    server: HTTPServer,
) -> None:
    url = f"http://127.0.0.1:{server.port}/events"
    started = time.monotonic()
    with httpx.stream("GET", url) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["transfer-encoding"] == "chunked"
        lines = [(line, time.monotonic() - started) for line in response.iter_lines() if line]
    assert [line for line, _ in lines] == ["data: one", "data: two", "data: three"]
    assert lines[-1][1] >= 2 * 0.05  # two delays before the third event left the server


def test_cut_stream_and_truncated_body_break_the_connection(server: HTTPServer) -> None:
    cut = exchange(server, b"GET /cut HTTP/1.1\r\n\r\n")
    assert cut.endswith(b"\r\n\r\nb\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n<closed>")  # no 0\r\n
    base = f"http://127.0.0.1:{server.port}"
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(base + "/cut")
    truncated = exchange(server, b"GET /truncated HTTP/1.1\r\n\r\n")
    assert truncated.endswith(b"content-length: 10\r\n\r\n01234<closed>")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(base + "/truncated")


def test_wait_for_close_ends_when_the_client_leaves(
    server: HTTPServer, handler: Recorder
) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"GET /hang HTTP/1.1\r\n\r\n")
    assert wait_until(lambda: server.connections == 1)
    assert not handler.closed.wait(0.2)
    sock.close()
    assert handler.closed.wait(2)
    assert wait_until(lambda: server.connections == 0)


async def test_stop_closes_the_port_and_open_connections(handler: Recorder) -> None:
    server = HTTPServer(handler, thread_name="test-server")
    port = server.start()
    assert port == server.port != 0 and server.running
    assert any(thread.name == "test-server" for thread in threading.enumerate())
    with pytest.raises(RuntimeError, match="already running"):
        server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /hang HTTP/1.1\r\n\r\n")
    await writer.drain()
    await asyncio.to_thread(wait_until, lambda: server.connections == 1)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1
    assert await reader.read() == b""  # the server closed the hung connection
    writer.close()
    assert not server.running and server.connections == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    server.stop()  # stopping twice is harmless


def test_a_taken_port_raises_on_start(server: HTTPServer, handler: Recorder) -> None:
    with pytest.raises(OSError):
        HTTPServer(handler, port=server.port).start()
