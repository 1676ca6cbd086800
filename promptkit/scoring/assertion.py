"""One entry of an eval's ``assert:`` list, validated against the registered types.

An :class:`Assertion` is validated strictly when the spec loads: its ``type`` must be
registered (:mod:`promptkit.scoring.registry`), optionally prefixed ``not-``, and its
parameters must fit what that type accepts (its value shape, whether it takes
``expected``, ``threshold``, ``n`` or ``provider``, and the type's own ``validate``).
:func:`check_assertions` adds the checks that need the rest of the spec or cost more
(known providers, importable functions, valid regexes and schemas).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError
from . import registry
from .registry import AssertionType

__all__ = ["TYPE_PARAMS", "Assertion", "check_assertions"]

TYPE_PARAMS = ("name", "arguments", "match", "schema_", "count", "order", "path", "contains",
               "regex", "json_type")
"""The keys of :class:`Assertion` that only the types declaring them (``params``) take."""


class Assertion(BaseModel):
    """One entry of an eval's ``assert:`` list.

    Attributes:
        type: A registered type (:data:`~promptkit.scoring.registry.ASSERTION_TYPES`),
            optionally prefixed ``not-``.
        value: The main parameter (see :mod:`promptkit.scoring` for each type).
        expected: The reference text of ``rouge-n``, ``rouge-l``, ``bleu``,
            ``levenshtein`` and ``similar``; ``value`` may hold it instead.
        threshold: Pass mark in ``[0, 1]`` for scored types; defaults in
            :data:`~promptkit.scoring.registry.DEFAULT_THRESHOLDS`.
        weight: Share of this assertion in the case score; 0 makes it informational:
            its result and metric are reported, but it never fails the case.
        metric: Name to aggregate the score under; defaults to ``type``.
        provider: Provider id that judges (``llm-judge``) or embeds (``similar``).
        n: The n-gram order of ``rouge-n`` (default 1).
        name, arguments, match, schema, count, order: What ``tool-call`` expects of the
            answer's function calls (``tool-call-f1`` takes ``match`` too).
        path, contains, regex, json_type: What ``json-path`` looks up in the answer's
            JSON and checks there (``value`` is the value it must equal).

    The keys after ``n`` belong to the types that declare them (a registered type's
    ``params``); any other type refuses them.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: str
    value: Any = None
    expected: str | None = None
    threshold: float | None = Field(default=None, ge=0, le=1)
    weight: float = Field(default=1.0, ge=0)
    metric: str | None = None
    provider: str | None = None
    n: int | None = Field(default=None, ge=1)
    name: str | None = Field(None, description="tool-call: the function that must be called.")
    arguments: Any = Field(None, description="tool-call: the arguments expected (a subset "
                           "unless match: exact); tool-call-f1: see value.")
    match: Literal["subset", "exact"] | None = Field(None, description="tool-call: how "
                                                     "arguments are compared.")
    schema_: bool | dict[str, Any] | None = Field(None, alias="schema", description=(
        "tool-call: validate the arguments against the tool's parameters schema (default "
        "true), or this JSON Schema."))
    count: int | None = Field(None, ge=0, description="tool-call: how many calls of name.")
    order: list[str] | None = Field(None, description="tool-call: function names in the "
                                    "order they must be called.")
    path: str | None = Field(None, description="json-path: where to look, e.g. "
                             "'items[0].price' or '$.items[0].price'.")
    contains: Any = Field(None, description="json-path: a text (or list item) the found "
                          "value must contain.")
    regex: str | None = Field(None, description="json-path: a pattern the found value "
                              "(as text) must match.")
    json_type: Literal["string", "number", "integer", "boolean", "array", "object",
                       "null"] | None = Field(None, description="json-path: the JSON type "
                                              "of the found value.")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if registry.lookup(value.removeprefix("not-")) is None:
            valid = ", ".join(registry.ASSERTION_TYPES)
            raise ValueError(
                f"unknown assertion type {value!r}; valid types: {valid} "
                "(each may be prefixed 'not-')"
            )
        return value

    @model_validator(mode="after")
    def _fields_fit_type(self) -> Assertion:
        kind, registered = self.base_type, self.registered_type
        if registered.validate is not None:
            registered.validate(self)
        _check_shape(self, registered)
        if self.expected is not None and registered.takes != "reference":
            raise ValueError(f"expected: {kind} takes its text in value, not expected")
        if self.threshold is not None and not registered.scored:
            raise ValueError(f"threshold: {kind} is pass/fail and takes no threshold")
        if self.n is not None and not registered.takes_n:
            raise ValueError(f"n: {_only(lambda t: t.takes_n, 'n')}, not {kind}")
        if self.provider is not None and registered.provider is None:
            owners = _only(lambda t: t.provider is not None, "a provider")
            raise ValueError(f"provider: {owners}, not {kind}")
        for key in TYPE_PARAMS:
            if getattr(self, key) is not None and key not in registered.params:
                shown = "schema" if key == "schema_" else key
                raise ValueError(f"{shown}: {_only(lambda t, k=key: k in t.params, shown)}, "
                                 f"not {kind}")
        return self

    def template_strings(self) -> list[tuple[str, str]]:
        """``(key, text)`` of every string rendered with the case's variables: those of
        ``value``/``expected`` the engine renders, then those the type's handler renders
        itself (its ``renders`` keys, nested texts included)."""
        strings = self._shape_strings()
        for key in self.registered_type.renders:
            strings += [(key, text) for text in _texts(getattr(self, key))]
        return strings

    def _shape_strings(self) -> list[tuple[str, str]]:
        """``(key, text)`` of the strings the engine renders, by the type's value shape."""
        takes = self.registered_type.takes
        if takes == "texts":
            return [("value", item) for item in self.value]
        if takes == "text" or (takes == "reference" and self.expected is None):
            return [("value", self.value)]
        if takes == "reference":
            return [("expected", self.expected)]
        return []

    def rendered(self, render: Callable[[str], str]) -> Assertion:
        """This assertion with its ``value``/``expected`` texts rendered by ``render`` (the
        texts its handler renders itself are left as they are).

        Raises:
            Exception: Whatever ``render`` raises (a missing variable, a sandbox rule).
        """
        takes = self.registered_type.takes
        if takes == "texts":
            return self.model_copy(update={"value": [render(item) for item in self.value]})
        strings = self._shape_strings()
        if not strings:
            return self
        return self.model_copy(update={key: render(text) for key, text in strings})

    @property
    def registered_type(self) -> AssertionType:
        """The registered type of this assertion."""
        found = registry.lookup(self.base_type)
        if found is None:  # unregistered since this assertion was validated
            raise ValueError(f"assertion type {self.base_type!r} is no longer registered")
        return found

    @property
    def negated(self) -> bool:
        """Whether the type carries the ``not-`` prefix."""
        return self.type.startswith("not-")

    @property
    def base_type(self) -> str:
        """The type without its ``not-`` prefix."""
        return self.type.removeprefix("not-")

    @property
    def metric_name(self) -> str:
        """The name this assertion's score aggregates under."""
        return self.metric or self.type

    @property
    def pass_mark(self) -> float | None:
        """The threshold in force: the given one, else the type's default."""
        return self.threshold if self.threshold is not None else self.registered_type.threshold


def _texts(value: Any) -> list[str]:
    """The texts in ``value``: itself, or those in its lists and mapping values."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    return []


def _check_shape(a: Assertion, registered: AssertionType) -> None:
    """Check ``value`` and ``expected`` against the type's value shape."""
    kind, value, takes = registered.name, a.value, registered.takes
    if takes == "text":
        if isinstance(value, int | float) and not isinstance(value, bool):
            a.value = value = str(value)  # `value: 42` in YAML means the text "42"
        if not isinstance(value, str):
            raise ValueError(f"value: {kind} needs a text value")
    elif takes == "texts":
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise ValueError(f"value: {kind} needs a non-empty list of texts")
    elif takes == "reference":
        if a.expected is not None and value is not None:
            raise ValueError(f"{kind}: give the reference text in expected or value, not both")
        if a.expected is None and not isinstance(value, str):
            raise ValueError(f"expected: {kind} needs the reference text")
    elif takes == "maximum" and (
        isinstance(value, bool) or not isinstance(value, int | float) or value < 0
    ):
        raise ValueError(f"value: {kind} needs a number >= 0 (the maximum)")


def _only(accepts: Callable[[AssertionType], bool], what: str) -> str:
    """``"only rouge-n takes n"``, ``"only llm-judge and similar take a provider"``."""
    names = sorted(t.name for t in registry.registered() if accepts(t))
    if not names:
        return f"no type takes {what}"
    if len(names) == 1:
        return f"only {names[0]} takes {what}"
    return f"only {', '.join(names[:-1])} and {names[-1]} take {what}"


def check_assertions(assertions: Sequence[Assertion], providers: set[str]) -> None:
    """Check what field validation cannot: providers, functions, regexes and schemas.

    Call before a run so a typo fails at once, not after every case has been requested.

    Args:
        assertions: The eval's assertions.
        providers: The ids of the providers defined in the eval.

    Raises:
        ConfigError: For the first problem, with the key path ``assert[i].field``.
    """
    for index, a in enumerate(assertions):
        registered = a.registered_type
        if registered.provider is not None:
            key = f"assert[{index}].provider"
            if a.provider is None:
                role = registered.provider
                raise ConfigError(
                    f"{registered.name} needs an explicit {role} provider "
                    f"(no default {role} is used)",
                    key_path=key,
                )
            if a.provider not in providers:
                known = ", ".join(sorted(providers)) or "none"
                raise ConfigError(f"unknown provider {a.provider!r} (known: {known})", key_path=key)
        if registered.check is None:
            continue
        try:
            registered.check(a)
        except ValueError as exc:
            raise ConfigError(str(exc), key_path=f"assert[{index}].value") from exc
        except Exception as exc:  # a user's check failed: still this assertion's problem
            message = f"{type(exc).__name__}: {exc}"
            raise ConfigError(message, key_path=f"assert[{index}].value") from exc
