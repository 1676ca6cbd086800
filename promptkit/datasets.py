"""Eval datasets: JSONL, CSV or inline cases, read as a stream.

A case's fields become template variables and assertion variables. Its id is the
``id`` field when present, else derived from its content, so the same case keeps
the same id across runs and files (baselines match cases by id).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Case:
    """One dataset row."""

    index: int
    id: str
    vars: dict[str, Any]


def content_id(fields: dict[str, Any]) -> str:
    """A stable id from a case's content: 12 hex digits of sha256 of its canonical JSON."""
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _rows_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"invalid JSON: {exc.msg}", str(path), lineno) from None
            if not isinstance(row, dict):
                raise ConfigError("each line must be a JSON object", str(path), lineno)
            yield lineno, row


def _rows_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            return
        for row in reader:
            if None in row:
                raise ConfigError("more values than header columns", str(path), reader.line_num)
            yield reader.line_num, {k: v for k, v in row.items() if k is not None}


def iter_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, fields) for each row of a JSONL or CSV file, streamed."""
    if not path.is_file():
        raise ConfigError("dataset file not found", str(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _rows_jsonl(path)
    if suffix == ".csv":
        return _rows_csv(path)
    raise ConfigError(f"unsupported dataset format '{suffix}' (use .jsonl or .csv)", str(path))


def iter_cases(path: Path | None = None, inline: list[dict[str, Any]] | None = None,
               limit: int | None = None) -> Iterator[Case]:
    """The cases of a dataset file or an inline list, in order, at most ``limit``.

    Raises:
        ConfigError: unreadable rows (with file and line) or duplicate ids.
    """
    rows: Iterator[tuple[int | None, dict[str, Any]]]
    rows = iter_rows(path) if path is not None else ((None, row) for row in inline or [])
    seen: set[str] = set()
    for index, (lineno, fields) in enumerate(rows):
        if limit is not None and index >= limit:
            return
        raw_id = fields.get("id")
        if raw_id is not None and str(raw_id) != "":
            case_id = str(raw_id)
            if case_id in seen:
                raise ConfigError(f"duplicate case id {case_id!r}", str(path or "cases"),
                                  lineno)
        else:
            case_id = content_id(fields)
            if case_id in seen:  # identical rows stay distinct cases
                case_id = f"{case_id}-{index}"
        seen.add(case_id)
        yield Case(index, case_id, fields)


def count_cases(path: Path | None = None, inline: list[dict[str, Any]] | None = None,
                limit: int | None = None) -> int:
    """How many cases there are, without parsing them (for progress and dry runs)."""
    if path is None:
        total = len(inline or [])
    elif path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            total = max(sum(1 for _ in csv.reader(handle)) - 1, 0)
    else:
        with path.open("rb") as handle:
            total = sum(1 for line in handle if line.strip())
    return total if limit is None else min(total, limit)
