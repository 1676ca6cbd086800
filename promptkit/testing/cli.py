"""The command line of ``python -m promptkit.testing``: serve a fake OpenAI-compatible API.

It scripts the endpoint the two ways Python does: ``--script FILE.jsonl`` queues replies as
:meth:`FakeEndpoint.script` does (one :meth:`Reply.from_dict` object per line) and
``--responder module:function`` sets :meth:`FakeEndpoint.respond_with` to a function imported
by name (the contract is :func:`~promptkit.testing.fake.as_reply`). Each completion request is
answered by the next scripted line, else by the responder, else by the default (``--reply``
or an echo). A mistake in an option, or an address it cannot listen on (a port already in
use, a host that is not this machine's), is one line on stderr and exit code 2, before the
server starts. Once it serves, each request the responder fails (it raises, or answers what
cannot be sent) is one line on stderr, as well as the client's 500.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import functools
import importlib
import inspect
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path, PurePath
from typing import Any, NoReturn

from .fake import (
    FakeEndpoint,
    RecordedRequest,
    Responder,
    UnsendableAnswer,
    as_reply,
    call_responder,
)
from .reply import Reply

__all__ = ["UsageError", "load_responder", "main", "read_script"]

PROG = "python -m promptkit.testing"
DESCRIPTION = """\
Serve a fake OpenAI-compatible API on 127.0.0.1; print its base URL, then serve until
interrupted. Each completion request is answered by the next --script line, else by the
--responder function, else by the default answer (--reply, or an echo of the prompt)."""
RESPONDER_HELP = """\
answer with FUNCTION(request), imported from MODULE (the current directory is on the path;
an async def function is awaited):
it gets the recorded request (.body, the JSON body as a dict; .prompt_text; .path; .headers;
the conversation so far: .messages, .last_user_message, .tool_results keyed by tool_call_id
and by function name, .turn = assistant messages so far + 1) and returns a str (the answer
text), a dict (the response body, sent as given; streamed requests get a chat completion as
its chunks), a dict {"tool_calls": [...]} (a tool-call reply, as a --script line), a
promptkit.testing.Reply, or None (the default answer); anything else, or raising, is a 500
and a line on stderr"""
SCRIPT_HELP = """\
replay these replies first, one JSON object per line: a Reply kind and its keyword
arguments, e.g. {"kind": "status", "code": 429, "retry_after": 1} or {"content": "Paris"}
(kind "text" when omitted) or {"tool_calls": [{"name": "get_weather", "arguments":
{"city": "Paris"}}]} (kind "tool_calls" when omitted; arguments given as a string are sent
as is; ids call_1, call_2...) or {"kind": "json", "value": {"city": "Paris"}}; kinds: text,
json, tool_calls, echo, status, raw, events, malformed_json, html, hang, drop_stream"""


class UsageError(Exception):
    """A bad ``--responder`` or ``--script``: the message is one line for stderr (exit 2)."""


def main(argv: list[str] | None = None) -> int:
    """Serve a :class:`FakeEndpoint` until SIGINT or SIGTERM (``python -m promptkit.testing``).

    Returns 0 once interrupted, or 2 after printing one line when an option is wrong or the
    server cannot listen on ``--host`` and ``--port``.
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

    endpoint = FakeEndpoint(host=args.host, port=args.port, model=args.model, default=default,
                            on_responder_error=_print_responder_error)
    endpoint.script(*replies)
    if responder is not None:
        endpoint.respond_with(_with_latency(responder, args.latency))
    try:
        endpoint.start()
    except OSError as exc:
        print(f"{PROG}: error: cannot listen on {args.host} port {args.port}: "
              f"{_listen_failure(exc)}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        print(endpoint.base_url, flush=True)
        stopping.wait()
    finally:
        endpoint.stop()
    return 0


def _print_responder_error(request: RecordedRequest, problem: str) -> None:
    """One line on stderr for a request the responder failed: its method and path, and why
    (never its headers, which hold the client's API key)."""
    print(f"responder error on {request.method} {request.path}: {' '.join(problem.split())}",
          file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineErrorParser(
        prog=PROG, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", type=_host, default="127.0.0.1",
                        help="the address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000,
                        help="0 picks a free port (default: 8000)")
    parser.add_argument(
        "--latency", type=float, default=0.0,
        help="seconds before the default answer and the responder's str and dict answers",
    )
    parser.add_argument("--reply", help="the default answer's text (default: echo the prompt)")
    parser.add_argument("--model", default="fake-model", help="the model /v1/models lists")
    parser.add_argument("--script", metavar="FILE.jsonl", help=SCRIPT_HELP)
    parser.add_argument("--responder", metavar="MODULE:FUNCTION", help=RESPONDER_HELP)
    return parser


class _OneLineErrorParser(argparse.ArgumentParser):
    """Reports a bad option in one line, as every other mistake is (``--help`` has the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _port(text: str) -> int:
    """A ``--port`` value: an integer from 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port number from 0 to 65535 (0 picks a free one), not {text!r}")
    return port


def _host(text: str) -> str:
    """A ``--host`` value: not empty, since the base URL printed must name it."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected an address to listen on, e.g. 127.0.0.1 or 0.0.0.0, not {text!r}")
    return text


def _listen_failure(exc: OSError) -> str:
    """Why binding failed, without asyncio's wording around the system's."""
    if isinstance(exc, socket.gaierror) or not exc.errno or exc.errno < 0:
        return exc.strerror or str(exc)  # a name that does not resolve, or several failures
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (choose another --port, or 0 for a free one)"
    return os.strerror(exc.errno)


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
            fields = json.loads(line.decode("utf-8"), parse_constant=_refuse_constant)
        except UnicodeDecodeError:
            raise UsageError(f"{path}:{number}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON: {exc.msg} (column {exc.colno})") from None
        except ValueError as exc:  # NaN or Infinity
            raise UsageError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(fields, dict):
            example = '{"content": "Paris"}'
            raise UsageError(f"{path}:{number}: expected a JSON object like {example}")
        try:
            replies.append(Reply.from_dict(fields))
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
    return replies


def _refuse_constant(name: str) -> NoReturn:
    """``json.loads`` takes ``NaN``, ``Infinity`` and ``-Infinity``; JSON does not."""
    raise ValueError(f"{name} is not a JSON value")


def load_responder(spec: str) -> Responder:
    """Import ``module:function`` (``function`` may be dotted, e.g. ``Classifier.classify``)
    as entry points are, with the current directory on ``sys.path``.

    Raises:
        UsageError: No colon, a file path for the module, the module cannot be imported
            (whatever it raises, ``SystemExit`` too, but ``KeyboardInterrupt``), it has no
            such attribute, or the attribute is not a function of one argument.
    """
    module_name, colon, attribute = spec.partition(":")
    if not (colon and module_name and attribute):
        raise UsageError(f"--responder {spec!r}: expected MODULE:FUNCTION, e.g. app:classify")
    if "/" in module_name or os.sep in module_name or module_name.endswith(".py"):
        advice = _module_for(module_name, attribute)
        raise UsageError(f"--responder takes module:function; {advice}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `python -m` does this too, unless run with -P
    try:
        target = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # whatever the module does while imported, sys.exit() too
        if isinstance(exc, Exception):
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        else:
            reason = repr(exc)  # SystemExit(0), where "SystemExit: 0" would hide what it is
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


def _module_for(path: str, attribute: str) -> str:
    """How to name the module a file path points at, e.g. for ``evals/fake_model.py``:
    run it from evals/ as ``fake_model:…``, or use ``evals.fake_model:…``."""
    file = PurePath(path)
    module = file.stem if file.suffix == ".py" else file.name
    folder = file.parent
    if str(folder) == ".":
        return f"for {path} use {module}:{attribute}"
    advice = f"for {path} run it from {folder}{os.sep} as {module}:{attribute}"
    parts = [*folder.parts, module]
    if not file.is_absolute() and all(part.isidentifier() for part in parts):
        advice += f", or use {'.'.join(parts)}:{attribute}"
    return advice


def _with_latency(responder: Responder, latency: float) -> Responder:
    """``responder``, its str and dict answers given ``--latency`` (a Reply keeps its own)."""
    if not latency:
        return responder

    @functools.wraps(responder)
    def delayed(request: RecordedRequest) -> str | dict[str, Any] | Reply | None:
        answer = call_responder(responder, request)
        if not isinstance(answer, str | dict):
            return answer  # a Reply, None, or a mistake that as_reply reports
        try:
            reply = as_reply(answer, request)
        except UnsendableAnswer:
            return answer  # the endpoint reports it, as without latency
        return None if reply is None else dataclasses.replace(reply, latency=latency)
    return delayed
