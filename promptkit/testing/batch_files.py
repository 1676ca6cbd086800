"""The files of the fake endpoint's batches: OpenAI's Files API, and reading an input file.

``POST /v1/files`` (``multipart/form-data`` with ``file`` and ``purpose``), ``GET
/v1/files`` (newest first, ``limit``, ``after``, ``purpose``), ``GET /v1/files/{id}``,
``GET /v1/files/{id}/content`` and ``DELETE /v1/files/{id}``, answered in the shapes of
``openai.types.FileObject`` and ``FileDeleted``; an unknown id is a 404 with OpenAI's error
body. :class:`FileStore` also holds the output and error files the batches write
(:mod:`promptkit.testing.batches`), and :func:`page` lays out any list the way the SDK's
cursor pages read it.

:func:`read_input` checks a batch input file as OpenAI does (each line a JSON object with a
unique ``custom_id``, ``"method": "POST"``, the batch's ``url`` and a ``body`` naming the
batch's one ``model``; at most so many lines and bytes) and finds its lines without keeping
them parsed; :func:`create_problem` is why a ``POST /v1/batches`` is refused outright.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs

from .http_server import HTTPRequest, Response

__all__ = [
    "BATCH_ENDPOINTS", "FILE_PURPOSES", "MAX_BATCH_BYTES", "MAX_BATCH_LINES", "FileRecord",
    "FileStore", "InputLines", "create_problem", "page", "parse_multipart", "query",
    "read_input",
]

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
"""The purposes ``POST /v1/files`` accepts (others are a 400, as at OpenAI)."""
MAX_BATCH_LINES = 50_000
"""OpenAI's limit on a batch's requests; ``FakeEndpoint.batch_max_lines`` starts here."""
MAX_BATCH_BYTES = 200 * 1024 * 1024
"""OpenAI's limit on a batch input file's size; ``FakeEndpoint.batch_max_bytes`` starts here."""
BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
"""The endpoints the fake endpoint batches."""
MAX_REPORTED_ERRORS = 100
"""At most this many line errors are listed in a failed batch's ``errors.data``."""
_DUPLICATE = ("The custom_id for this request is a duplicate of another request. The custom_id "
              "parameter must be unique for each request in a batch.")

_Item = TypeVar("_Item")


@dataclass(eq=False)
class FileRecord:
    """One file the endpoint holds: uploaded, or written by a batch (purpose
    ``batch_output``).

    Attributes:
        id: ``"file-..."``.
        filename: As uploaded; a batch's files are ``"{batch id}_output.jsonl"`` and
            ``"{batch id}_error.jsonl"``.
        purpose: ``"batch"``, ``"batch_output"``...
        content: The bytes; ``b""`` once deleted (what a batch read from it stays with
            the batch).
        size: How many bytes it held.
        created_at: Unix seconds.
        deleted: Whether ``DELETE /v1/files/{id}`` removed it.
    """

    id: str
    filename: str
    purpose: str
    content: bytes = field(repr=False)
    created_at: int
    size: int = 0
    deleted: bool = False

    def as_json(self) -> dict[str, Any]:
        """The ``FileObject`` the API answers."""
        return {"id": self.id, "object": "file", "bytes": self.size,
                "created_at": self.created_at, "filename": self.filename,
                "purpose": self.purpose, "status": "processed", "expires_at": None,
                "status_details": None}


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename or ``None``, bytes).

    Raises:
        ValueError: Not multipart, no boundary, or a part cut short; the message says which.
    """
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/form-data") or found is None:
        raise ValueError("Send the file as multipart/form-data with a boundary.")
    delimiter = b"--" + found.group(1).encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    position = body.find(delimiter)
    while position >= 0 and not body.startswith(b"--", position + len(delimiter)):
        head_end = body.find(b"\r\n\r\n", position)
        part_end = body.find(b"\r\n" + delimiter, head_end + 4)
        if head_end < 0 or part_end < 0:
            raise ValueError("The multipart body is cut short.")
        head = body[position + len(delimiter) : head_end].decode("utf-8", "replace")
        name = re.search(r'\bname="([^"]*)"', head)
        filename = re.search(r'\bfilename="([^"]*)"', head)
        if name is not None:
            fields[name.group(1)] = (filename and filename.group(1),
                                     body[head_end + 4 : part_end])
        position = part_end + 2
    if position < 0:
        raise ValueError("The multipart body has no closing boundary.")
    return fields


def query(http: HTTPRequest) -> dict[str, str]:
    """The query string's parameters, the last value of each."""
    return {key: values[-1] for key, values in parse_qs(http.target.partition("?")[2]).items()}


def page(items: Sequence[_Item], params: dict[str, str], key: Callable[[_Item], str],
         render: Callable[[_Item], dict[str, Any]]) -> dict[str, Any]:
    """A cursor page (``object: list``, ``data``, ``first_id``, ``last_id``, ``has_more``) of
    ``items`` after the one whose key is ``params["after"]``, at most ``params["limit"]``
    (20 unless given)."""
    keys = [key(item) for item in items]
    start = keys.index(params["after"]) + 1 if params.get("after") in keys else 0
    try:
        limit = max(1, int(params.get("limit", 20)))
    except ValueError:
        limit = 20
    chosen = items[start : start + limit]
    data = [render(item) for item in chosen]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": start + limit < len(items)}


class FileStore:
    """The files the endpoint holds, and the ``/v1/files`` routes; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, FileRecord] = {}
        self._ids = itertools.count(1)

    @property
    def files(self) -> list[FileRecord]:
        """Every file, deleted ones too, oldest first."""
        with self._lock:
            return list(self._files.values())

    def add(self, filename: str, purpose: str, content: bytes) -> FileRecord:
        """Keep a new file; returns its record."""
        record = FileRecord(f"file-fake{next(self._ids):06d}", filename, purpose, content,
                            int(time.time()), len(content))
        with self._lock:
            self._files[record.id] = record
        return record

    def get(self, file_id: str) -> FileRecord | None:
        """The file of that id, ``None`` if there is none or it was deleted."""
        record = self._files.get(file_id)
        return None if record is None or record.deleted else record

    def clear(self) -> None:
        """Forget every file."""
        with self._lock:
            self._files.clear()

    def handle(self, http: HTTPRequest, response: Response, parts: list[str]) -> None:
        """Answer a ``/v1/files`` request; ``parts`` is its path after ``/v1/files``."""
        method = http.method
        if not parts and method == "POST":
            self._upload(http, response)
            return
        if not parts and method == "GET":
            params = query(http)
            files = [record for record in reversed(self.files) if not record.deleted
                     and params.get("purpose", record.purpose) == record.purpose]
            listed = page(files, params, lambda record: record.id, FileRecord.as_json)
            response.send(200, json.dumps(listed).encode())
            return
        if len(parts) > 2 or (len(parts) == 2 and parts[1] != "content"):
            response.send_error(404, f"Unknown endpoint: {method} {http.path}")
            return
        if not parts:
            response.send_error(405, f"Method not allowed: {method} {http.path}")
            return
        record = self.get(parts[0])
        if record is None:
            response.send_error(404, f"No such File object: {parts[0]}")
        elif len(parts) == 2 and method == "GET":
            response.send(200, record.content, "application/octet-stream")
        elif method == "GET":
            response.send(200, json.dumps(record.as_json()).encode())
        elif method == "DELETE" and len(parts) == 1:
            record.deleted, record.content = True, b""
            response.send(200, json.dumps({"id": record.id, "object": "file",
                                           "deleted": True}).encode())
        else:
            response.send_error(405, f"Method not allowed: {method} {http.path}")

    def _upload(self, http: HTTPRequest, response: Response) -> None:
        try:
            fields = parse_multipart(http.headers.get("content-type", ""), http.body)
        except ValueError as exc:
            response.send_error(400, str(exc))
            return
        filename, content = fields.get("file", (None, b""))
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if "file" not in fields:
            response.send_error(400, "Missing required parameter: 'file'.")
        elif purpose not in FILE_PURPOSES:
            response.send_error(400, f"Invalid purpose {purpose!r}: expected one of "
                                     f"{', '.join(FILE_PURPOSES)}.")
        elif purpose == "batch" and not (filename or "").endswith(".jsonl"):
            response.send_error(400, "Invalid file format for Batch API. Must be .jsonl")
        else:
            record = self.add(filename or "upload", purpose, content)
            response.send(200, json.dumps(record.as_json()).encode())


@dataclass
class InputLines:
    """A batch input file as :func:`read_input` found it.

    Attributes:
        errors: ``errors.data`` entries (``code``, ``message``, ``param``, ``line``): the
            batch fails when there are any.
        starts, ends: Where each valid line lies in the file, in file order.
        model: The lines' one ``body.model``.
    """

    errors: list[dict[str, Any]] = field(default_factory=list)
    starts: array[int] = field(default_factory=lambda: array("Q"))
    ends: array[int] = field(default_factory=lambda: array("Q"))
    model: str | None = None


def _error(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": None}


def _check_line(raw: bytes, endpoint: str, seen: set[str],
                models: list[str]) -> dict[str, Any] | None:
    """What is wrong with one input line (``None``: nothing); keeps its custom_id and model."""
    try:
        line = json.loads(raw)
    except ValueError:
        return _error("invalid_json_line", "This line is not parseable as valid JSON.")
    if not isinstance(line, dict):
        return _error("invalid_json_line", "This line is not a JSON object.")
    for key, kind in (("custom_id", str), ("method", str), ("url", str), ("body", dict)):
        if not isinstance(line.get(key), kind):
            return _error("missing_required_parameter",
                          f"Missing required parameter: '{key}' ({kind.__name__}).", key)
    if line["method"] != "POST":
        return _error("invalid_value", "The method must be POST.", "method")
    if line["url"] != endpoint:
        return _error("url_mismatch", "The URL provided for this request does not match the "
                      f"batch endpoint ({line['url']!r}, not {endpoint!r}).", "url")
    model = line["body"].get("model")
    if not isinstance(model, str):
        return _error("missing_required_parameter", "Missing required parameter: 'model'.",
                      "body.model")
    if models and model != models[0]:
        return _error("model_mismatch", f"The provided model {model!r} does not match the "
                      f"model of the other requests in this batch ({models[0]!r}).",
                      "body.model")
    if line["custom_id"] in seen:
        return _error("duplicate_custom_id", _DUPLICATE, "custom_id")
    seen.add(line["custom_id"])
    models[:1] = [model]
    return None


def read_input(content: bytes, endpoint: str, max_lines: int, max_bytes: int) -> InputLines:
    """Check a batch input file for a batch of ``endpoint`` and find its lines."""
    found = InputLines()
    if len(content) > max_bytes:
        found.errors = [_error("file_too_large", f"The batch input file is larger than the "
                               f"{max_bytes} bytes limit ({len(content)} bytes).")]
        return found
    count = sum(1 for raw in content.split(b"\n") if raw.strip())
    if count > max_lines:
        found.errors = [_error("too_many_tasks", f"The batch input file holds {count} "
                               f"requests, more than the limit of {max_lines}.")]
        return found
    seen: set[str] = set()
    models: list[str] = []
    position, number = 0, 0
    while position < len(content):
        end = content.find(b"\n", position)
        end = len(content) if end < 0 else end
        number += 1
        raw = content[position:end]
        problem = _check_line(raw, endpoint, seen, models) if raw.strip() else None
        if problem is not None and len(found.errors) < MAX_REPORTED_ERRORS:
            found.errors.append({**problem, "line": number})
        elif problem is None and raw.strip():
            found.starts.append(position)
            found.ends.append(end)
        position = end + 1
    if not found.errors and not found.starts:
        found.errors = [_error("empty_file", "The batch input file is empty.")]
    found.model = models[0] if models else None
    return found


def create_problem(body: Any, store: FileStore) -> tuple[int, str] | None:
    """Why ``POST /v1/batches`` with ``body`` is refused (status, message), if it is."""
    if not isinstance(body, dict):
        return 400, "The body must be a JSON object."
    for key in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(body.get(key), str):
            return 400, f"Missing required parameter: '{key}'."
    record = store.get(body["input_file_id"])
    if record is None:
        return 404, f"No such File object: {body['input_file_id']}"
    if record.purpose != "batch":
        return 400, f"The input file must have purpose 'batch', not {record.purpose!r}."
    if body["endpoint"] not in BATCH_ENDPOINTS:
        return 400, (f"Invalid endpoint {body['endpoint']!r}: the fake endpoint batches "
                     f"{' and '.join(BATCH_ENDPOINTS)}.")
    if body["completion_window"] != "24h":
        return 400, f"Invalid completion_window {body['completion_window']!r}: only '24h'."
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and len(metadata) <= 16
        and all(isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
                for k, v in metadata.items())
    ):
        return 400, "Invalid metadata: at most 16 string keys (64 characters) and values (512)."
    return None
