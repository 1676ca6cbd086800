"""A template's tools and output schema: their shape, their JSON Schemas, a tools file.

Front matter ``tools:`` is a list of OpenAI tool definitions
(``{type: function, function: {name, description, parameters}}``) or the path, from the
store root, of a YAML or JSON file holding such a list (a file inside the store only, as
``fewshot()`` pools are). ``output:`` is the JSON Schema an answer must follow. Both are
checked when the template loads, so a mistake is an error at its file, line and key
path before any request: every ``parameters`` and the ``output`` are valid JSON Schemas
whose every ``$ref`` leads into the schema itself (nothing is fetched), function names are
unique, a function's ``strict: true`` has parameters OpenAI's strict mode takes, a
``tool_choice`` in ``params`` names a declared tool, ``params`` sets no
``response_format`` beside an ``output`` and its ``extra_body`` is a mapping.

:func:`strict_problem` says whether a schema fits OpenAI's strict mode, which decides the
``strict`` flag of the ``json_schema`` response format built from ``output``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, RootModel, StrictBool, field_validator

from ..config import YamlDocument, format_path, validate
from ..errors import ConfigError, TemplateSecurityError
from ..jsonschemas import unresolved_ref

if TYPE_CHECKING:
    from .store import TemplateStore
    from .template import FrontMatter

# What the OpenAI API accepts as a function name (and a json_schema format's name).
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_CHOICES = ("none", "auto", "required")
TOOLS_FILE_SUFFIXES = (".yaml", ".yml", ".json")
# The most characters front matter or a tools file may hold. Their schemas are checked node
# by node against the JSON Schema metaschema, which takes about 6 s a million characters;
# OpenAI takes at most 5,000 properties in a schema, well under this.
MAX_DEFINITIONS_CHARS = 1_000_000
# How deep a JSON tools file may nest its brackets: far beyond any schema a model API
# takes (OpenAI's: 10 levels of objects), and shallow enough for every parser that reads
# it, which recurse.
MAX_JSON_NESTING = 100
# What OpenAI's strict mode refuses ("'oneOf' is not permitted"): a schema using one of
# these is sent with strict: false.
STRICT_UNSUPPORTED = frozenset({
    "allOf", "oneOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
    "patternProperties", "unevaluatedProperties", "propertyNames", "minProperties",
    "maxProperties", "unevaluatedItems", "contains", "minContains", "maxContains",
    "uniqueItems",
})
# Keywords whose values are subschemas in the part of JSON Schema strict mode takes.
_STRICT_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_STRICT_SCHEMA_LISTS = ("anyOf", "prefixItems", "items")


class FunctionDefinition(BaseModel):
    """The ``function`` of a tool definition, as the OpenAI API takes it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None  # "yes" is not true: the API takes a boolean

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
    """Why ``schema`` is not a valid JSON Schema, or has a ``$ref`` that leads nowhere in
    it (the message and the path of the bad value inside it); ``None`` when it is valid.

    The schema's ``$schema`` picks the draft; without one, the latest draft applies.
    """
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
        return unresolved_ref(schema, allow_metaschemas=False)
    except SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message}", list(exc.path)
    except RecursionError:
        return "not a valid JSON Schema: nested too deeply", []


def strict_problem(schema: Any) -> tuple[str, list[str | int]] | None:
    """Why OpenAI's strict mode would refuse ``schema`` (the reason and the path of the
    subschema at fault), or ``None`` when it takes it.

    Strict mode takes an object at the root, and in every subschema: a ``type`` (or
    ``anyOf``, ``$ref``, ``enum``, ``const``; so no empty schema ``{}`` and no ``true``),
    none of :data:`STRICT_UNSUPPORTED`, and on every object ``additionalProperties:
    false`` with every property listed in ``required``.
    """
    if not isinstance(schema, dict) or _types(schema) != {"object"}:
        return "strict mode needs an object at the root (type: object)", []
    for node, path in _strict_subschemas(schema):
        if not isinstance(node, dict) or not node.keys() & {"type", "anyOf", "$ref", "enum",
                                                            "const"}:
            return ("strict mode needs a type in every schema (this one takes anything)",
                    path)
        unsupported = sorted(node.keys() & STRICT_UNSUPPORTED)
        if unsupported:
            return (f"strict mode does not take {unsupported[0]}", [*path, unsupported[0]])
        if "object" in _types(node) or "properties" in node:
            if node.get("additionalProperties") is not False:
                return "strict mode needs additionalProperties: false on every object", path
            required = set(node.get("required") or [])  # strings, in a valid schema
            missing = [name for name in node.get("properties") or {} if name not in required]
            if missing:
                return (f"strict mode needs every property in required, and {missing[0]!r} "
                        "is not (an optional one is required and nullable: type: [string, "
                        "\"null\"])", path)
    return None


def _types(node: dict[str, Any]) -> set[Any]:
    kind = node.get("type")
    return set(kind) if isinstance(kind, list) else {kind} - {None}


def _strict_subschemas(schema: dict[str, Any]) -> Iterator[tuple[Any, list[str | int]]]:
    """``schema`` and its subschemas under the keywords strict mode takes, with their
    paths (the others are refused where they stand)."""
    pending: list[tuple[Any, list[str | int]]] = [(schema, [])]
    while pending:
        node, path = pending.pop()
        yield node, path
        if not isinstance(node, dict):
            continue
        for key in _STRICT_SCHEMA_MAPS:
            if isinstance(node.get(key), dict):
                pending.extend((sub, [*path, key, name]) for name, sub in node[key].items())
        for key in _STRICT_SCHEMA_LISTS:
            value = node.get(key)
            if isinstance(value, list):
                pending.extend((sub, [*path, key, i]) for i, sub in enumerate(value))
            elif value is not None and key == "items":
                pending.append((value, [*path, key]))


def check_schema(schema: Any, doc: YamlDocument, path: Sequence[str | int]) -> None:
    """Refuse an invalid JSON Schema found at ``path`` in ``doc``.

    Raises:
        ConfigError: at the line of the bad value inside the schema.
    """
    problem = schema_problem(schema)
    if problem is not None:
        message, inner = problem
        raise doc.error(message, [*path, *inner])


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
    check_request_params(matter, doc)
    return [tool.model_dump(exclude_none=True) for tool in tools], tools_file


def check_request_params(matter: FrontMatter, doc: YamlDocument) -> None:
    """``params`` that would clash with the request built from the template: a
    ``response_format`` beside an ``output`` schema (which becomes the response format),
    an ``extra_body`` that is not a mapping or repeats a param set beside it.

    Raises:
        ConfigError: at the param.
    """
    params = matter.params
    if "response_format" in params and matter.output is not None:
        raise doc.error("output already sets the response format (a json_schema built "
                        "from it): keep params.response_format or output, not both",
                        ["params", "response_format"])
    if "extra_body" not in params:
        return
    extra = params["extra_body"]
    if not isinstance(extra, dict):
        raise doc.error("extra_body is a mapping of vendor params sent in the request body "
                        "(top_k: 40, ...)", ["params", "extra_body"])
    for key in extra:
        if key in params:
            raise doc.error(f"{key} is set both in params and in params.extra_body: keep one",
                            ["params", "extra_body", key])


def check_tools(tools: list[ToolDefinition], doc: YamlDocument, path: list[str | int]
                ) -> None:
    """Function names are unique, every ``parameters`` is a valid JSON Schema, and one
    with ``strict: true`` fits OpenAI's strict mode.

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
        parameters = tool.function.parameters
        if parameters is None:
            continue
        where = [*path, index, "function", "parameters"]
        check_schema(parameters, doc, where)
        if tool.function.strict and (problem := strict_problem(parameters)) is not None:
            message, inner = problem
            raise doc.error(f"strict: true, but {message}; set strict: false or fix the "
                            "schema", [*where, *inner])


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
        if (store.loader.root / relpath).is_dir():
            raise doc.error(f"tools {relpath!r} is a folder, not a tools file: name the "
                            "YAML or JSON file in it", ["tools"]) from None
        raise doc.error(f"tools file {relpath!r} not found in the template store "
                        f"{store.loader.display_root}", ["tools"]) from None
    if path.suffix.lower() not in TOOLS_FILE_SUFFIXES:
        raise doc.error(f"tools file {relpath!r} must be YAML (.yaml, .yml) or JSON (.json)",
                        ["tools"])
    from .template import decode_text

    filename = store.loader.display_name(relpath)
    text = decode_text(path.read_bytes(), filename, ConfigError)
    if len(text) > MAX_DEFINITIONS_CHARS:
        raise ConfigError(f"a tools file of {len(text):,} characters is more than the "
                          f"{MAX_DEFINITIONS_CHARS:,} allowed (a tool list that large is "
                          "beyond what model APIs take)", filename, 1)
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
    Brackets nested more than :data:`MAX_JSON_NESTING` deep are refused first, as both
    readers recurse.
    """
    too_deep = _nesting_past(text, MAX_JSON_NESTING)
    if too_deep is not None:
        raise ConfigError(f"not valid JSON: nested too deeply (more than {MAX_JSON_NESTING} "
                          "levels)", filename, too_deep)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg}", filename, exc.lineno) from None
    doc = YamlDocument(text.replace("\t", " "), filename)  # and a key written twice
    doc.data = data  # JSON's reading of escapes (surrogate pairs) is the one that counts
    return doc


# A JSON string (escapes included) or a bracket: what decides the nesting depth.
_JSON_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _nesting_past(text: str, limit: int) -> int | None:
    """The line where JSON ``text`` opens its ``limit + 1``-th nested bracket, or
    ``None`` when it never nests that deep."""
    depth = 0
    for match in _JSON_STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return text.count("\n", 0, match.start()) + 1
        elif token in ("]", "}"):
            depth -= 1
    return None
