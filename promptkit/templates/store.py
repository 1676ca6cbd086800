"""A folder of versioned prompt templates: loading, references and labels.

A store is a folder with one subfolder per template and one immutable file per
version::

    templates/
      promptkit.lock            sha256 of every version (see lockfile.py)
      summarize/
        v1.jinja                YAML front matter between --- lines, then Jinja
        v2.jinja
        labels.yaml             production: 2

References: ``summarize`` (latest), ``summarize@2`` (exact), ``summarize@production``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from ..config import YamlDocument
from ..errors import (
    ConfigError,
    PromptkitError,
    TemplateError,
    TemplateNotFoundError,
    TemplateRenderError,
    TemplateSecurityError,
)
from ..files import atomic_write
from .sandbox import (
    DEFAULT_MAX_OPERATIONS,
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_MAX_RANGE_ITEMS,
    PromptEnvironment,
)
from .template import PromptTemplate, decode_text, split_front_matter, translate_errors

VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.jinja$")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
LABELS_FILE = "labels.yaml"

class StoreLoader(jinja2.BaseLoader):
    """Loads files by path relative to the store root, and nothing outside it.

    ``..`` segments, absolute paths and symlinks that resolve outside the root are
    refused, so ``{% include %}`` cannot read arbitrary files.
    """

    def __init__(self, root: Path, display_root: str):
        self.root = root.resolve()
        self.display_root = display_root
        # Jinja bodies of the versions loaded, by path: sha256 of the file and its body,
        # so a version's front matter (its schemas) is not parsed again to compile it.
        self.bodies: dict[str, tuple[str, str]] = {}

    def display_name(self, name: str) -> str:
        return os.path.join(self.display_root, name)

    def resolve(self, name: str) -> Path:
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or Path(name).is_absolute() or ".." in parts:
            raise TemplateSecurityError(f"template path {name!r} leaves the template store")
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root):
            raise TemplateSecurityError(f"template path {name!r} resolves outside the store")
        if not path.is_file():
            raise jinja2.TemplateNotFound(name)
        return path

    def get_source(self, environment: jinja2.Environment, template: str):
        path = self.resolve(template)
        filename = self.display_name(template)
        mtime = path.stat().st_mtime_ns
        raw = path.read_bytes()
        digest, body = self.bodies.get(template, ("", ""))
        if digest != hashlib.sha256(raw).hexdigest():
            _, body = split_front_matter(decode_text(raw, filename), filename)
        return body, filename, lambda: path.exists() and path.stat().st_mtime_ns == mtime


@dataclass(frozen=True)
class TemplateInfo:
    """What ``TemplateStore.list()`` reports for one template."""

    name: str
    versions: list[int]
    labels: dict[str, int] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)  # the latest version's front matter tags

    @property
    def latest(self) -> int:
        return self.versions[-1]


def cot_trigger(lang: str = "en") -> str:
    """Template global: the zero-shot chain-of-thought trigger in ``lang`` (en, zh, ...)."""
    from ..builders.cot import TRIGGERS

    if lang not in TRIGGERS:
        raise TemplateRenderError(f"no chain-of-thought trigger for {lang!r} "
                                  f"(known: {', '.join(TRIGGERS)})")
    return TRIGGERS[lang]

class TemplateStore:
    """A folder of versioned templates.

    Args:
        root: The store folder (``templates/``). A relative path is relative to the
            working directory, like any path Python opens; an app that may be started
            from anywhere passes ``Path(__file__).parent / "templates"`` or ships its
            templates in a package (:meth:`from_package`).
        max_output_chars: Cap on a rendered prompt's size (and on any value built
            while rendering it).
        max_range_items: Cap on the items ``range()`` may produce in one render.
        max_operations: Budget of loop iterations and calls in one render (see
            :class:`~promptkit.sandbox.PromptEnvironment`).

    Example:
        >>> store = TemplateStore("templates")
        >>> store.get("summarize@production").render(article="...")
    """

    def __init__(self, root: str | os.PathLike[str] = "templates", *,
                 max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
                 max_range_items: int = DEFAULT_MAX_RANGE_ITEMS,
                 max_operations: int = DEFAULT_MAX_OPERATIONS):
        self.root = Path(root)
        if not self.root.is_dir():
            looked = "" if self.root.is_absolute() else f" (looked for {self.root.absolute()})"
            raise TemplateNotFoundError(f"template store folder not found{looked}", str(root))
        self.loader = StoreLoader(self.root, os.path.normpath(str(root)))
        self.env = PromptEnvironment(loader=self.loader, max_output_chars=max_output_chars,
                                     max_range_items=max_range_items,
                                     max_operations=max_operations)
        self._cache: dict[tuple[str, int], PromptTemplate] = {}
        self._inline: dict[str, jinja2.Template] = {}
        self._selectors: dict[tuple[Any, ...], Any] = {}
        self.env.globals["fewshot"] = self._fewshot
        self.env.globals["cot_trigger"] = cot_trigger

    @classmethod
    def from_package(cls, package: str, folder: str = "templates", **options: Any
                     ) -> TemplateStore:
        """Open a store shipped inside an installed Python package."""
        resource = importlib.resources.files(package).joinpath(folder)
        if not isinstance(resource, Path):
            raise PromptkitError(f"{package}/{folder} must be installed as files, not zipped")
        return cls(resource, **options)

    def __repr__(self) -> str:
        return f"TemplateStore({str(self.root)!r})"

    def names(self) -> list[str]:
        """Template names, sorted."""
        return sorted(
            p.name for p in self.root.iterdir()
            if p.is_dir() and NAME.match(p.name) and any(self._version_files(p.name))
        )

    def _version_files(self, name: str):
        folder = self.root / name
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            if match := VERSION_FILE.match(path.name):
                yield int(match.group(1)), path

    def versions(self, name: str) -> list[int]:
        """The version numbers of ``name``, ascending."""
        found = sorted(v for v, _ in self._version_files(name))
        if not found:
            known = ", ".join(self.names()) or "none"
            raise TemplateNotFoundError(f"unknown template '{name}' (known: {known})",
                                        self.loader.display_root)
        return found

    def labels(self, name: str) -> dict[str, int]:
        """Labels of ``name`` from its ``labels.yaml``, validated."""
        path = self.root / name / LABELS_FILE
        if not path.is_file():
            return {}
        filename = self.loader.display_name(f"{name}/{LABELS_FILE}")
        doc = YamlDocument(decode_text(path.read_bytes(), filename, ConfigError), filename)
        if doc.data is None:
            return {}
        if not isinstance(doc.data, dict):
            raise ConfigError("labels must be a mapping of label: version", filename, 1)
        versions = set(self.versions(name))
        labels: dict[str, int] = {}
        for label, target in doc.data.items():
            line = doc.line_of([label])
            number = str(target).removeprefix("v")
            if not isinstance(label, str) or not NAME.match(label) or label.isdigit():
                raise ConfigError("a label must be a name, not a number", filename, line,
                                  str(label))
            if not number.isdigit() or int(number) not in versions:
                raise ConfigError(f"points to version {target!r}, which does not exist",
                                  filename, line, label)
            labels[label] = int(number)
        return labels

    def set_label(self, name: str, label: str, version: int) -> None:
        """Point ``label`` of ``name`` at ``version`` in its ``labels.yaml`` (made when
        missing). A file of plain ``label: N`` lines keeps its other lines and comments;
        any other (flow style, quoted keys) is rewritten as such lines. No version file
        changes; the result is read back, and restored when it does not resolve.

        Raises:
            ConfigError: an invalid label or unknown version; the file is left as it was.
        """
        check_label_name(label)
        if version not in self.versions(name):
            raise ConfigError(f"template {name!r} has no version {version}")
        labels = self.labels(name)  # the current file must be valid before it is edited
        path = self.root / name / LABELS_FILE
        old = path.read_text(encoding="utf-8") if path.is_file() else ""
        with atomic_write(path) as file:
            file.write(_labels_text(old, labels, label, version))
        try:
            if self.labels(name).get(label) != version:
                raise ConfigError(f"{path}: the label did not take")
        except ConfigError:
            with atomic_write(path) as file:
                file.write(old)
            raise

    def resolve(self, ref: str) -> tuple[str, int]:
        """``summarize@production`` → ``("summarize", 2)``."""
        name, _, selector = ref.strip().partition("@")
        if not NAME.match(name):
            raise TemplateNotFoundError(f"invalid template reference {ref!r}")
        versions = self.versions(name)
        if not selector or selector == "latest":
            return name, versions[-1]
        number = selector.removeprefix("v")
        if number.isdigit():
            if int(number) not in versions:
                listed = ", ".join(map(str, versions))
                raise TemplateNotFoundError(
                    f"template '{name}' has no version {number} (versions: {listed})",
                    self.loader.display_name(name),
                )
            return name, int(number)
        labels = self.labels(name)
        if selector not in labels:
            listed = ", ".join(sorted(labels)) or "none"
            raise TemplateNotFoundError(
                f"template '{name}' has no label '{selector}' (labels: {listed})",
                self.loader.display_name(name),
            )
        return name, labels[selector]

    def get(self, ref: str) -> PromptTemplate:
        """Load a template by reference: ``name``, ``name@3`` or ``name@label``."""
        key = self.resolve(ref)
        if key not in self._cache:
            self._cache[key] = PromptTemplate(self, *key)
        return self._cache[key]

    def list(self, tag: str | None = None) -> list[TemplateInfo]:
        """Every template with its versions, labels and tags; with ``tag``, only those
        whose latest version's front matter lists it."""
        infos = []
        for name in self.names():
            versions = self.versions(name)
            try:
                tags = self.get(f"{name}@{versions[-1]}").tags
            except TemplateError:  # `templates check` reports it; the listing goes on
                tags = []
            if tag is None or tag in tags:
                infos.append(TemplateInfo(name, versions, self.labels(name), tags))
        return infos

    @jinja2.pass_context
    def _fewshot(self, context: jinja2.runtime.Context, pool: str, query: Any, k: int = 3,
                 select: str = "similar", **options: Any) -> list[dict[str, Any]]:
        """Template global: ``{% for ex in fewshot("pools/x.jsonl", question, k=2) %}``.

        ``pool`` is a JSONL or CSV file inside the store; ``query`` is the text (or a
        mapping of fields) the examples should resemble. Options are those of
        :func:`promptkit.few_shot`, with its defaults (``fields``, ``label``, ``seed``,
        ``mmr_lambda``, ``budget``, ``format``; without a ``format``, the default of
        :meth:`~promptkit.builders.fewshot_settings.ExampleFormat.of`, as in an eval
        spec). Its warnings name the call and the template it is in (``name=`` says
        otherwise).
        """
        from ..builders.fewshot import few_shot
        from ..builders.pools import load_pool

        where = context.name and self.loader.display_name(context.name)
        name = options.pop("name", None) or (
            f"fewshot({pool!r}) in {where}" if where else f"fewshot({pool!r})")
        key = (name, pool, select, k,
               tuple(sorted((n, repr(v)) for n, v in options.items())))
        selector = self._selectors.get(key)
        if selector is None:
            rows = load_pool(self.loader.resolve(pool))
            selector = self._selectors[key] = few_shot(rows, k, select, name=name,  # type: ignore[arg-type]
                                                       **options)
        if not isinstance(query, Mapping):
            fields = options.get("fields") or [
                name for name, value in (selector.pool[0] if selector.pool else {}).items()
                if isinstance(value, str) and name not in ("id", options.get("label"))]
            query = dict.fromkeys(fields, str(query))
        return selector(query)

    def render_string(self, source: str, variables: Mapping[str, Any]) -> str:
        """Render a short inline template (an assertion's ``expected``) in the sandbox.

        Text without Jinja markup is returned as it is; compiled templates are
        reused, since an eval renders the same few strings for every case.
        """
        if "{{" not in source and "{%" not in source and "{#" not in source:
            return source
        with translate_errors(f"<inline {source[:40]!r}>"):
            template = self._inline.get(source)
            if template is None:
                if len(self._inline) >= 256:
                    self._inline.clear()
                template = self._inline[source] = self.env.from_string(source)
            return self.env.render(template, variables)


def check_label_name(label: str) -> None:
    """A label is a name such as ``production``: not a number, ``latest`` or ``vN`` (a
    reference reads those as versions).

    Raises:
        ConfigError: it is not.
    """
    if not NAME.match(label) or label.isdigit() or label == "latest" or \
            re.fullmatch(r"v[0-9]+", label):
        raise ConfigError(f"invalid label {label!r}: a label is a name such as production "
                          "(not a number, latest or vN, which a reference reads as versions)")


def _labels_text(old: str, labels: dict[str, int], label: str, version: int) -> str:
    """``labels.yaml`` with ``label`` at ``version``: the line edited in place when every
    entry is a plain ``label: N`` line (comments kept), else every entry written so."""
    lines = old.splitlines()
    plain = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*:\s*v?[0-9]+\s*(#.*)?$")
    entries = [plain.match(line) for line in lines if line.strip()
               and not line.lstrip().startswith("#")]
    if all(entries) and {m.group(1) for m in entries if m} == set(labels):
        at = next((i for i, line in enumerate(lines) if (m := plain.match(line))
                   and m.group(1) == label), None)
        if at is None:
            lines.append(f"{label}: {version}")
        else:
            comment = plain.match(lines[at]).group(2)  # type: ignore[union-attr]
            lines[at] = f"{label}: {version}" + (f"  {comment}" if comment else "")
        return "\n".join(lines) + "\n"
    labels = {**labels, label: version}
    return "".join(f"{name}: {number}\n" for name, number in labels.items())
