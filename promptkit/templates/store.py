"""Versioned prompt templates: loading, references, labels and rendering.

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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2 import meta, nodes
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config import YamlDocument, validate
from ..errors import (
    ConfigError,
    PromptkitError,
    TemplateError,
    TemplateNotFoundError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
)
from .sandbox import (
    DEFAULT_MAX_OPERATIONS,
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_MAX_RANGE_ITEMS,
    PromptEnvironment,
    split_messages,
)

VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.jinja$")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
LABELS_FILE = "labels.yaml"

InputType = Literal["string", "integer", "number", "boolean", "list", "object", "any"]
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list, tuple),
    "object": (dict,),
}


class InputSpec(BaseModel):
    """One declared input of a template."""

    model_config = ConfigDict(extra="forbid")

    type: InputType = "string"
    description: str | None = None
    default: Any = None
    required: bool | None = None

    @property
    def is_required(self) -> bool:
        if self.required is not None:
            return self.required
        return "default" not in self.model_fields_set


class FrontMatter(BaseModel):
    """The YAML header of a version file. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("inputs", mode="before")
    @classmethod
    def _type_shorthand(cls, value: Any) -> Any:
        # `article: string` is short for `article: {type: string}`.
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


def decode_text(raw: bytes, filename: str,
                error: type[TemplateError] | type[ConfigError] = TemplateSyntaxError) -> str:
    """A store file's bytes as text: UTF-8, a leading byte-order mark dropped.

    Raises:
        ``error`` (a template or config error): naming the file and the line of
        the first byte that is not UTF-8.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)",
                    filename, line) from None


def split_front_matter(source: str, filename: str) -> tuple[FrontMatter, str]:
    """Parse the front matter and return it with a Jinja body whose lines match the file.

    The front matter is replaced by a Jinja comment holding the same number of
    newlines, so Jinja's line numbers are the file's line numbers. A leading
    byte-order mark is ignored.
    """
    source = source.removeprefix("\ufeff")
    lines = source.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        return FrontMatter(), source
    for end in range(1, len(lines)):
        if lines[end].rstrip("\r\n") == "---":
            break
    else:
        raise TemplateSyntaxError("front matter opened on line 1 is never closed by '---'",
                                  filename, 1)
    try:
        doc = YamlDocument("".join(lines[1:end]), filename, first_line=2)
        if doc.data is None:
            matter = FrontMatter()
        elif not isinstance(doc.data, dict):
            raise ConfigError("front matter must be a mapping", filename, 2)
        else:
            matter = validate(FrontMatter, doc)
    except ConfigError as exc:
        raise TemplateSyntaxError(
            f"{exc.key_path}: {exc.message}" if exc.key_path else exc.message,
            filename,
            exc.lineno,
        ) from None
    body = "{#" + "\n" * (end + 1) + "#}" + "".join(lines[end + 1 :])
    return matter, body


class StoreLoader(jinja2.BaseLoader):
    """Loads files by path relative to the store root, and nothing outside it.

    ``..`` segments, absolute paths and symlinks that resolve outside the root are
    refused, so ``{% include %}`` cannot read arbitrary files.
    """

    def __init__(self, root: Path, display_root: str):
        self.root = root.resolve()
        self.display_root = display_root

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
        _, body = split_front_matter(decode_text(path.read_bytes(), filename), filename)
        mtime = path.stat().st_mtime_ns
        return body, filename, lambda: path.exists() and path.stat().st_mtime_ns == mtime


@dataclass(frozen=True)
class TemplateInfo:
    """What ``TemplateStore.list()`` reports for one template."""

    name: str
    versions: list[int]
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def latest(self) -> int:
        return self.versions[-1]


class PromptTemplate:
    """One version of one template, ready to render.

    Attributes:
        name: The template's folder name.
        version: The version number (``v2.jinja`` → 2).
        sha256: Hex digest of the version file's bytes, as recorded in the lock.
        inputs: Declared inputs by name.
        params: Default model parameters (temperature, max_tokens, stop, ...).
        output: Optional JSON schema the answer must follow.
    """

    def __init__(self, store: TemplateStore, name: str, version: int):
        self.store = store
        self.name = name
        self.version = version
        self.relpath = f"{name}/v{version}.jinja"
        self.path = store.root / self.relpath
        self.filename = store.loader.display_name(self.relpath)
        raw = self.path.read_bytes()
        self.sha256 = hashlib.sha256(raw).hexdigest()
        self.source = decode_text(raw, self.filename)
        self.front_matter, self.body = split_front_matter(self.source, self.filename)

    def __repr__(self) -> str:
        return f"<PromptTemplate {self.ref} sha256={self.sha256[:12]}>"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def description(self) -> str | None:
        return self.front_matter.description

    @property
    def inputs(self) -> dict[str, InputSpec]:
        return self.front_matter.inputs

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.front_matter.params)

    @property
    def output(self) -> dict[str, Any] | None:
        return self.front_matter.output

    @property
    def tags(self) -> list[str]:
        return list(self.front_matter.tags)

    @cached_property
    def _jinja(self) -> jinja2.Template:
        try:
            return self.store.env.get_template(self.relpath)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSyntaxError(exc.message or "syntax error", self.filename,
                                      exc.lineno) from None

    @cached_property
    def variables(self) -> set[str]:
        """Names the body reads from its inputs (globals such as ``range`` excluded)."""
        return meta.find_undeclared_variables(self._ast) - set(self.store.env.globals)

    @cached_property
    def _ast(self) -> nodes.Template:
        try:
            return self.store.env.parse(self.body, self.relpath, self.filename)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSyntaxError(exc.message or "syntax error", self.filename,
                                      exc.lineno) from None

    def first_use(self, variable: str) -> int | None:
        """The line where the body first reads ``variable``."""
        lines = [n.lineno for n in self._ast.find_all(nodes.Name) if n.name == variable]
        return min(lines) if lines else None

    def prepare(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """Apply defaults, check required inputs and coerce declared types."""
        values = dict(variables)
        for name, spec in self.inputs.items():
            if name not in values:
                if spec.is_required:
                    raise TemplateRenderError(
                        f"'{name}' is undefined (a required input)",
                        self.filename,
                        self.first_use(name),
                    )
                values[name] = spec.default
                continue
            values[name] = _coerce(name, spec, values[name], self.filename)
        return values

    def _render_raw(self, variables: Mapping[str, Any] | None, kwargs: dict[str, Any]) -> str:
        values = self.prepare({**(variables or {}), **kwargs})
        with translate_errors(self.filename):
            return self.store.env.render(self._jinja, values)

    def render(self, variables: Mapping[str, Any] | None = None, /, **kwargs: Any
               ) -> list[dict[str, str]]:
        """Render to chat messages for the openai SDK.

        A body without ``{% message %}`` blocks becomes one user message.

        Raises:
            TemplateRenderError: a variable is missing or invalid, or the output is
                too large; the message names the template file and line.
        """
        rendered = self._render_raw(variables, kwargs)
        messages, outside = split_messages(rendered)
        if not messages:
            return [{"role": "user", "content": outside.strip()}]
        if outside.strip():
            snippet = outside.strip()[:40]
            raise TemplateRenderError(
                f"text outside {{% message %}} blocks: {snippet!r}", self.filename
            )
        return messages

    def render_text(self, variables: Mapping[str, Any] | None = None, /, **kwargs: Any) -> str:
        """Render to one string, for ``/v1/completions`` and base models.

        Message blocks, if any, are joined by blank lines without role names.
        """
        rendered = self._render_raw(variables, kwargs)
        messages, outside = split_messages(rendered)
        if not messages:
            return outside.strip("\n")
        return "\n\n".join(m["content"] for m in messages)


def cot_trigger(lang: str = "en") -> str:
    """Template global: the zero-shot chain-of-thought trigger in ``lang`` (en, zh, ...)."""
    from ..builders.cot import TRIGGERS

    if lang not in TRIGGERS:
        raise TemplateRenderError(f"no chain-of-thought trigger for {lang!r} "
                                  f"(known: {', '.join(TRIGGERS)})")
    return TRIGGERS[lang]


def _coerce(name: str, spec: InputSpec, value: Any, filename: str) -> Any:
    """Check a value against its declared type; parse strings for scalar types."""
    if spec.type == "any" or value is None:
        return value
    expected = _TYPES[spec.type]
    if isinstance(value, bool) and spec.type in ("integer", "number"):
        pass  # bool is an int subclass, but never a number here
    elif isinstance(value, expected):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if spec.type == "integer":
                return int(text)
            if spec.type == "number":
                return float(text)
        except ValueError:
            pass
        if spec.type == "boolean" and text.lower() in ("true", "false", "1", "0", "yes", "no"):
            return text.lower() in ("true", "1", "yes")
    raise TemplateRenderError(
        f"input '{name}' must be {spec.type}, got {type(value).__name__}", filename
    )


def _location(exc: BaseException, default: str) -> tuple[str, int | None]:
    """The innermost template file and line in a rendering traceback.

    Jinja rewrites tracebacks so template frames carry the template's file name and
    line; those frames are the ones it executes with ``__jinja_exception__``.
    """
    filename, line = default, None
    tb = exc.__traceback__
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            filename, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    return filename, line


@contextmanager
def translate_errors(filename: str) -> Iterator[None]:
    """Turn whatever rendering raises into a promptkit error with file and line."""
    try:
        yield
    except TemplateError as exc:
        if exc.filename is None:
            exc.filename, exc.lineno = _location(exc, filename)
            exc.args = (str(exc),)
        raise exc.with_traceback(None) from None
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateSecurityError(str(exc), *_location(exc, filename)) from None
    except jinja2.TemplateSyntaxError as exc:  # in an included file or an inline string
        raise TemplateSyntaxError(exc.message or "syntax error", exc.filename or filename,
                                  exc.lineno) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateNotFoundError(f"included template {exc.name!r} not found",
                                    *_location(exc, filename)) from None
    except jinja2.TemplateError as exc:
        raise TemplateRenderError(str(exc.message or exc), *_location(exc, filename)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateRenderError(f"{type(exc).__name__}: {exc}",
                                  *_location(exc, filename)) from None
    except RecursionError as exc:
        raise TemplateRenderError("recursion too deep: a macro, include or recursive loop "
                                  "nests too far", *_location(exc, filename)) from None
    except MemoryError as exc:
        raise TemplateRenderError("out of memory while rendering",
                                  *_location(exc, filename)) from None


class TemplateStore:
    """A folder of versioned templates.

    Args:
        root: The store folder (``templates/``).
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
            raise TemplateNotFoundError("template store folder not found", str(root))
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

    def list(self) -> list[TemplateInfo]:
        """Every template with its versions and labels."""
        return [TemplateInfo(n, self.versions(n), self.labels(n)) for n in self.names()]

    def _fewshot(self, pool: str, query: Any, k: int = 3, select: str = "similar",
                 **options: Any) -> list[dict[str, Any]]:
        """Template global: ``{% for ex in fewshot("pools/x.jsonl", question, k=2) %}``.

        ``pool`` is a JSONL or CSV file inside the store; ``query`` is the text (or a
        mapping of fields) the examples should resemble. Options are those of
        :func:`promptkit.fewshot.few_shot` (``fields``, ``label``, ``seed``,
        ``mmr_lambda``, ``max_tokens``, ``template``).
        """
        from ..builders.fewshot import few_shot, load_pool

        key = (pool, select, k, tuple(sorted((n, repr(v)) for n, v in options.items())))
        selector = self._selectors.get(key)
        if selector is None:
            rows = load_pool(self.loader.resolve(pool))
            selector = self._selectors[key] = few_shot(rows, k, select, **options)  # type: ignore[arg-type]
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
