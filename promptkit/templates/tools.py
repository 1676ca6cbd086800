"""A template's tools and output schema: their shape, their JSON Schemas, a tools file.

Front matter ``tools:`` is a list of OpenAI tool definitions
(``{type: function, function: {name, description, parameters}}``) or the path, from the
store root, of a YAML or JSON file holding such a list (a file inside the store only, as
``fewshot()`` pools are). ``output:`` is the JSON Schema an answer must follow. Both are
checked when the template loads, so a mistake is an error at its file, line and key
path before any request: every ``parameters`` and the ``output`` are valid JSON Schemas,
function names are unique, and a ``tool_choice`` in ``params`` names a declared tool.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, RootModel, field_validator

from ..config import YamlDocument, format_path, validate
from ..errors import ConfigError, TemplateSecurityError

if TYPE_CHECKING:
    from .store import TemplateStore
    from .template import FrontMatter

# What the OpenAI API accepts as a function name (and a json_schema format's name).
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_CHOICES = ("none", "auto", "required")
TOOLS_FILE_SUFFIXES = (".yaml", ".yml", ".json")


class FunctionDefinition(BaseModel):
    """The ``function`` of a tool definition, as the OpenAI API takes it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _api_name(cls, value: str) -> str:
        if not TOOL_NAME.fullmatch(value):
            raise ValueError("a function name is 1 to 64 letters, digits, _ or - (as the "
                             f"OpenAI API requires), got {value!r}")
        return value


class ToolDefinition(BaseModel):
    """One tool: ``{type: function, function: {...}}``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: FunctionDefinition


class ToolList(RootModel[list[ToolDefinition]]):
    """A tools file: a list of tool definitions."""


class _FrontMatterTools(BaseModel):
    # The front matter's `tools:` list, validated with key paths that start at `tools`.
    tools: list[ToolDefinition]


def schema_problem(schema: Any) -> tuple[str, list[str | int]] | None:
    """Why ``schema`` is not a valid JSON Schema (the message and the path of the bad
    value inside it), or ``None`` when it is valid.

    The schema's ``$schema`` picks the draft; without one, the latest draft applies.
    """
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        return exc.message, list(exc.path)
    except RecursionError:
        return "nested too deeply", []
    return None


def check_schema(schema: Any, doc: YamlDocument, path: Sequence[str | int]) -> None:
    """Refuse an invalid JSON Schema found at ``path`` in ``doc``.

    Raises:
        ConfigError: at the line of the bad value inside the schema.
    """
    problem = schema_problem(schema)
    if problem is not None:
        message, inner = problem
        raise doc.error(f"not a valid JSON Schema: {message}", [*path, *inner])


def template_tools(store: TemplateStore, matter: FrontMatter, doc: YamlDocument | None
                   ) -> tuple[list[dict[str, Any]], str | None]:
    """Check a version's ``output`` and ``tools`` and resolve them.

    Args:
        store: The store (a tools file is looked up from its root).
        matter: The validated front matter.
        doc: The front matter document, for error lines (``None``: no front matter).

    Returns:
        The tool definitions as the API takes them (``[]`` when none), and the tools
        file's path from the store root (``None`` when the list is inline).

    Raises:
        ConfigError: located in the version file, or in the tools file for a problem
            inside it.
    """
    if doc is None:
        return [], None
    if matter.output is not None:
        check_schema(matter.output, doc, ["output"])
    tools_file = None
    if matter.tools is None:
        tools: list[ToolDefinition] = []
    elif isinstance(matter.tools, str):
        tools_file = matter.tools
        tools = read_tools_file(store, tools_file, doc)
    else:
        tools = validate(_FrontMatterTools, doc, {"tools": matter.tools}).tools
        check_tools(tools, doc, ["tools"])
    check_tool_choice(matter.params.get("tool_choice"), tools, doc)
    return [tool.model_dump(exclude_none=True) for tool in tools], tools_file


def check_tools(tools: list[ToolDefinition], doc: YamlDocument, path: list[str | int]
                ) -> None:
    """Function names are unique and every ``parameters`` is a valid JSON Schema.

    Raises:
        ConfigError: at the duplicate name, or at the bad value inside a schema.
    """
    first: dict[str, int] = {}
    for index, tool in enumerate(tools):
        name = tool.function.name
        if name in first:
            raise doc.error(f"duplicate tool name {name!r} (first in "
                            f"{format_path([*path, first[name]])})",
                            [*path, index, "function", "name"])
        first[name] = index
        if tool.function.parameters is not None:
            check_schema(tool.function.parameters, doc, [*path, index, "function", "parameters"])


def check_tool_choice(choice: Any, tools: list[ToolDefinition], doc: YamlDocument) -> None:
    """A ``tool_choice`` in ``params`` is one the API takes and names a declared tool.

    Raises:
        ConfigError: at ``params.tool_choice``.
    """
    if choice is None:
        return
    where = ["params", "tool_choice"]
    names = [tool.function.name for tool in tools]
    if not names:
        raise doc.error("tool_choice is set but the template declares no tools", where)
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise doc.error(f"must be one of {', '.join(TOOL_CHOICES)} or "
                            "{type: function, function: {name: ...}}", where)
        return
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or name is None:
        raise doc.error("must be one of none, auto, required or "
                        "{type: function, function: {name: ...}}", where)
    if name not in names:
        raise doc.error(f"names tool {name!r}, which the template does not declare "
                        f"(tools: {', '.join(names)})", [*where, "function", "name"])


def read_tools_file(store: TemplateStore, relpath: str, doc: YamlDocument
                    ) -> list[ToolDefinition]:
    """The tool definitions of a tools file inside the store, checked.

    Raises:
        ConfigError: at the version's ``tools:`` line when the file is outside the
            store, missing or not YAML/JSON; in the tools file for what is wrong in it.
    """
    try:
        path = store.loader.resolve(relpath)
    except TemplateSecurityError:
        raise doc.error(f"tools file {relpath!r} is outside the template store; give a "
                        "path inside it, from the store root", ["tools"]) from None
    except jinja2.TemplateNotFound:
        raise doc.error(f"tools file {relpath!r} not found in the template store "
                        f"{store.loader.display_root}", ["tools"]) from None
    if path.suffix.lower() not in TOOLS_FILE_SUFFIXES:
        raise doc.error(f"tools file {relpath!r} must be YAML (.yaml, .yml) or JSON (.json)",
                        ["tools"])
    from .template import decode_text

    filename = store.loader.display_name(relpath)
    text = decode_text(path.read_bytes(), filename, ConfigError)
    file_doc = _json_document(text, filename) if path.suffix.lower() == ".json" \
        else YamlDocument(text, filename)
    if not isinstance(file_doc.data, list):
        raise ConfigError("a tools file holds a list of tool definitions "
                          "({type: function, function: {name, description, parameters}})",
                          filename, 1)
    tools = validate(ToolList, file_doc).root
    check_tools(tools, file_doc, [])
    return tools


def _json_document(text: str, filename: str) -> YamlDocument:
    """A JSON file as a document that can locate key paths.

    The data is JSON's; the lines come from reading the text as YAML (JSON is YAML's
    flow syntax), with tabs, which JSON allows only between tokens, read as spaces.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg}", filename, exc.lineno) from None
    doc = YamlDocument(text.replace("\t", " "), filename)  # and a key written twice
    doc.data = data  # JSON's reading of escapes (surrogate pairs) is the one that counts
    return doc
