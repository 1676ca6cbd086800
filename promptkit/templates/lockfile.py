"""``promptkit.lock``: the sha256 of every template file, and the store's health check.

Versions are immutable: once locked, a version file may not change; a new prompt
is a new version. The lock also covers shared partials (any ``*.jinja`` under the
store), since they change what the versions render, and the data files versions read
(tools files, ``fewshot()`` pools: every ``*.json``, ``*.yaml``, ``*.yml``, ``*.jsonl``
and ``*.csv`` under the store), since they change what the versions ask. Labels
(``<template>/labels.yaml``) are not locked: moving a label is how a release happens.
A lock written before data files were locked reads as it is: its store's data files
are reported as not locked yet, as a new version is.

The lock is JSON, sorted, one file per line, so a diff shows what was added::

    {"format": 1, "files": {"summarize/v1.jinja": "9f2c...", ...}}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from ..errors import PromptkitError, TemplateError, TemplateLockError
from .store import LABELS_FILE, VERSION_FILE, TemplateStore, decode_text

LOCK_NAME = "promptkit.lock"
LOCK_FORMAT = 1
DATA_SUFFIXES = (".json", ".yaml", ".yml", ".jsonl", ".csv")


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`check`, printed as ``file:line: message``."""

    filename: str
    message: str
    lineno: int | None = None

    def __str__(self) -> str:
        where = f"{self.filename}:{self.lineno}" if self.lineno else self.filename
        return f"{where}: {self.message}"


@dataclass
class LockResult:
    """What :func:`lock` changed."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def lock_path(store: TemplateStore) -> Path:
    return store.root / LOCK_NAME


def read_lock(store: TemplateStore) -> dict[str, str]:
    """The locked hashes by path relative to the store root ({} when there is no lock)."""
    path = lock_path(store)
    if not path.is_file():
        return {}
    display = store.loader.display_name(LOCK_NAME)
    try:
        data = json.loads(decode_text(path.read_bytes(), display, TemplateLockError))
    except json.JSONDecodeError as exc:
        raise TemplateLockError(f"not valid JSON: {exc.msg}", display, exc.lineno) from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise TemplateLockError("expected an object with a 'files' mapping", display)
    return {str(k): str(v) for k, v in files.items()}


def current_hashes(store: TemplateStore) -> dict[str, str]:
    """The sha256 of every locked file under the store (``*.jinja`` and data files), by
    relative path."""
    hashes = {}
    for path in sorted(store.root.rglob("*")):
        relpath = path.relative_to(store.root)
        if path.is_file() and (path.suffix == ".jinja" or _is_data_file(relpath)):
            hashes[relpath.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def _is_data_file(relpath: Path) -> bool:
    """A file versions may read (tools, pools), not a template's labels, nor anything in a
    hidden folder (an editor's or a tool's)."""
    if relpath.suffix.lower() not in DATA_SUFFIXES:
        return False
    if any(part.startswith(".") for part in relpath.parts):
        return False
    return not (len(relpath.parts) == 2 and relpath.name == LABELS_FILE)


def changed_files(store: TemplateStore) -> tuple[list[str], list[str], list[str]]:
    """Locked files whose content changed, locked files now missing, unlocked files."""
    locked = read_lock(store)
    current = current_hashes(store)
    changed = [p for p, digest in locked.items() if p in current and current[p] != digest]
    missing = [p for p in locked if p not in current]
    new = [p for p in current if p not in locked]
    return sorted(changed), sorted(missing), sorted(new)


def lock(store: TemplateStore, only: Collection[str] | None = None) -> LockResult:
    """Record new template files in the lock; drop entries of deleted files.

    With ``only`` (paths relative to the store root), record just those new files and
    leave every other entry as it was.

    Raises:
        TemplateLockError: a locked file changed; versions are immutable, so the
            lock is left as it was.
    """
    changed, missing, new = changed_files(store)
    if only is not None:
        # the other entries stay as they are, even a changed one (check reports it)
        new, missing, changed = [p for p in new if p in only], [], []
    if changed:
        names = ", ".join(store.loader.display_name(p) for p in changed)
        raise TemplateLockError(
            f"refusing to re-hash changed locked file(s): {names}; versions are immutable, "
            "restore them and put the change in a new version"
        )
    current = current_hashes(store)
    locked = read_lock(store)
    files = {p: d for p, d in locked.items() if p not in missing}
    files.update({p: current[p] for p in new})
    text = json.dumps({"format": LOCK_FORMAT, "files": dict(sorted(files.items()))}, indent=2)
    lock_path(store).write_text(text + "\n", encoding="utf-8")
    return LockResult(added=new, removed=missing)


def check(store: TemplateStore) -> list[Problem]:
    """Everything wrong with a store, without rendering anything.

    Finds: locked files that changed or vanished, files not yet locked, front
    matter and Jinja syntax errors (in versions and in shared partials), files
    that are not UTF-8, invalid tools (in front matter or a tools file) and
    ``output`` schemas, variables the body uses but the front matter does not
    declare (and the reverse), and labels pointing nowhere.
    """
    display = store.loader.display_name
    problems: list[Problem] = []
    try:
        changed, missing, new = changed_files(store)
    except TemplateLockError as exc:
        return [Problem(exc.filename or display(LOCK_NAME), exc.message, exc.lineno)]
    problems += [Problem(display(p), _changed(p)) for p in changed]
    problems += [Problem(display(p), "locked but missing") for p in missing]
    problems += [
        Problem(display(p), "not locked yet: run `promptkit templates lock`") for p in new
    ]
    for name in store.names():
        try:
            store.labels(name)
        except PromptkitError as exc:
            problems.append(_problem(exc, display(name)))
        for version in store.versions(name):
            problems += _check_version(store, name, version)
    for relpath in _partials(store):
        problems += _check_partial(store, relpath)
    return problems


def _changed(relpath: str) -> str:
    if relpath.endswith(".jinja"):
        return ("changed since it was locked; versions are immutable, restore it and create "
                "a new version instead")
    return ("changed since it was locked; the versions that read it would ask something "
            "else: restore it, and put the change in a new file read by a new version")


def _partials(store: TemplateStore) -> list[str]:
    """Shared ``*.jinja`` files: every one that is not a version of a template."""
    names = set(store.names())
    found = []
    for path in sorted(store.root.rglob("*.jinja")):
        relpath = path.relative_to(store.root)
        is_version = (len(relpath.parts) == 2 and relpath.parts[0] in names
                      and VERSION_FILE.match(relpath.name))
        if path.is_file() and not is_version:
            found.append(relpath.as_posix())
    return found


def _check_partial(store: TemplateStore, relpath: str) -> list[Problem]:
    display = store.loader.display_name(relpath)
    try:
        body, _, _ = store.loader.get_source(store.env, relpath)
        store.env.parse(body, relpath, display)
    except TemplateError as exc:
        return [_problem(exc, display)]
    except jinja2.TemplateSyntaxError as exc:
        return [Problem(display, exc.message or "syntax error", exc.lineno)]
    return []


def _check_version(store: TemplateStore, name: str, version: int) -> list[Problem]:
    try:
        template = store.get(f"{name}@{version}")
        used = template.variables
    except TemplateError as exc:
        return [_problem(exc, store.loader.display_name(f"{name}/v{version}.jinja"))]
    declared = set(template.inputs)
    problems = [
        Problem(template.filename, f"'{var}' is used but not declared in the front matter "
                "inputs", template.first_use(var))
        for var in sorted(used - declared)
    ]
    problems += [
        Problem(template.filename, f"input '{var}' is declared but never used")
        for var in sorted(declared - used)
    ]
    return problems


def _problem(exc: PromptkitError, fallback: str) -> Problem:
    filename = getattr(exc, "filename", None) or fallback
    message = getattr(exc, "message", None) or str(exc)
    key = getattr(exc, "key_path", None)
    return Problem(filename, f"{key}: {message}" if key else message, getattr(exc, "lineno", None))
