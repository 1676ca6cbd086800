"""Candidates as version files, and the winner written as the template's next version.

A candidate is its parent version with another body (a rewritten instruction) and/or other
few-shot examples (the default of the parent's examples input). It is written as a real
version file, first into a scratch copy of the store (where the runner evaluates it like
any version) and, for the winner, into the store itself: plain Jinja that renders exactly
what was evaluated, with the provenance in its front matter (``derived_from`` and
``optimizer``), recorded in the lock, and promoted to a label only when asked.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import OutputError
from ..templates.lockfile import lock
from ..templates.store import TemplateStore
from ..templates.template import PromptTemplate, read_front_matter

# The scratch store's template through which the proposer is asked (one message).
PROPOSER_TEMPLATE = "_optimize_proposer"
PROPOSER_SOURCE = """---
description: A request to the optimizer's proposer model.
inputs:
  request: {type: string}
---
{% message "user" %}{{ request }}{% endmessage %}
"""


@dataclass(frozen=True)
class Candidate:
    """One prompt the search considers.

    Attributes:
        key: Its id in the search (``start``, ``f3``, ``i2``), also its prompt id in runs.
        body: The Jinja body (the parent's, or a rewrite of it).
        examples: The few-shot examples it shows, or None to keep the parent's.
        origin: How it was made (``start``, ``random``, ``greedy``, ``proposed``).
    """

    key: str
    body: str
    examples: tuple[dict[str, Any], ...] | None = None
    origin: str = "start"


def front_matter_data(template: PromptTemplate) -> dict[str, Any]:
    """The parent's front matter as plain data (comments are not kept)."""
    _, _, doc = read_front_matter(template.source, template.filename)
    data = dict(doc.data) if doc is not None and isinstance(doc.data, dict) else {}
    data.pop("derived_from", None)
    data.pop("optimizer", None)
    return data


def version_source(parent: PromptTemplate, candidate: Candidate, examples_var: str | None,
                   provenance: dict[str, Any] | None = None) -> str:
    """The text of a version file for ``candidate``: the parent's front matter with the
    chosen examples as the default of ``examples_var``, the provenance keys when given,
    then the body (without the comment that stands in for the parent's front matter)."""
    data = front_matter_data(parent)
    if candidate.examples is not None and examples_var is not None:
        inputs = dict(data.get("inputs") or {})
        spec = inputs.get(examples_var)
        spec = dict(spec) if isinstance(spec, dict) else {"type": spec or "list"}
        spec["default"] = [dict(example) for example in candidate.examples]
        spec.pop("required", None)
        inputs[examples_var] = spec
        data["inputs"] = inputs
    if provenance:
        data.update(provenance)
    header = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=88)
    return f"---\n{header}---\n{strip_header_comment(candidate.body)}"


class _Dumper(yaml.SafeDumper):
    """YAML as people write it: a short string holding a newline (a stop sequence) is
    written double-quoted with ``\\n``, not folded over lines."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if "\n" in value and len(value) < 40 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def strip_header_comment(body: str) -> str:
    """A loaded body starts with a Jinja comment of newlines standing in for its front
    matter (so line numbers match the file); a new file gets its own front matter."""
    if body.startswith("{#"):
        end = body.find("#}")
        if end > 0 and not body[2:end].strip():
            return body[end + 2:]
    return body


class ScratchStore:
    """A copy of the template store where candidates are written as versions of the
    parent's template (numbered after the store's last version), so the runner loads and
    renders them exactly as it would the written winner."""

    def __init__(self, store: TemplateStore, folder: Path, name: str):
        self.folder = folder
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(store.root, folder, symlinks=True,
                        ignore=shutil.ignore_patterns(".promptkit", ".git"))
        (folder / PROPOSER_TEMPLATE).mkdir(exist_ok=True)
        (folder / PROPOSER_TEMPLATE / "v1.jinja").write_text(PROPOSER_SOURCE, encoding="utf-8")
        self.store = TemplateStore(folder)
        self.name = name
        self.next_version = max(self.store.versions(name)) + 1
        self.versions: dict[str, int] = {}

    def reference(self, parent: PromptTemplate, candidate: Candidate,
                  examples_var: str | None) -> str:
        """The reference (``name@N``) of ``candidate`` in the scratch store, written on
        first use."""
        if candidate.key not in self.versions:
            path = self.folder / self.name / f"v{self.next_version}.jinja"
            path.write_text(version_source(parent, candidate, examples_var), encoding="utf-8")
            self.versions[candidate.key] = self.next_version
            self.next_version += 1
        return f"{self.name}@{self.versions[candidate.key]}"


def write_winner(store: TemplateStore, parent: PromptTemplate, candidate: Candidate,
                 examples_var: str | None, provenance: dict[str, Any]) -> PromptTemplate:
    """Write ``candidate`` as the next version of the parent's template and lock it.

    The file is created exclusively (a version written meanwhile by someone else is never
    overwritten) and checked by loading it before the lock records it.

    Raises:
        OutputError: the file cannot be written (exit 3); nothing is left half-written.
    """
    name = parent.name
    version = max(store.versions(name)) + 1
    relpath = f"{name}/v{version}.jinja"
    path = store.root / relpath
    text = version_source(parent, candidate, examples_var, {
        "derived_from": {"version": parent.version, "sha256": parent.sha256}, **provenance})
    try:
        with open(path, "x", encoding="utf-8", newline="\n") as file:
            file.write(text)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        written = TemplateStore(store.root).get(f"{name}@{version}")
        lock(store, only=[relpath])
    except BaseException:
        os.unlink(path)  # a version that does not load or lock is not left behind
        raise
    return written
