"""The command line of ``python -m promptkit.testing``: serve a fake OpenAI-compatible API.

It scripts the endpoint the two ways Python does: ``--script FILE.jsonl`` queues replies as
:meth:`FakeEndpoint.script` does (one :meth:`Reply.from_dict` object per line) and
``--responder module:function`` sets :meth:`FakeEndpoint.respond_with` to a function imported
by name (the contract is :func:`~promptkit.testing.fake.as_reply`). Each completion request is
answered by the next scripted line, else by the responder, else by the default (``--reply``
or an echo). A mistake in either option is one line on stderr and exit code 2, before the
server starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import inspect
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .fake import FakeEndpoint, RecordedRequest, Responder, as_reply
from .reply import Reply

__all__ = ["UsageError", "load_responder", "main", "read_script"]

PROG = "python -m promptkit.testing"
DESCRIPTION = """\
Serve a fake OpenAI-compatible API on 127.0.0.1; print its base URL, then serve until
interrupted. Each completion request is answered by the next --script line, else by the
--responder function, else by the default answer (--reply, or an echo of the prompt)."""
RESPONDER_HELP = """\
answer with FUNCTION(request), imported from MODULE (the current directory is on the path):
it gets the recorded request (.body, the JSON body as a dict; .prompt_text; .path; .headers)
and returns a str (the answer text), a dict (the response body, sent as given; streamed
requests get a chat completion as its chunks), a promptkit.testing.Reply, or None (the
default answer); anything else is a 500"""
SCRIPT_HELP = """\
replay these replies first, one JSON object per line: a Reply kind and its keyword
arguments, e.g. {"kind": "status", "code": 429, "retry_after": 1} or {"content": "Paris"}
(kind "text" when omitted); kinds: text, echo, status, raw, events, malformed_json, html,
hang, drop_stream"""


class UsageError(Exception):
    """A bad ``--responder`` or ``--script``: the message is one line for stderr (exit 2)."""


def main(argv: list[str] | None = None) -> int:
    """Serve a :class:`FakeEndpoint` until SIGINT or SIGTERM (``python -m promptkit.testing``).

    Returns 0 once interrupted, or 2 after printing one line when ``--script`` or
    ``--responder`` is wrong.
    """
    args = _parser().parse_args(argv)
    try:
        replies = read_script(args.script) if args.script else []
        responder = load_responder(args.responder) if args.responder else None
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.reply is None:
        default = Reply.echo(latency=args.latency)
    else:
        default = Reply.text(args.reply, latency=args.latency)

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with FakeEndpoint(host=args.host, port=args.port, model=args.model, default=default) as ep:
        ep.script(*replies)
        if responder is not None:
            ep.respond_with(_with_latency(responder, args.latency))
        print(ep.base_url, flush=True)
        stopping.wait()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument(
        "--latency", type=float, default=0.0,
        help="seconds before the default answer and the responder's str and dict answers",
    )
    parser.add_argument("--reply", help="the default answer's text (default: echo the prompt)")
    parser.add_argument("--model", default="fake-model", help="the model /v1/models lists")
    parser.add_argument("--script", metavar="FILE.jsonl", help=SCRIPT_HELP)
    parser.add_argument("--responder", metavar="MODULE:FUNCTION", help=RESPONDER_HELP)
    return parser


def read_script(path: str | os.PathLike[str]) -> list[Reply]:
    """The replies of a script file: one :meth:`Reply.from_dict` JSON object per line.

    Blank lines are skipped.

    Raises:
        UsageError: The file cannot be read, or a line is not a JSON object describing a
            reply; the message starts with ``FILE:LINE:``.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the script: {exc.strerror or exc}") from None
    replies = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise UsageError(f"{path}:{number}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(fields, dict):
            example = '{"content": "Paris"}'
            raise UsageError(f"{path}:{number}: expected a JSON object like {example}")
        try:
            replies.append(Reply.from_dict(fields))
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
    return replies


def load_responder(spec: str) -> Responder:
    """Import ``module:function`` (``function`` may be dotted, e.g. ``Classifier.classify``)
    as entry points are, with the current directory on ``sys.path``.

    Raises:
        UsageError: No colon, the module cannot be imported, it has no such attribute, or the
            attribute is not a function of one argument.
    """
    module_name, colon, attribute = spec.partition(":")
    if not (colon and module_name and attribute):
        raise UsageError(f"--responder {spec!r}: expected MODULE:FUNCTION, e.g. app:classify")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `python -m` does this too, unless run with -P
    try:
        target = importlib.import_module(module_name)
    except Exception as exc:  # whatever the module raises while being imported
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise UsageError(f"--responder {spec}: cannot import {module_name}: {reason}") from None
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise UsageError(f"--responder {spec}: {module_name} has no {attribute}") from None
    if not callable(target):
        kind = type(target).__name__
        raise UsageError(f"--responder {spec}: {attribute} is not callable (it is a {kind})")
    try:
        inspect.signature(target).bind(None)
    except TypeError:
        raise UsageError(f"--responder {spec}: {attribute} must take one argument, "
                         "the request") from None
    except ValueError:  # no signature to check (some built-ins): find out when called
        pass
    return target


def _with_latency(responder: Responder, latency: float) -> Responder:
    """``responder``, its str and dict answers given ``--latency`` (a Reply keeps its own)."""
    if not latency:
        return responder

    @functools.wraps(responder)
    def delayed(request: RecordedRequest) -> str | dict[str, Any] | Reply | None:
        answer = responder(request)
        if isinstance(answer, str | dict):
            reply = as_reply(answer, request)
            return None if reply is None else dataclasses.replace(reply, latency=latency)
        return answer  # a Reply, None, or a mistake that as_reply reports
    return delayed
