"""Eval datasets: JSONL, CSV or inline cases, read as a stream.

A case's fields become template variables and assertion variables, except the reserved
keys (:data:`RESERVED_KEYS`), which configure the run: ``id``, ``assert`` (assertions of
this case alone), and ``turns``, ``tool_results``, ``tool_handler``, ``category`` (for
multi-turn and tool-calling cases). In a CSV file, ``assert``, ``turns`` and
``tool_results`` cells hold JSON. A case's id is its ``id`` when present, else derived
from its other, non-reserved content, so the same case keeps the same id across runs and
files (baselines match cases by id).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: The longest CSV field read, in characters (the csv module's default is 131,072).
#: Raising it is process-wide: reading a CSV dataset sets ``csv.field_size_limit`` to at
#: least this. A longer field is an error naming its row.
CSV_FIELD_SIZE_LIMIT = 16 * 1024 * 1024

# What ``errors="surrogateescape"`` turns a byte that is not UTF-8 into.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")

RESERVED_KEYS = ("id", "assert", "turns", "tool_results", "tool_handler", "category")
"""Case keys that configure the run rather than feed the template."""
JSON_CELLS = ("assert", "turns", "tool_results")
"""Reserved keys whose CSV cells are read as JSON."""


@dataclass(frozen=True)
class Case:
    """One dataset row.

    Attributes:
        index: Its position in the dataset (0-based).
        id: Its ``id``, or a hash of its content.
        vars: The template and assertion variables (its fields but the reserved keys).
        reserved: The reserved keys it has (``assert``, ``category``, ...).
        line: The file line it starts on (None for inline cases).
    """

    index: int
    id: str
    vars: dict[str, Any]
    reserved: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    @property
    def asserts(self) -> list[Any]:
        """This case's own assertions, as written (validated by the runner)."""
        return self.reserved.get("assert") or []

    @property
    def query(self) -> dict[str, Any]:
        """What few-shot selection compares with: its variables, and its ``id`` when it has
        one (so the case itself is never one of its examples)."""
        given = self.reserved.get("id")
        return self.vars if given is None else {**self.vars, "id": given}


def is_name(value: object) -> bool:
    """Whether ``value`` can name a case (an id, a category): a text or a number, or None.
    (``str()`` of a list or an object would make a name no one can type or match.)"""
    return value is None or (not isinstance(value, bool)
                             and isinstance(value, str | int | float))


def content_id(fields: dict[str, Any]) -> str:
    """A stable id from a case's content: 12 hex digits of sha256 of its canonical JSON
    (reserved keys left out: they configure the case, they are not the case)."""
    content = {k: v for k, v in fields.items() if k not in RESERVED_KEYS}
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _split(fields: dict[str, Any], csv_cells: bool, fail: Callable[[str, str], ConfigError]
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(template variables, reserved keys) of a row; JSON cells parsed for CSV.
    ``fail(message, key)`` makes the error about one key of the row."""
    variables, reserved = {}, {}
    for key, value in fields.items():
        if key not in RESERVED_KEYS:
            variables[key] = value
            continue
        if csv_cells and isinstance(value, str) and not value.strip():
            continue  # an empty cell of a shared column: the row does not set the key
        if csv_cells and key in JSON_CELLS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise fail(f"the {key!r} cell must hold JSON: {exc}", key) from None
        if key == "assert" and not isinstance(value, list):
            raise fail("a case's assert must be a list of assertions", key)
        reserved[key] = value
    return variables, reserved


def _lines(path: Path, newline: str | None) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, streamed, without a leading BOM.

    Bytes that are not UTF-8 are decoded to lone surrogates (``surrogateescape``) and
    reported with their line, so a bad byte deep in a large file is found while
    streaming, where a strict decoder would fail somewhere in a block without a line.
    """
    try:
        handle = path.open(encoding="utf-8-sig", errors="surrogateescape", newline=newline)
    except OSError as exc:
        raise ConfigError(f"cannot read dataset: {exc.strerror or exc}", str(path)) from None
    with handle:
        for lineno, line in enumerate(handle, 1):
            bad = _ESCAPED_BYTE.search(line)
            if bad:
                byte = ord(bad.group()) - 0xDC00
                raise ConfigError(
                    f"not UTF-8 text: invalid byte 0x{byte:02x} at column {bad.start() + 1}",
                    str(path), lineno)
            yield lineno, line


def _rows_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in _lines(path, newline=None):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"invalid JSON: {exc.msg}", str(path), lineno) from None
        except RecursionError:
            raise ConfigError("invalid JSON: nested too deeply", str(path), lineno) from None
        except ValueError as exc:  # a duplicate key, a number too long to convert
            problem = ("a number with more than 4,300 digits" if "integer string conversion"
                       in str(exc) else str(exc))
            raise ConfigError(f"invalid JSON: {problem}", str(path), lineno) from None
        if not isinstance(row, dict):
            raise ConfigError("each line must be a JSON object", str(path), lineno)
        if "\\u" in line:  # JSON escapes can spell text UTF-8 cannot store
            check_text(row, str(path), lineno)
        yield lineno, row


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in pairs:
        if key in row:
            raise ValueError(f"duplicate key {key!r}")
        row[key] = value
    return row


def check_text(value: Any, filename: str, lineno: int | None) -> None:
    """Refuse strings that UTF-8 cannot hold (a lone surrogate such as ``\\ud800``):
    they would be sent, then fail to be stored."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError("a value holds an unpaired surrogate (\\ud800-\\udfff), "
                                  "which is not text", filename, lineno) from None
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple):
            stack += item


def _rows_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows after the header, each with the line it starts on.

    A quoted field may span lines. Blank lines are skipped; every other row must have
    one value per column.
    """
    # The limit is process-wide; only ever raise it, in case the caller set it higher.
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_SIZE_LIMIT))
    reader = csv.reader(line for _, line in _lines(path, newline=""))
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            message = f"invalid CSV: {exc}"
            if "field larger than field limit" in str(exc):
                message = (f"a field is longer than {csv.field_size_limit():,} characters "
                           "(the limit for CSV; use JSONL for larger values)")
            raise ConfigError(message, str(path), start) from None
        if not row:
            continue
        if header is None:
            repeated = [name for name, count in Counter(row).items() if count > 1]
            if repeated:
                raise ConfigError(f"column {repeated[0]!r} appears twice in the header",
                                  str(path), start)
            header = row
            continue
        if len(row) != len(header):
            raise ConfigError(f"row has {_plural(len(row), 'value')}, the header has "
                              f"{_plural(len(header), 'column')}", str(path), start)
        yield start, dict(zip(header, row, strict=True))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


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
               limit: int | None = None, *,
               locate: Callable[[str, list[str | int]], ConfigError] | None = None
               ) -> Iterator[Case]:
    """The cases of a dataset file or an inline list, in order, at most ``limit``.

    ``locate(message, key_path)`` makes the error about an inline case (``["cases", 2,
    "id"]``), e.g. at its line in the eval spec; by default it names ``cases[2].id``.

    Raises:
        ConfigError: unreadable rows (with file and line), an ``id`` that is not a
            string or a number, or duplicate ids.
    """
    rows: Iterator[tuple[int | None, dict[str, Any]]]
    rows = iter_rows(path) if path is not None else ((None, row) for row in inline or [])
    where = str(path or "cases")
    if path is None:
        check_text(inline or [], where, None)
    seen: set[str] = set()
    for index, (lineno, fields) in enumerate(rows):
        if limit is not None and index >= limit:
            return

        def fail(message: str, key: str | None = None, index: int = index,
                 lineno: int | None = lineno) -> ConfigError:
            if path is not None:
                return ConfigError(message, where, lineno, key)
            keys: list[str | int] = ["cases", index, *([key] if key else [])]
            return locate(message, keys) if locate else ConfigError(
                message, where, None, f"cases[{index}]" + (f".{key}" if key else ""))

        raw_id = fields.get("id")
        if not is_name(raw_id):
            raise fail(f"a case id must be a string or a number, not "
                       f"{type(raw_id).__name__}", "id")
        if raw_id is not None and str(raw_id) != "":
            case_id = str(raw_id)
            if case_id in seen:
                raise fail(f"duplicate case id {case_id!r}", None if path else "id")
        else:
            try:
                case_id = content_id(fields)
            except RecursionError:
                raise ConfigError("a case is nested too deeply", where, lineno) from None
            if case_id in seen:  # identical rows stay distinct cases
                case_id = f"{case_id}-{index}"
        seen.add(case_id)
        csv_cells = path is not None and path.suffix.lower() == ".csv"
        variables, reserved = _split(fields, csv_cells, fail)
        yield Case(index, case_id, variables, reserved, lineno)


def count_cases(path: Path | None = None, inline: list[dict[str, Any]] | None = None,
                limit: int | None = None, *,
                locate: Callable[[str, list[str | int]], ConfigError] | None = None) -> int:
    """How many cases :func:`iter_cases` yields, for progress and dry runs.

    The file is read with every check :func:`iter_cases` makes, so the count always
    agrees with it, and a bad file fails here, before any request is sent.

    Raises:
        ConfigError: as :func:`iter_cases`.
    """
    return sum(1 for _ in iter_cases(path, inline, limit, locate=locate))
