"""Few-shot settings: how examples are chosen and written, one model for specs and Python.

:class:`FewShotSettings` is an eval spec's ``fewshot:`` and the options of
:func:`promptkit.builders.fewshot.few_shot` and of the ``fewshot()`` template global
alike, validated once, strictly. :class:`ExampleFormat` is how one example is written
(what a token ``budget`` counts and :meth:`~promptkit.builders.fewshot.FewShot.text`
shows), with the one default the three share. This module lives apart from the selection
code so that loading a spec does not load BM25 and numpy.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..errors import ConfigError, PromptkitDeprecationWarning, warn
from .options import Settings

__all__ = [
    "DEFAULT_EXAMPLE_FORMAT",
    "DEPRECATED_NAMES",
    "ExampleFormat",
    "FewShotSettings",
    "PoolSource",
    "SelectName",
    "format_problem",
]

PoolSource = str | os.PathLike[str] | Sequence[Mapping[str, Any]]
"""Where examples come from: a JSONL or CSV file, or the rows themselves."""

SelectName = Literal["first", "random", "similar", "mmr", "balanced"]
"""How examples are chosen.

* ``first``: the pool's first rows, in pool order.
* ``random``: a shuffle seeded by ``seed`` and the query's content id, so each query gets
  its own draw and the same query always gets the same one.
* ``similar``: highest BM25 score against the query first (cosine of embeddings when
  ``embed`` is given); ties keep pool order.
* ``mmr``: maximal marginal relevance, trading similarity to the query for difference from
  the examples already chosen (see :class:`~promptkit.builders.fewshot.FewShot`).
* ``balanced``: the same number of examples per value of the ``label`` field, taken in
  turn from each label (labels in the order the pool first shows them), each label's
  examples most similar first.
"""

DEPRECATED_NAMES = {"lambda": "mmr_lambda", "max_tokens": "budget", "template": "format"}
"""Old names still accepted for one release, with a :class:`DeprecationWarning`: ``lambda``
in an eval spec (and anywhere settings are a mapping); ``max_tokens`` and ``template`` as
keyword arguments of :func:`~promptkit.builders.fewshot.few_shot` and of the ``fewshot()``
template global."""


class FewShotSettings(Settings):
    """How examples are chosen: an eval spec's ``fewshot:`` and ``few_shot()``'s options.

    Validated once, on construction (:class:`~promptkit.errors.ConfigError` at
    ``fewshot.<key>``; a spec's errors name its file, line and
    ``prompts[i].fewshot.<key>``). What needs the pool itself (the file, its rows, whether
    ``fields`` and ``label`` occur in it) is checked when
    :class:`~promptkit.builders.fewshot.FewShot` reads it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    key_prefix = "fewshot"

    pool: Annotated[str | list[dict[str, Any]], WithJsonSchema({"type": "string"})] = Field(
        description="JSONL or CSV file of examples, relative to the spec (from Python, "
        "also the rows themselves).")
    k: int = Field(3, ge=0, le=100, description="How many examples each case gets.")
    select: SelectName = "similar"
    fields: list[str] | None = Field(None, description="Case fields compared for similarity "
                                     "(default: the case's text fields but id and label).")
    label: str | None = Field(None, validate_default=True,
                              description="Pool field to balance on (select: balanced).")
    seed: int = Field(0, description="Seed of the random selector.")
    mmr_lambda: float = Field(0.5, ge=0, le=1, description="For mmr: weight of relevance "
                              "against diversity (1 gives the similar order).")
    budget: int | None = Field(None, ge=1, description="Most tokens the examples may take "
                               "together, each written with `format`.")
    format: str | None = Field(None, description="How one example reads, e.g. 'Q: {question}"
                               "\\nA: {answer}'; the token budget counts this text (default: "
                               "'Input: {input}\\nOutput: {output}' when the examples have "
                               "just those fields, else every field as 'name: value').")
    var: str = Field("examples", description="Template variable that receives the examples.")
    embeddings: str | None = Field(None, description="Provider id (in graders) whose "
                                   "/v1/embeddings ranks similarity instead of BM25.")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "lambda" in data:
            if "mmr_lambda" in data:
                raise ValueError("give mmr_lambda only ('lambda' is its deprecated name)")
            warn("fewshot: 'lambda' is deprecated and will be removed in the next release; "
                 "use 'mmr_lambda'", PromptkitDeprecationWarning, stacklevel=3)
            data = {("mmr_lambda" if key == "lambda" else key): value
                    for key, value in data.items()}
        return data

    @field_validator("pool", mode="before")
    @classmethod
    def _pool_source(cls, value: Any) -> Any:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("the pool file name is empty")
            return value
        if isinstance(value, Sequence) and not isinstance(value, bytes):
            for index, row in enumerate(value):
                if not isinstance(row, Mapping):
                    raise ValueError(f"pool[{index}]: each example must be a mapping, not "
                                     f"{type(row).__name__}")
            return [dict(row) for row in value]
        raise ValueError("the pool must be a JSONL or CSV file, or a list of examples")

    @field_validator("label")
    @classmethod
    def _label_for_balanced(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("select") == "balanced":
            raise ValueError("the balanced selector needs a label field")
        return value

    @field_validator("format")
    @classmethod
    def _plain_fields(cls, value: str | None) -> str | None:
        problem = None if value is None else format_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def describe(self) -> str:
        """The settings in one line, for messages: the pool, ``k``, ``select`` and every
        setting not at its default (``pool 'data/math.jsonl', k=3, select='similar',
        budget=40``), so that one selector among several can be told apart."""
        pool = repr(self.pool) if isinstance(self.pool, str) else f"of {len(self.pool)} examples"
        parts = [f"pool {pool}"]
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if name != "pool" and (name in ("k", "select") or value != field.default):
                parts.append(f"{name}={value!r}")
        return ", ".join(parts)


DEFAULT_EXAMPLE_FORMAT = "Input: {input}\nOutput: {output}"
"""How an example is written by default when every example of the pool has just the
fields ``input`` and ``output`` (and perhaps ``id``); any other pool's examples are
written with every field as ``name: value``. See :meth:`ExampleFormat.of`."""


@dataclass(frozen=True)
class ExampleFormat:
    """How one example is written, and where that was decided (for messages).

    Attributes:
        pattern: A :meth:`str.format_map` pattern over the example's fields, or None:
            every field but ``id`` as ``name: value``, one per line, in the example's own
            order.
        source: Where the pattern comes from: ``"default"``, ``"given"`` (the settings'
            ``format``) or a phrase such as ``"given to text()"``.
    """

    pattern: str | None
    source: str = "given"

    @classmethod
    def of(cls, format: str | None, pool: Sequence[Mapping[str, Any]]) -> ExampleFormat:
        """The format of a selector: ``format`` when given, else the one default of eval
        specs, :func:`~promptkit.builders.fewshot.few_shot` and the ``fewshot()`` template
        global alike.

        The default is :data:`DEFAULT_EXAMPLE_FORMAT` when every example has just
        ``input`` and ``output`` (``id`` aside), else every field as ``name: value``; it
        never names a field an example lacks.
        """
        if format is not None:
            return cls(format, "given")
        if pool and all(set(row) - {"id"} == {"input", "output"} for row in pool):
            return cls(DEFAULT_EXAMPLE_FORMAT, "default")
        return cls(None, "default")

    def describe(self) -> str:
        """What messages call this format: ``the default format 'Input: ...'``."""
        if self.pattern is None:
            return "the default format, every field as 'name: value'"
        if self.source in ("default", "given"):
            return f"the {self.source} format {self.pattern!r}"
        return f"the format {self.pattern!r} {self.source}"

    def write(self, example: Mapping[str, Any]) -> str:
        """``example`` as text.

        Raises:
            ConfigError: The example lacks a field the pattern uses, or a value does not
                suit its format spec (``{n:d}`` given a string); at key ``format``, naming
                the example and this format.
        """
        if self.pattern is None:
            return "\n".join(f"{name}: {value}" for name, value in example.items()
                             if name != "id")
        try:
            return self.pattern.format_map(example)
        except KeyError as exc:
            fields = ", ".join(map(str, example)) or "none"
            raise ConfigError(f"{describe_example(example)} has no field {exc.args[0]!r} (its "
                              f"fields: {fields}), which {self.describe()} uses",
                              key_path="format") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"cannot write {describe_example(example)} with "
                              f"{self.describe()}: {exc}", key_path="format") from None


def describe_example(example: Mapping[str, Any]) -> str:
    """What messages call an example: ``few-shot example 'c2'`` by its ``id``, else
    ``a few-shot example``."""
    identifier = example.get("id")
    if identifier is None or str(identifier) == "":
        return "a few-shot example"
    return f"few-shot example {str(identifier)!r}"


def format_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be an example format (None when it can).

    ``{input.__class__}`` or ``{input[0]}`` would let a pattern from an eval file read
    attributes of the values, so only ``{name}`` (with a conversion or spec) is allowed.
    """
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        return f"invalid example format: {exc}"
    for _, name, spec, _ in parsed:
        for field in (name, *(_format_fields(spec) if spec else ())):
            if field is not None and not field.isidentifier():
                return f"example format field {{{field}}} must be a plain name"
    return None


def _format_fields(spec: str) -> list[str | None]:
    # A format spec may nest fields of its own: "{value:{width}}".
    return [name for _, name, _, _ in string.Formatter().parse(spec)]
