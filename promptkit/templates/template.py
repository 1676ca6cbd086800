"""One version of one template: its front matter, inputs, rendering and located errors.

A version file is optional YAML front matter between ``---`` lines, then a Jinja body.
:class:`PromptTemplate` checks and coerces the inputs, renders in the store's sandbox, and
turns whatever rendering raises into a promptkit error with the file and line.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import jinja2
from jinja2 import meta, nodes
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config import YamlDocument, validate
from ..errors import (
    ConfigError,
    TemplateError,
    TemplateNotFoundError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
)
from .messages import split_messages
from .tools import MAX_DEFINITIONS_CHARS, strict_problem, template_tools

if TYPE_CHECKING:
    from .store import TemplateStore

# The body parameters of the OpenAI chat completions API (besides model and messages):
# what request() puts at the top level; any other param goes under extra_body.
OPENAI_CHAT_PARAMS = frozenset({
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
    "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier",
    "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})
# Params request() leaves out: the model, which the caller names, and streaming, the
# caller's choice (create() returns a Stream then; an eval's provider has `stream:`).
NOT_REQUESTED = frozenset({"model", "stream", "stream_options"})

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


class DerivedFrom(BaseModel):
    """Which version a generated version was derived from (``promptkit optimize``)."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class OptimizerRecord(BaseModel):
    """How ``promptkit optimize`` found a version: what it searched, with which seed and
    budget, for which eval and provider, and how the winner and its parent scored on the
    validation and test splits (pass rates, mean scores, the paired test)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["fewshot", "instructions", "both"]
    seed: int
    eval: str
    prompt: str
    provider: str
    split: dict[str, int]
    budget_used: dict[str, float]
    validation: dict[str, Any]
    test: dict[str, Any]


class FrontMatter(BaseModel):
    """The YAML header of a version file. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] | None = None
    tools: list[Any] | str | None = None  # checked in tools.py, where a file is read
    tags: list[str] = Field(default_factory=list)
    derived_from: DerivedFrom | None = None
    optimizer: OptimizerRecord | None = None

    @field_validator("inputs", mode="before")
    @classmethod
    def _type_shorthand(cls, value: Any) -> Any:
        # `article: string` is short for `article: {type: string}`.
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_shape(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, list) and not (
                isinstance(value, str) and value.strip()):
            raise ValueError("tools is a list of tool definitions, or the path of a YAML or "
                             "JSON file of them inside the template store")
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
    matter, body, _ = read_front_matter(source, filename)
    return matter, body


def read_front_matter(source: str, filename: str
                      ) -> tuple[FrontMatter, str, YamlDocument | None]:
    """:func:`split_front_matter`, and the front matter's document (``None`` when the
    file has none), to locate what is checked later."""
    source = source.removeprefix("\ufeff")
    lines = source.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        return FrontMatter(), source, None
    for end in range(1, len(lines)):
        if lines[end].rstrip("\r\n") == "---":
            break
    else:
        raise TemplateSyntaxError("front matter opened on line 1 is never closed by '---'",
                                  filename, 1)
    text = "".join(lines[1:end])
    if len(text) > MAX_DEFINITIONS_CHARS:
        raise TemplateSyntaxError(
            f"front matter of {len(text):,} characters is more than the "
            f"{MAX_DEFINITIONS_CHARS:,} allowed (an output schema or tool list that large is "
            "beyond what model APIs take)", filename, 1)
    with front_matter_errors():
        doc = YamlDocument(text, filename, first_line=2)
        if doc.data is None:
            matter = FrontMatter()
        elif not isinstance(doc.data, dict):
            raise ConfigError("front matter must be a mapping", filename, 2)
        else:
            matter = validate(FrontMatter, doc)
    body = "{#" + "\n" * (end + 1) + "#}" + "".join(lines[end + 1 :])
    return matter, body, doc


@contextmanager
def front_matter_errors() -> Iterator[None]:
    """A config error in front matter (or a file it names) as a located template error."""
    try:
        yield
    except ConfigError as exc:
        raise TemplateSyntaxError(
            f"{exc.key_path}: {exc.message}" if exc.key_path else exc.message,
            exc.filename,
            exc.lineno,
        ) from None


class PromptTemplate:
    """One version of one template, ready to render.

    Attributes:
        name: The template's folder name.
        version: The version number (``v2.jinja`` → 2).
        sha256: Hex digest of the version file's bytes, as recorded in the lock.
        inputs: Declared inputs by name.
        params: Default model parameters (temperature, max_tokens, stop, ...).
        output_schema: Optional JSON Schema the answer must follow (front matter
            ``output``).
        tools: The tool definitions sent with a chat request (``[]`` when none).
        tools_file: The tools file's path from the store root, when ``tools:`` names one.
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
        self.front_matter, self.body, doc = read_front_matter(self.source, self.filename)
        with front_matter_errors():
            self._tools, self.tools_file = template_tools(store, self.front_matter, doc)
        store.loader.bodies[self.relpath] = (self.sha256, self.body)  # read once

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
    def output_schema(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.front_matter.output)

    @property
    def tools(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._tools)

    @property
    def response_format(self) -> dict[str, Any] | None:
        """``output`` as the OpenAI API's ``json_schema`` response format (a new object
        each call).

        ``strict`` is true when the schema fits OpenAI's strict mode (an object at the root;
        ``additionalProperties: false`` on every object, every property in ``required``, a
        type in every subschema, none of the keywords it refuses: see
        :func:`~promptkit.templates.tools.strict_problem`), and false otherwise, so a schema
        strict mode would refuse with a 400 is still asked for, as a hint.
        """
        if self.front_matter.output is None:
            return None
        name = re.sub(r"[^A-Za-z0-9_-]", "_", self.name)[:64]
        return {"type": "json_schema",
                "json_schema": {"name": name, "schema": self.output_schema,
                                "strict": self._strict_output}}

    @cached_property
    def _strict_output(self) -> bool:
        return strict_problem(self.front_matter.output) is None

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

    def bind(self, variables: Mapping[str, Any]) -> dict[str, Any]:
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
        values = self.bind({**(variables or {}), **kwargs})
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

    def request(self, variables: Mapping[str, Any] | None = None, /, **kwargs: Any
                ) -> dict[str, Any]:
        """Everything a chat request needs but the model, for the openai SDK as is::

            client.chat.completions.create(model="gpt-4o-mini", **t.request(article=...))

        Returns:
            ``messages`` (as :meth:`render` gives them), ``tools`` (when the template
            declares any), ``response_format`` (a ``json_schema`` from ``output``, when
            set: see :attr:`response_format`), then the template's ``params``: the OpenAI
            API's own (``temperature``, ``tool_choice``, ...) at the top level, any other
            (a vendor's, such as ``top_k``, and those of a ``params.extra_body``) under
            ``extra_body``. ``stream`` and ``stream_options`` are left out, so ``create()``
            returns a completion; pass ``stream=True`` to it to stream. New objects each
            call.

        Raises:
            TemplateRenderError: as :meth:`render`.
        """
        request: dict[str, Any] = {"messages": self.render(variables, **kwargs)}
        if self._tools:
            request["tools"] = self.tools
        if self.front_matter.output is not None:
            request["response_format"] = self.response_format
        params = copy.deepcopy(self.front_matter.params)
        vendor = params.pop("extra_body", {})  # a mapping of other keys, checked at load
        for key, value in params.items():
            if key in OPENAI_CHAT_PARAMS:
                request[key] = value
            else:
                vendor[key] = value
        for key in NOT_REQUESTED:
            request.pop(key, None)
            vendor.pop(key, None)
        if vendor:
            request["extra_body"] = vendor
        return request

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
        if exc.filename is not None:
            raise exc.with_traceback(None) from None
        # Raised inside the sandbox, which cannot know where: the same error, located.
        raise type(exc)(exc.message, *_location(exc, filename)) from None
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
