"""The command line of ``python -m promptkit.testing``: serve a fake OpenAI-compatible API."""

from __future__ import annotations

import argparse
import signal
import threading

from .fake import FakeEndpoint
from .reply import Reply

__all__ = ["main"]


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
