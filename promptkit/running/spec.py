"""Eval specs: the YAML file that says which prompts, providers, data and checks to run.

Validated once, strictly (pydantic, ``extra="forbid"``); every error names the file,
the line and the key path, e.g. ``evals/x.yaml:12: providers[1].base_url: ...``.
``promptkit schema`` prints :func:`json_schema` for editors.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..builders.cot import CotSettings
from ..builders.fewshot_settings import FewShotSettings
from ..config import YamlDocument, read_text, validate
from ..datasets import is_name
from ..errors import ConfigError
from ..scoring.assertion import Assertion
from ..scoring.registry import import_plugins
from .providers import LOCAL, RUNTIME_KNOBS, Api, Price, Provider

# How much one invocation may spend, not what it asks: not part of a spec's identity, so a
# run resumes under another budget.
RUNTIME_KEYS = ("max_requests", "max_cost")

# Provider and Price live in .providers; the spec re-exports them for its callers.
__all__ = ["LOCAL", "RUNTIME_KEYS", "RUNTIME_KNOBS", "EvalSpec", "LoadedSpec", "Price",
           "PromptVariant", "Provider", "apply_overrides", "json_schema", "load_spec"]


class PromptVariant(BaseModel):
    """A template reference plus what this variant changes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = ""
    template: str
    params: dict[str, Any] = Field(default_factory=dict, description="Override model params.")
    vars: dict[str, Any] = Field(default_factory=dict, description="Extra template variables.")
    fewshot: FewShotSettings | None = None
    cot: CotSettings | None = None
    assert_: list[Assertion] = Field(default_factory=list, alias="assert", description=(
        "Assertions of this variant only, added to the spec's (see assert_mode)."))
    assert_mode: Literal["add", "replace"] = Field("add", description=(
        "add: the spec's assertions, then this variant's; replace: this variant's only."))
    max_turns: int | None = Field(None, ge=1, le=100, description=(
        "Requests per conversation case for this variant (default: the spec's)."))

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"template": value} if isinstance(value, str) else value

    @field_validator("fewshot")
    @classmethod
    def _pool_is_a_file(cls, value: FewShotSettings | None) -> FewShotSettings | None:
        if value is not None and not isinstance(value.pool, str):
            raise ValueError("pool: give the JSONL or CSV file of examples, relative to "
                             "the spec")
        return value

    @model_validator(mode="after")
    def _default_id(self) -> PromptVariant:
        self.id = self.id or self.template
        if self.assert_mode == "replace" and not self.assert_:
            raise ValueError("assert_mode: replace needs this prompt's own assert list; "
                             "with none, every case would pass unchecked")
        return self


class GateSpec(BaseModel):
    """``gate:``: which prompt × provider rows the regression verdict and ``--max-drop``
    judge. Exploratory variants left out do not dilute the Holm adjustment; thresholds
    still apply to every row."""

    model_config = ConfigDict(extra="forbid")

    prompts: list[str] | None = Field(None, description="Prompt ids that gate (default: all).")
    providers: list[str] | None = Field(None, description="Provider ids that gate (default: "
                                        "all).")

    def selects(self, prompt_id: str, provider_id: str) -> bool:
        return ((self.prompts is None or prompt_id in self.prompts)
                and (self.providers is None or provider_id in self.providers))


class InlineCase(BaseModel):
    """One entry of ``cases:``: template variables, plus reserved keys that configure it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | int | float | None = None
    assert_: list[Assertion] | None = Field(None, alias="assert", description=(
        "Assertions of this case only, added to the variant's."))
    category: str | int | float | None = Field(None, description="The case's group, for "
                                       "per-category leaderboards.")

    @field_validator("id", "category", mode="before")
    @classmethod
    def _a_name(cls, value: Any, info: ValidationInfo) -> Any:
        if not is_name(value):
            what = "case id must be a string" if info.field_name == "id" else \
                "category must be a text"
            raise ValueError(f"a {what} or a number, not {type(value).__name__}")
        return value

    def as_row(self) -> dict[str, Any]:
        """The case as a dataset row (its assertions already validated)."""
        row: dict[str, Any] = dict(self.model_extra or {})
        for key in ("id", "category"):
            if getattr(self, key) is not None:
                row[key] = getattr(self, key)
        if self.assert_ is not None:
            row["assert"] = list(self.assert_)
        return row


class EvalSpec(BaseModel):
    """An eval: prompts × providers × dataset cases × repeats, scored by assertions."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    plugins: list[str] = Field([], description="Modules that register assertion types.")
    templates: str | None = Field(None, description="Template store folder, relative to the "
                                  "spec (default: the nearest templates/ folder upwards).")
    prompts: list[PromptVariant] = Field(min_length=1)
    providers: list[Provider] = Field(min_length=1)
    graders: list[Provider] = Field(default_factory=list, description="Providers used only by "
                                    "llm-judge and similar assertions, not evaluated.")
    dataset: str | None = Field(None, description="JSONL or CSV file, relative to the spec.")
    cases: list[InlineCase] | None = Field(None, description=(
        "Cases written in the spec: their fields are template variables, but the reserved "
        "keys id, assert, turns, tool_results, tool_handler and category."))
    assert_: list[Assertion] = Field(default_factory=list, alias="assert")
    threshold: float | None = Field(None, ge=0, le=1, description="Pass rate each "
                                    "prompt × provider must reach.")
    repeat: int = Field(1, ge=1, le=1000)
    category_field: str | None = Field(None, min_length=1, description=(
        "A case field whose value is the case's category (default: the reserved key "
        "category)."))
    max_turns: int = Field(8, ge=1, le=100, description=(
        "Requests to the model per conversation case (turns, tool results); reaching it "
        "fails the case."))
    gate: GateSpec | None = Field(None, description="Rows the regression gate judges "
                                  "(default: every row).")
    max_requests: int | None = Field(None, ge=1, description=(
        "Requests one invocation may send (cache hits are free; a request and its retries "
        "count once); reaching it stops the run, resumable. --max-requests overrides it."))
    max_cost: float | None = Field(None, gt=0, allow_inf_nan=False, description=(
        "USD one invocation may spend at the providers' token prices, never exceeded: a "
        "request is sent only while its worst case (max_tokens) still fits. --max-cost "
        "overrides it."))

    @field_validator("prompts", "providers")
    @classmethod
    def _unique_ids(cls, items: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise ValueError(f"id {item.id!r} appears twice; give each entry its own id")
            seen.add(item.id)
        return items

    @model_validator(mode="after")
    def _one_data_source(self) -> EvalSpec:
        if (self.dataset is None) == (self.cases is None):
            raise ValueError("give exactly one of `dataset` (a JSONL/CSV file) or `cases`")
        return self

    @model_validator(mode="after")
    def _gate_ids_exist(self) -> EvalSpec:
        if self.gate is None:
            return self
        for what, wanted, items in (("prompts", self.gate.prompts, self.prompts),
                                    ("providers", self.gate.providers, self.providers)):
            known = [item.id for item in items]
            for item_id in wanted or ():
                if item_id not in known:
                    raise ValueError(f"gate.{what}: {item_id!r} is not one of the spec's "
                                     f"{what} ({', '.join(known)})")
        return self


class LoadedSpec:
    """A validated spec with the paths it refers to resolved."""

    def __init__(self, spec: EvalSpec, path: Path, doc: YamlDocument):
        self.spec = spec
        self.path = path
        self.doc = doc
        self.base_dir = path.parent

    @property
    def templates_dir(self) -> Path:
        if self.spec.templates:
            return self.base_dir / self.spec.templates
        for folder in [self.base_dir, *self.base_dir.resolve().parents]:
            if (folder / "templates").is_dir():
                return folder / "templates"
        raise ConfigError("no templates/ folder found above the spec; set `templates:`",
                          str(self.path), key_path="templates")

    @property
    def dataset_path(self) -> Path | None:
        return self.base_dir / self.spec.dataset if self.spec.dataset else None

    def error(self, message: str, path: list[str | int]) -> ConfigError:
        """A ConfigError located at ``path`` in the spec file."""
        return self.doc.error(message, path)

    def spec_hash(self) -> str:
        """Identifies what was asked for (not how fast): resume only continues a match.

        A provider's list of replicas is left out (where its model runs, not what it is
        asked: a replica added or removed does not stop ``--resume``); a single
        ``base_url`` is part of the identity."""
        dump = self.spec.model_dump(mode="json", by_alias=True)
        for key in RUNTIME_KEYS:
            dump.pop(key, None)
        for provider in dump["providers"] + dump["graders"]:
            for knob in RUNTIME_KNOBS:
                provider.pop(knob, None)
            if isinstance(provider.get("base_url"), list):
                del provider["base_url"]
        text = json.dumps(dump, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


def load_spec(path: str | os.PathLike[str]) -> LoadedSpec:
    """Read and validate an eval spec.

    Raises:
        ConfigError: unreadable file, invalid YAML, or a value that does not fit.
    """
    path = Path(path)
    doc = YamlDocument(read_text(path, "eval spec"), str(path))
    if not isinstance(doc.data, dict):
        raise ConfigError("an eval spec must be a YAML mapping", str(path), 1)
    import_plugins(doc.data.get("plugins"), path.parent, doc.error)
    loaded = LoadedSpec(validate(EvalSpec, doc), path, doc)
    check_references(loaded)
    return loaded


def check_references(loaded: LoadedSpec) -> None:
    """What one key cannot tell alone: the providers assertions and ``embeddings:`` name
    exist, and each assertion type's own check (a ``python`` function imports, a regex
    compiles) passes. Part of validating the spec, so a run never starts with them wrong.

    Raises:
        ConfigError: at the key in the spec file, with its line.
    """
    spec = loaded.spec
    known = {p.id: p for p in [*spec.providers, *spec.graders]}
    for index, variant in enumerate(spec.prompts):
        embeddings = variant.fewshot.embeddings if variant.fewshot else None
        if embeddings is not None and (embeddings not in known or known[embeddings].is_local):
            raise loaded.error(f"embeddings provider {embeddings!r} must be listed in graders "
                               "with a base_url", ["prompts", index, "fewshot", "embeddings"])
    check_references_of(spec.assert_, spec, lambda message, path: loaded.error(
        message, ["assert", *path]))
    for index, variant in enumerate(spec.prompts):
        check_references_of(variant.assert_, spec, lambda message, path, i=index: loaded.error(
            message, ["prompts", i, "assert", *path]))
    for index, case in enumerate(spec.cases or []):
        check_references_of(case.assert_ or [], spec, lambda message, path, i=index:
                            loaded.error(message, ["cases", i, "assert", *path]))


def check_references_of(assertions: list[Assertion], spec: EvalSpec,
                        error: Callable[[str, list[str | int]], ConfigError]) -> None:
    """:func:`check_references` for one list of assertions; ``error(message, path)``
    makes the error for the key path within the list."""
    known = {p.id: p for p in [*spec.providers, *spec.graders]}
    for index, assertion in enumerate(assertions):
        registered = assertion.registered_type
        if registered.provider is not None:
            role = registered.provider
            if assertion.provider is None:
                raise error(f"{registered.name} needs an explicit {role} provider (no "
                            f"default {role} is used)", [index, "provider"])
            if assertion.provider not in known:
                names = ", ".join(sorted(known)) or "none"
                raise error(f"unknown provider {assertion.provider!r} (known: {names})",
                            [index, "provider"])
        if registered.check is not None:
            try:
                registered.check(assertion)
            except Exception as exc:  # a user's check (or import) failed: still this key's
                message = str(exc) if isinstance(exc, ValueError) else \
                    f"{type(exc).__name__}: {exc}"
                raise error(message, [index, "value"]) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an eval spec, for editors."""
    schema = EvalSpec.model_json_schema(by_alias=True)
    schema["title"] = "promptkit eval spec"
    shorthands = {  # what the models accept as a plain string
        "Provider": {"type": "string", "pattern": f"^{LOCAL}(:.+)?$",
                     "description": "'local', or 'local:/path/model.gguf'"},
        "PromptVariant": {"type": "string", "description": "A template reference, such "
                          "as 'summarize@2' or 'summarize@production'"},
    }
    for name, string in shorthands.items():
        model = schema["$defs"][name]
        schema["$defs"][name] = {"anyOf": [string, model], "title": model.get("title", name),
                                 "description": model.get("description", "")}
    return schema


def apply_overrides(
    loaded: LoadedSpec,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api: Api | None = None,
    api_key_env: str | None = None,
    concurrency: int | None = None,
    repeat: int | None = None,
    prompt_ids: tuple[str, ...] = (),
    provider_ids: tuple[str, ...] = (),
    batch: bool = False,
) -> LoadedSpec:
    """Apply the CLI's overrides to a loaded spec (the file is not touched).

    ``base_url`` with ``model`` replaces every provider with that one endpoint; ``batch``
    sends every provider's requests as Batch API jobs.

    Raises:
        ConfigError: an unknown prompt or provider id, or a base URL without a model.
    """
    spec = loaded.spec.model_copy(deep=True)
    if base_url or model:
        if not (base_url and model):
            raise ConfigError("--base-url and --model go together")
        try:
            provider = Provider(id=model, base_url=base_url, model=model, api=api or "chat",
                                api_key_env=api_key_env)
        except ValidationError as exc:  # its str() would repeat the input values
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            flag = "--api-key-env" if "api_key_env" in message else "--base-url"
            raise ConfigError(f"{flag}: {message}") from None
        spec.providers = [provider]
    elif api or api_key_env:
        raise ConfigError("--api and --api-key-env apply to --base-url")
    for flag, ids, items in (("--prompt", prompt_ids, spec.prompts),
                             ("--provider", provider_ids, spec.providers)):
        known = [item.id for item in items]
        for wanted in ids:
            if wanted not in known:
                raise ConfigError(f"{flag} {wanted!r} is not in the spec (ids: "
                                  f"{', '.join(known)})", str(loaded.path))
    if prompt_ids:
        spec.prompts = [p for p in spec.prompts if p.id in prompt_ids]
    if provider_ids:
        spec.providers = [p for p in spec.providers if p.id in provider_ids]
    if concurrency:
        for provider in spec.providers:
            provider.concurrency = concurrency
    if repeat:
        spec.repeat = repeat
    if batch:  # a runtime setting: the spec hash stays the same
        for provider in spec.providers:
            provider.batch = True
    return LoadedSpec(spec, loaded.path, loaded.doc)
