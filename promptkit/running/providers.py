"""Providers: the OpenAI-compatible endpoints (or the bundled local model) an eval asks.

:class:`Provider` is one entry of an eval's ``providers:`` (and ``graders:``), validated
strictly; its API key is read from the environment only when a run needs it and never
shown, and a value that looks like a key where a variable name belongs is refused
without being repeated.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..templates import PromptTemplate

Api = Literal["chat", "completions"]
# How a template's `output` schema is asked for: OpenAI's strict json_schema response
# format, llama-cpp-python's chat form ({type: json_object, schema}), a GBNF grammar
# (llama.cpp servers, /v1/completions too), or not at all.
StructuredOutput = Literal["json_schema", "json_object", "grammar", "none"]
LOCAL = "local"
# How fast a run goes, not what it asks: changing these does not change a spec's identity.
# (structured_output is not one: it changes what the model is asked.)
RUNTIME_KNOBS = ("concurrency", "timeout", "total_timeout", "retries", "stream", "headers",
                 "batch")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What API keys look like (never echoed back in an error): a vendor's prefix, or a long run
# of letters mixed with digits. Variable names are words joined by underscores
# (ANTHROPIC_API_KEY, HF_TOKEN, OPENAI_API_KEY_2).
_KEY_PREFIX = re.compile(r"^(sk-|sk_(live|test)_|pk_(live|test)_|rk_(live|test)_|gsk_|xai-|"
                         r"hf_[A-Za-z]|gh[pousr]_|github_pat_|glpat-|AIza|(AKIA|ASIA)[A-Z0-9]{16})")
_KEY_PIECE = re.compile(r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{16,}")


def _header_safe(text: str) -> bool:
    return text.isascii() and text.isprintable()


def check_base_url(url: str, key: str = "base_url") -> None:
    """Refuse a base URL the HTTP client could not use, without repeating its password.
    ``key`` names it in the message (``base_url[1]`` for a replica).

    Raises:
        ValueError: not http(s), no host, a bad port or a malformed address.
    """
    from ..redact import strip_userinfo

    shown = repr(strip_userinfo(url))
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{key} {shown} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{key} must start with http:// or https://, got {shown}")
    if not parts.hostname:
        raise ValueError(f"{key} {shown} names no host")
    if port == 0:
        raise ValueError(f"{key} {shown}: port 0 is not a port to connect to")
    if not _header_safe(url) or any(c.isspace() for c in url):
        raise ValueError(f"{key} {shown} holds spaces, control or non-ASCII characters")


def check_replicas(urls: list[str]) -> None:
    """Refuse a list of replicas that is empty, holds a URL :func:`check_base_url`
    refuses (named by its index) or holds one endpoint twice (userinfo and a trailing
    slash aside).

    Raises:
        ValueError: naming ``base_url``; no password is repeated.
    """
    from ..redact import strip_userinfo

    if not urls:
        raise ValueError("base_url is an empty list: give one URL, or a list of the "
                         "replicas of one model")
    seen: set[str] = set()
    for index, url in enumerate(urls):
        check_base_url(url, f"base_url[{index}]")
        shown = strip_userinfo(url).rstrip("/")
        if shown in seen:
            raise ValueError(f"base_url lists {shown!r} twice: each replica once")
        seen.add(shown)


def check_env_name(value: str | None, where: str = "api_key_env") -> None:
    """Refuse an ``api_key_env`` that is not an environment variable name, without ever
    repeating the value (a key pasted in its place must not reach a log).

    Raises:
        ValueError: empty, not a valid name, or looks like a key.
    """
    if value is None:
        return
    if not value:
        raise ValueError(f"{where} is empty; give the name of the environment variable that "
                         "holds the key (e.g. OPENAI_API_KEY), or leave it out")
    if _KEY_PREFIX.match(value) or _KEY_PIECE.search(value) or (
            len(value) >= 32 and not value.isupper()):
        raise ValueError(f"{where} looks like an API key, not the name of an environment "
                         "variable; put the key in a variable (export OPENAI_API_KEY=...) "
                         "and name the variable here. The value is not shown.")
    if not ENV_NAME.fullmatch(value):
        raise ValueError(f"{where} must be the name of an environment variable (letters, "
                         "digits and _, e.g. OPENAI_API_KEY); the value given is not one "
                         "and is not shown")


class Price(BaseModel):
    """What a provider's answers cost in USD: per million tokens (input_per_mtok,
    output_per_mtok), or per hour the provider is busy (per_hour, a self-hosted GPU), not
    both.

    A cost by the hour is known only once the run is over, so :meth:`cost` gives ``None``
    for it; the leaderboard works it out from the stored results: the provider's busy
    time (the union of its requests' intervals) × the rate, shared among its results by
    latency (``promptkit.reporting.summary.HourlyCost``).
    """

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    per_hour: float | None = Field(None, gt=0, le=1_000_000, allow_inf_nan=False,
                                   strict=True, description=(
        "USD per hour the provider is busy (a self-hosted GPU), instead of token prices."))

    @field_validator("per_hour", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # strict: a YAML number, never true or "2"
        if value is None:  # written as per_hour: null
            raise ValueError("per_hour needs a number of USD per hour (leave price out "
                             "for an unpriced provider)")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Price:
        tokens = {"input_per_mtok", "output_per_mtok"} & self.model_fields_set
        if self.per_hour is not None and tokens:
            raise ValueError(f"per_hour cannot be combined with {' or '.join(sorted(tokens))}: "
                             "price a provider by the hour or by its tokens, not both")
        return self

    @model_serializer(mode="wrap")
    def _one_kind_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A price by the hour is stored as such; a token price as before (per_hour left
        # out), so the spec hash of an eval priced by tokens does not change.
        data = handler(self)
        if self.per_hour is None:
            data.pop("per_hour", None)
            return data
        return {"per_hour": self.per_hour}

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        """The token cost of an answer; ``None`` when priced by the hour."""
        if self.per_hour is not None:
            return None
        return ((input_tokens or 0) * self.input_per_mtok
                + (output_tokens or 0) * self.output_per_mtok) / 1e6


class Provider(BaseModel):
    """One OpenAI-compatible endpoint and model.

    ``local`` (or ``local:/path/model.gguf``) as a plain string means the embedded
    llama.cpp server; every other provider names ``base_url`` and ``model``.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = ""
    base_url: str | list[str] | None = Field(None, description=(
        "The OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1; or a list of "
        "replicas of one model, each request sent to the least-loaded healthy one. A "
        "list is not part of the spec's identity (--resume continues after a replica is "
        "added or removed) and its answers are cached under replicas:<model>, shared by "
        "any set of replicas serving that model; a single URL is part of both."))
    model: str | None = None
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key. The key's "
        "value is never written anywhere.")
    api: Api = "chat"
    concurrency: int = Field(8, ge=1, le=1024)
    stream: bool = Field(True, description="Stream responses to measure time to first token; "
                         "false for servers without server-sent events.")
    timeout: float = Field(60.0, gt=0, description="Seconds per attempt.")
    total_timeout: float | None = Field(None, gt=0, description="Seconds per case, retries "
                                        "included (default: no limit beyond retries).")
    retries: int = Field(4, ge=0, le=20)
    params: dict[str, Any] = Field(default_factory=dict)
    price: Price | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    local_model: str | None = Field(None, description="Set by `local:/path/model.gguf`.")
    batch: bool = Field(False, description="Send the requests as OpenAI-style Batch jobs "
                        "(/v1/files and /v1/batches): half the price at OpenAI, answers "
                        "within the batch window; a runtime setting (the spec stays the same "
                        "for --resume).")
    structured_output: StructuredOutput | None = Field(
        None, description="How a template's `output` schema is sent: json_schema "
        "(response_format, the default for endpoints), json_object (llama-cpp-python's chat "
        "API), grammar (a GBNF grammar built from the schema, the default for local) or "
        "none.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            name, _, path = value.partition(":")
            if name != LOCAL:
                raise ValueError(
                    "a provider given as a string must be 'local' or 'local:/path/model.gguf'; "
                    "give others as a mapping with base_url and model")
            return {"id": value, "local_model": path or None, "api": "completions"}
        return value

    @field_validator("headers")
    @classmethod
    def _header_values(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not _header_safe(name) or not _header_safe(header.strip()):
                raise ValueError(f"header {name!r}: names and values must be printable "
                                 "ASCII (no control characters); the value is not shown")
        return {name: header.strip() for name, header in value.items()}

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _env_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            check_env_name(value)
        return value

    @model_validator(mode="after")
    def _complete(self) -> Provider:
        if self.structured_output == "grammar" and not self.is_local and \
                importlib.util.find_spec("llama_cpp") is None:
            raise ValueError(GRAMMAR_NEEDS_LLAMA_CPP)
        if self.is_local:
            self.id = self.id or LOCAL
            return self
        if not self.base_url and not isinstance(self.base_url, list):
            raise ValueError("base_url is required (an OpenAI-compatible endpoint, e.g. "
                             "http://127.0.0.1:8080/v1)")
        if not self.model:
            raise ValueError("model is required")
        if isinstance(self.base_url, str):
            check_base_url(self.base_url)
        else:
            check_replicas(self.base_url)
        if self.api_key_env and any("@" in urlsplit(url).netloc for url in self.replicas):
            raise ValueError("base_url carries user:password credentials and api_key_env "
                             "names a key: an endpoint takes one or the other (the URL's "
                             "credentials would replace the key)")
        self.id = self.id or self.model
        return self

    @property
    def is_local(self) -> bool:
        return self.id.startswith(LOCAL) and self.base_url is None

    @property
    def replicas(self) -> list[str]:
        """The endpoint URLs: ``base_url`` as a list (one URL for a string, none for
        ``local``). Where one URL is needed, the first is it."""
        if self.base_url is None:
            return []
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    @property
    def replicas_key(self) -> str | None:
        """What stands for the endpoint in a cache key when ``base_url`` is a list:
        ``replicas:`` and the model, whichever replicas serve it; ``None`` for one URL
        (the URL is its key)."""
        return f"replicas:{self.model}" if isinstance(self.base_url, list) else None

    @property
    def output_mode(self) -> StructuredOutput:
        """``structured_output``, or its default: ``grammar`` for local, else
        ``json_schema``."""
        return self.structured_output or ("grammar" if self.is_local else "json_schema")

    def api_key(self) -> str:
        """The key from the environment ('unused' when none is configured).

        Surrounding whitespace is dropped (a ``.env`` file saved with CRLF line ends leaves
        a ``\r``); a key with other characters an HTTP header cannot carry is refused.

        Raises:
            ConfigError: the variable is unset, empty or holds an unusable value (which
                is never shown).
        """
        if not self.api_key_env:
            return "unused"
        value = os.environ.get(self.api_key_env, "").strip()
        if not value:
            raise ConfigError(f"environment variable {self.api_key_env} is not set",
                              key_path=f"providers.{self.id}.api_key_env")
        if not _header_safe(value):
            raise ConfigError(f"environment variable {self.api_key_env} holds characters an "
                              "HTTP header cannot carry (control characters or non-ASCII); "
                              "the value is not shown",
                              key_path=f"providers.{self.id}.api_key_env")
        return value


GRAMMAR_NEEDS_LLAMA_CPP = (
    "structured_output: grammar builds a GBNF grammar from the output schema with "
    "llama-cpp-python, which is not installed: pip install -e \".[local]\" (or set "
    "structured_output to json_schema, json_object or none)")


def request_params(api: Api, *sources: Mapping[str, Any]) -> dict[str, Any]:
    """Model params as a request body carries them: ``sources`` merged in order (later
    wins), the entries of an ``extra_body`` mapping among them at the top level (a body
    posted as JSON has no ``extra_body``), and without what the request itself decides:
    ``stream`` and ``stream_options`` (the client streams per the provider), and on the
    completions API the tool params (``tools``, ``tool_choice``, ``parallel_tool_calls``),
    as no tools are sent there."""
    params: dict[str, Any] = {}
    for source in sources:
        extra = source.get("extra_body")
        if not isinstance(extra, dict):
            params.update(source)
            continue
        params.update({k: v for k, v in source.items() if k != "extra_body"})
        params.update(extra)
    left_out = {"stream", "stream_options"}
    if api != "chat":
        left_out |= {"tools", "tool_choice", "parallel_tool_calls"}
    return {k: v for k, v in params.items() if k not in left_out}


def structured_output(provider: Provider, template: PromptTemplate) -> dict[str, Any]:
    """The request body keys that ask ``provider`` for answers fitting the template's
    ``output`` schema, per its ``structured_output`` ({} without a schema). ``json_schema``
    is the template's :attr:`~promptkit.templates.PromptTemplate.response_format`, strict
    only when the schema fits OpenAI's strict mode.

    Raises:
        ConfigError: ``grammar`` without llama-cpp-python, or a schema its converter
            cannot turn into a grammar.
    """
    schema = template.output  # read only: what is sent is copied or serialized
    mode = provider.output_mode
    if schema is None or mode == "none":
        return {}
    if mode == "json_schema":  # strict only when the schema fits strict mode
        return {"response_format": template.response_format}
    if mode == "json_object":
        return {"response_format": {"type": "json_object", "schema": template.output_schema}}
    return {"grammar": gbnf_grammar(json.dumps(schema, ensure_ascii=False),
                                    template.filename)}


LOOSE_CHAR = 'char ::= [^"\\\\]'
STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'


@functools.lru_cache(maxsize=64)
def gbnf_grammar(schema: str, filename: str | None = None) -> str:
    """A GBNF grammar for a JSON Schema (given as JSON text, properties in the order the
    answer should give them), built by llama_cpp (imported only when needed)."""
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError:
        raise ConfigError(GRAMMAR_NEEDS_LLAMA_CPP, filename, key_path="output") from None
    try:
        grammar = json_schema_to_gbnf(schema)
    except Exception as exc:  # the converter raises whatever it meets
        raise ConfigError(f"llama_cpp cannot turn this schema into a grammar "
                          f"({type(exc).__name__}: {exc}); set structured_output: "
                          "json_object or none for this provider", filename,
                          key_path="output") from None
    # Some llama_cpp versions let a string hold raw control characters (a newline), which
    # JSON does not allow: an answer the grammar accepts must parse.
    return grammar.replace(LOOSE_CHAR, STRICT_CHAR)
