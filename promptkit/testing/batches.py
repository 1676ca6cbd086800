"""OpenAI's Batch API for the fake endpoint: a batch's lines answered as its requests would be.

``POST /v1/batches`` takes an uploaded JSONL file (:mod:`promptkit.testing.batch_files`) and
answers a ``Batch`` with status ``validating``; ``GET /v1/batches/{id}``, ``POST
/v1/batches/{id}/cancel`` and ``GET /v1/batches`` (newest first) answer it in the shape of
``openai.types.Batch``. Nothing runs in the background: each request about a batch brings it
up to the present (:meth:`BatchAPI.advance`), in a thread of its own.

A batch's clock: it is created at ``t0`` with the endpoint's ``batch_delay`` ``d``. The first
request about it validates the file (``failed`` with ``errors.data``, or ``in_progress``);
its lines are answered, in a shuffled order fixed by the batch id, as time passes over the
first nine tenths of ``d`` (a line is answered by the first request after its turn comes),
it is ``finalizing`` in the last tenth and ``completed`` once ``d`` has passed, its output
and error files written. With ``d = 0`` that is all one request. Each line is answered by
the endpoint's script, responder or default exactly as the same ``POST`` to its ``url``
would be (its latency ignored), unless ``fail_lines`` picked it; replies that make no JSON
answer (``hang``, ``drop_stream``, ``malformed_json``, ``html``, ``events``, a ``raw`` body
that is not JSON) are failed lines with an ``error`` (``request_timeout`` for a hang,
``server_error`` otherwise). A cancelled batch answers the lines due before the cancel and no
more (they are in neither file); a batch scripted to expire answers only its share and ends
``expired`` at ``t0 + d``, the rest in the error file as ``batch_expired`` (and counted as
failed).
"""

from __future__ import annotations

import json
import random
import threading
import time
from array import array
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import payloads
from .batch_files import (
    MAX_BATCH_BYTES,
    MAX_BATCH_LINES,
    FileStore,
    create_problem,
    page,
    query,
    read_input,
)
from .http_server import HTTPRequest, Response
from .reply import Reply
from .responders import RecordedRequest, describe_exception, in_new_thread

__all__ = [
    "FINALIZING_SHARE", "BatchAPI", "BatchRecord", "BatchSettings", "LineAnswer", "Outcome",
    "reply_outcome",
]

FINALIZING_SHARE = 0.1
"""The share of ``batch_delay`` a batch spends ``finalizing``, after all its lines are in."""
COMPLETION_WINDOW = 24 * 3600
_STAGES = ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling",
           "cancelled")
_EXPIRED = {"code": "batch_expired",
            "message": "This request could not be executed before the completion window expired."}

Outcome = tuple[int, Any]
"""How a line was answered: (HTTP status, JSON body); status 0 means no HTTP answer, the body
being the line's ``error`` (``{"code", "message"}``)."""
LineAnswer = Callable[[RecordedRequest], Outcome]
"""How the endpoint answers one line's request (its script, responder or default)."""


class BatchSettings(Protocol):
    """What the endpoint scripts batches with (:class:`~promptkit.testing.FakeEndpoint`)."""

    batch_delay: float
    batch_max_lines: int
    batch_max_bytes: int


def reply_outcome(reply: Reply, whole: Callable[[Reply], Outcome]) -> Outcome:
    """What a :class:`~promptkit.testing.Reply` answers to a batch line; ``whole(reply)`` is the
    completion the endpoint would send for a text, JSON, tool-call or echo reply."""
    if reply.kind == "status":
        if isinstance(reply.body, dict):
            return reply.status_code, reply.body
        message = payloads.scripted_message(reply.status_code, reply.body)
        return reply.status_code, payloads.error_payload(reply.status_code, message)
    if reply.kind == "raw":
        try:
            return reply.status_code, json.loads(str(reply.body))
        except ValueError:
            return 0, {"code": "server_error", "message": "The response was not JSON."}
    if reply.kind in ("text", "tool_calls", "echo"):
        return whole(reply)
    if reply.kind == "hang":
        return 0, {"code": "request_timeout", "message": "The request timed out."}
    return 0, {"code": "server_error", "message": f"A {reply.kind} reply has no JSON answer."}


@dataclass(eq=False)
class BatchRecord:
    """One batch, as the endpoint last brought it up to date (a request about it does).

    Attributes:
        id: ``"batch_..."``.
        status: ``validating``, ``in_progress``, ``finalizing``, ``completed``, ``failed``,
            ``expired``, ``cancelling`` or ``cancelled``.
        endpoint, input_file_id, completion_window, metadata: As the batch was created.
        created_at: Unix seconds.
        content: The input file's bytes (kept when the file is deleted).
        model: The lines' ``body.model``, once validated.
        output_file_id, error_file_id: The files written when it ended (``None`` if empty).
        errors: ``errors.data`` of a failed batch: ``{"code", "message", "param", "line"}``.
        total, completed, failed: ``request_counts``.
        times: ``"in_progress_at"``, ``"completed_at"``... -> Unix seconds, as reached.
    """

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, Any] | None
    created_at: int
    content: bytes = field(repr=False)
    delay: float = 0.0
    expire: int | float | None = None
    limits: tuple[int, int] = (MAX_BATCH_LINES, MAX_BATCH_BYTES)
    status: str = "validating"
    model: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    completed: int = 0
    failed: int = 0
    times: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    started: float = field(default_factory=time.monotonic, repr=False)
    cancel_at: float | None = field(default=None, repr=False)
    expire_after: int | None = field(default=None, repr=False)
    answered: int = field(default=0, repr=False)
    starts: array[int] = field(default_factory=lambda: array("Q"), repr=False)
    ends: array[int] = field(default_factory=lambda: array("Q"), repr=False)
    order: array[int] = field(default_factory=lambda: array("L"), repr=False)
    answered_at: array[float] = field(default_factory=lambda: array("d"), repr=False)
    outputs: list[bytes] = field(default_factory=list, repr=False)
    failures: list[bytes] = field(default_factory=list, repr=False)
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"), 0), repr=False)

    @property
    def lines(self) -> list[Any]:
        """The input file's lines, in file order, each parsed (its text when not JSON);
        blank lines skipped. Parsed on each access."""
        lines: list[Any] = []
        for raw in self.content.splitlines():
            if raw.strip():
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    lines.append(raw.decode("utf-8", "replace"))
        return lines

    @property
    def requests(self) -> list[RecordedRequest]:
        """A request per line answered (or failed by ``fail_lines``), in the order answered;
        built on each access."""
        requests = []
        for position in range(self.answered):
            line = self.line(self.order[position])
            requests.append(RecordedRequest("POST", line["url"], {}, line["body"],
                                            payloads.prompt_text(line["body"]),
                                            self.answered_at[position]))
        return requests

    def line(self, index: int) -> dict[str, Any]:
        """The input line of that index among the valid ones, parsed."""
        return json.loads(self.content[self.starts[index] : self.ends[index]].decode())

    def record(self, custom_id: str, outcome: Outcome, number: int) -> None:
        """Keep one answered line for the output file (2xx) or the error file."""
        status, body = outcome
        line = {"id": f"batch_req_fake{number:08d}", "custom_id": custom_id,
                "response": None, "error": None}
        if status == 0:
            line["error"] = body
        else:
            line["response"] = {"status_code": status, "request_id": f"req_fake{number:08d}",
                                "body": body}
        encoded = json.dumps(line).encode() + b"\n"
        if 200 <= status < 300:
            self.completed += 1
            self.outputs.append(encoded)
            self._add_usage(body)
        else:
            self.failed += 1
            self.failures.append(encoded)

    def _add_usage(self, body: Any) -> None:
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            return
        counts = {"input_tokens": usage.get("prompt_tokens"),
                  "output_tokens": usage.get("completion_tokens")}
        for key, where in (("cached_tokens", "prompt_tokens_details"),
                           ("reasoning_tokens", "completion_tokens_details")):
            details = usage.get(where)
            if isinstance(details, dict):
                counts[key] = details.get(key)
        for key, value in counts.items():
            if type(value) is int:  # not a bool, not garbage a raw reply sent
                self.usage[key] += value

    def as_json(self) -> dict[str, Any]:
        """The ``Batch`` object the API answers."""
        usage = self.usage
        return {
            "id": self.id, "object": "batch", "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id, "completion_window": self.completion_window,
            "status": self.status, "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id, "created_at": self.created_at,
            "expires_at": self.created_at + COMPLETION_WINDOW,
            **{f"{stage}_at": self.times.get(f"{stage}_at") for stage in _STAGES},
            "request_counts": {"total": self.total, "completed": self.completed,
                               "failed": self.failed},
            "metadata": self.metadata, "model": self.model,
            "usage": {"input_tokens": usage["input_tokens"],
                      "input_tokens_details": {"cached_tokens": usage["cached_tokens"]},
                      "output_tokens": usage["output_tokens"],
                      "output_tokens_details": {"reasoning_tokens": usage["reasoning_tokens"]},
                      "total_tokens": usage["input_tokens"] + usage["output_tokens"]},
        }


@dataclass(frozen=True)
class _Failing:
    """The lines :meth:`BatchAPI.fail_lines` fails, and how."""

    picks: Callable[[str], bool]
    status: int
    message: str


class BatchAPI:
    """The ``/v1/files`` and ``/v1/batches`` routes and what they hold; see the module
    docstring. ``settings`` is read as each batch is created; ``answer`` answers each line."""

    def __init__(self, settings: BatchSettings, answer: LineAnswer) -> None:
        self.store = FileStore()
        self._settings = settings
        self._answer_line = answer
        self._lock = threading.Lock()
        self._batches: dict[str, BatchRecord] = {}
        self._numbers = iter(range(1, 1 << 62))
        self._expire_next: int | float | None = None
        self._failing: _Failing | None = None

    @property
    def batches(self) -> list[BatchRecord]:
        """Every batch, oldest first."""
        with self._lock:
            return list(self._batches.values())

    def expire_next(self, answered: int | float) -> None:
        """Make the next batch created expire after answering ``answered`` lines (an int) or
        that share of them (a float from 0 to 1)."""
        if isinstance(answered, bool) or not isinstance(answered, int | float) or answered < 0 \
                or (isinstance(answered, float) and answered > 1):
            raise ValueError(f"answered must be a count or a share from 0 to 1, not {answered!r}")
        self._expire_next = answered

    def fail_lines(self, which: Callable[[str], bool] | Collection[str] | str | None,
                   status: int, message: str | None) -> None:
        """Fail the lines whose custom_id ``which`` picks; ``None`` fails none."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400 to 599), not {status!r}")
        if which is None:
            self._failing = None
            return
        if isinstance(which, str):
            which = {which}
        picks = which if callable(which) else frozenset(which).__contains__
        self._failing = _Failing(picks, status, payloads.scripted_message(status, message))

    def reset(self) -> None:
        """Forget every file and batch, ``expire_next`` and ``fail_lines``."""
        with self._lock:
            self._batches.clear()
        self.store.clear()
        self._expire_next = self._failing = None

    async def handle(self, http: HTTPRequest, response: Response) -> None:
        """Answer a request under ``/v1/files`` or ``/v1/batches``."""
        resource, *rest = [part for part in http.path.split("/")[2:] if part]
        if resource == "files":
            self.store.handle(http, response, rest)
            return
        result: list[Outcome] = []
        await in_new_thread(lambda: result.append(self._route_safely(http, rest)))
        status, payload = result[0]
        response.send(status, json.dumps(payload).encode())

    def _route_safely(self, http: HTTPRequest, rest: list[str]) -> Outcome:
        try:
            return self._route(http, rest)
        except Exception as exc:  # a bug here, or in a fail_lines predicate: say so, serve on
            return 500, payloads.error_payload(
                500, f"The fake endpoint failed: {describe_exception(exc)}")

    def _route(self, http: HTTPRequest, rest: list[str]) -> Outcome:
        method = http.method
        if not rest and method == "POST":
            return self._create(http.body)
        if not rest and method == "GET":
            batches = self.batches
            for batch in batches:
                self.advance(batch)
            return 200, page(batches[::-1], query(http), lambda b: b.id, BatchRecord.as_json)
        if len(rest) > 2 or (len(rest) == 2 and rest[1] != "cancel"):
            return 404, payloads.error_payload(404, f"Unknown endpoint: {method} {http.path}")
        if not rest:
            return 405, payloads.error_payload(405, f"Method not allowed: {method} {http.path}")
        batch = self._batches.get(rest[0])
        if batch is None:
            return 404, payloads.error_payload(404, f"No such Batch object: {rest[0]}")
        if len(rest) == 1 and method == "GET":
            self.advance(batch)
            return 200, batch.as_json()
        if len(rest) == 2 and method == "POST":
            return self._cancel(batch)
        return 405, payloads.error_payload(405, f"Method not allowed: {method} {http.path}")

    def _create(self, raw: bytes) -> Outcome:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        problem = create_problem(body, self.store)
        if problem is not None:
            status, message = problem
            return status, payloads.error_payload(status, message)
        settings, content = self._settings, self.store.get(body["input_file_id"])
        batch = BatchRecord(f"batch_fake{next(self._numbers):06d}", body["endpoint"],
                            body["input_file_id"], body["completion_window"],
                            body.get("metadata"), int(time.time()),
                            content.content if content is not None else b"",
                            delay=max(0.0, float(settings.batch_delay)), expire=self._expire_next,
                            limits=(settings.batch_max_lines, settings.batch_max_bytes))
        self._expire_next = None
        with self._lock:
            self._batches[batch.id] = batch
        return 200, batch.as_json()

    def advance(self, batch: BatchRecord, now: float | None = None) -> None:
        """Bring ``batch`` up to ``now``: validate it, answer the lines due, end it when due."""
        now = time.monotonic() if now is None else now
        with batch.lock:
            if batch.status == "validating":
                self._validate(batch)
            if batch.status not in ("in_progress", "finalizing", "cancelling"):
                return
            elapsed = now - batch.started
            span = batch.delay * (1 - FINALIZING_SHARE)
            until = elapsed if batch.cancel_at is None else min(elapsed,
                                                                batch.cancel_at - batch.started)
            due = batch.total if until >= span else int(batch.total * until / span)
            if batch.expire_after is not None:
                due = min(due, batch.expire_after)
            while batch.answered < due:
                self._answer(batch)
            if batch.status == "cancelling":
                self._finish(batch, "cancelled")
            elif batch.expire_after is not None:
                if elapsed >= batch.delay:
                    self._finish(batch, "expired")
            elif batch.answered == batch.total and elapsed >= span:
                batch.status = "finalizing"
                batch.times.setdefault("finalizing_at", int(time.time()))
                if elapsed >= batch.delay:
                    self._finish(batch, "completed")

    def _validate(self, batch: BatchRecord) -> None:
        found = read_input(batch.content, batch.endpoint, *batch.limits)
        batch.errors, batch.starts, batch.ends, batch.model = (found.errors, found.starts,
                                                               found.ends, found.model)
        if batch.errors:
            batch.status = "failed"
            batch.times["failed_at"] = int(time.time())
            return
        batch.status = "in_progress"
        batch.times["in_progress_at"] = int(time.time())
        batch.total = len(batch.starts)
        order = list(range(batch.total))
        random.Random(batch.id).shuffle(order)  # OpenAI does not keep the input's order
        batch.order = array("L", order)
        expire = batch.expire
        if expire is not None:
            batch.expire_after = min(batch.total, expire if isinstance(expire, int)
                                     else int(batch.total * expire))

    def _answer(self, batch: BatchRecord) -> None:
        """Answer the next line in the batch's order."""
        line = batch.line(batch.order[batch.answered])
        custom_id, body = line["custom_id"], line["body"]
        request = RecordedRequest("POST", line["url"], {}, body, payloads.prompt_text(body),
                                  time.monotonic())
        failing = self._failing
        if failing is not None and failing.picks(custom_id):
            outcome: Outcome = failing.status, payloads.error_payload(failing.status,
                                                                      failing.message)
        else:
            outcome = self._answer_line(request)
        batch.record(custom_id, outcome, next(self._numbers))
        batch.answered_at.append(request.received_at)
        batch.answered += 1

    def _finish(self, batch: BatchRecord, status: str) -> None:
        """End the batch: write its output and error files (what it holds), set its status."""
        if status == "expired":
            for index in batch.order[batch.answered :]:
                batch.record(batch.line(index)["custom_id"], (0, _EXPIRED),
                             next(self._numbers))
        for kept, purpose in ((batch.outputs, "output"), (batch.failures, "error")):
            if kept:
                record = self.store.add(f"{batch.id}_{purpose}.jsonl", "batch_output",
                                        b"".join(kept))
                setattr(batch, f"{purpose}_file_id", record.id)
                kept.clear()
        batch.status = status
        batch.times[f"{status}_at"] = int(time.time())

    def _cancel(self, batch: BatchRecord) -> Outcome:
        """Answer the lines due by now, then stop: ``cancelling`` now, ``cancelled`` on the next
        request about it."""
        with batch.lock:
            if batch.status in ("validating", "in_progress", "finalizing"):
                now = time.monotonic()
                batch.cancel_at = now
                self.advance(batch, now)  # validates it, answers what was due, maybe ends it
            if batch.status in ("in_progress", "finalizing"):
                batch.status = "cancelling"
                batch.times["cancelling_at"] = int(time.time())
            if batch.status in ("cancelling", "cancelled"):
                return 200, batch.as_json()
        message = f"Cannot cancel a batch with status {batch.status!r}."
        return 409, payloads.error_payload(409, message)
