"""Builder settings given from Python: one pydantic model per concept, as in eval specs.

An eval spec's ``fewshot:`` and ``cot:`` are validated by the settings models when the
spec is loaded, so their errors carry file, line and key path. The builders
(:func:`~promptkit.builders.fewshot.few_shot`,
:func:`~promptkit.builders.cot.chain_of_thought`) validate their keyword arguments with
the same models; :func:`validate_settings` turns a pydantic error into a
:class:`~promptkit.errors.ConfigError` naming the key, as the rest of promptkit's Python
API does, and so do the models' own constructors (:class:`Settings`:
``CotSettings(style="bogus")`` raises ``ConfigError("cot.style: ...")``).
:func:`rename_deprecated` maps the old names still accepted for one release.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, PromptkitDeprecationWarning, warn

ModelT = TypeVar("ModelT", bound=BaseModel)


class _ConstructorErrors(type(BaseModel)):  # type: ignore[misc]
    """Pydantic's model metaclass, with a constructor that raises promptkit's error.

    Only a call of the class goes through here: validating a spec (nested models) or
    ``model_validate`` does not, so their errors keep their own locations.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as exc:
            raise settings_error(exc, cls.key_prefix) from None


class Settings(BaseModel, metaclass=_ConstructorErrors):
    """A settings model built from Python: its constructor raises
    :class:`~promptkit.errors.ConfigError` naming the key (``cot.extract.method: ...``),
    not pydantic's ``ValidationError``.

    In an eval spec the same model is validated as part of the spec, whose errors name
    the file, line and key path (``prompts[1].cot.extract.method``).
    """

    key_prefix: ClassVar[str | None] = None
    """Put before every key path in the constructor's errors (``"cot"``)."""


def validate_settings(model: type[ModelT], data: ModelT | Mapping[str, Any],
                      key_prefix: str | None = None) -> ModelT:
    """``data`` as a ``model``: an instance is returned as it is, a mapping validated.

    Args:
        model: The settings model.
        data: An instance of it, or a mapping of its fields.
        key_prefix: Put before every key path in errors (``"extract"``).

    Raises:
        ConfigError: The first problem, with its key path (``extract.pattern``); an
            unknown key is ``unknown key 'name'``.
    """
    if isinstance(data, model):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping or {model.__name__}, not "
                          f"{type(data).__name__}", key_path=key_prefix)
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise settings_error(exc, key_prefix) from None


def settings_error(exc: ValidationError, key_prefix: str | None = None) -> ConfigError:
    """The first error of ``exc`` as a :class:`ConfigError` with its dotted key path."""
    error = exc.errors()[0]
    parts = [str(part) for part in error["loc"]]
    if key_prefix:
        parts.insert(0, key_prefix)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown key {parts[-1]!r}"
    elif error["type"] == "missing":
        message = "required key is missing"
    return ConfigError(message, key_path=".".join(parts) or None)


def rename_deprecated(options: dict[str, Any], renames: Mapping[str, str], where: str,
                      stacklevel: int) -> dict[str, Any]:
    """Move values given under deprecated names to their new names, warning once each.

    Args:
        options: Keyword arguments given under old names (only those).
        renames: Old name → new name.
        where: What took them, for messages (``"few_shot()"``).
        stacklevel: For :func:`warnings.warn`, counted from the caller of this function.
            The warning is a :class:`~promptkit.errors.PromptkitDeprecationWarning`
            (collected instead inside :func:`promptkit.evaluate`).

    Returns:
        The values under their new names.

    Raises:
        TypeError: A name that is neither current nor deprecated.
    """
    renamed: dict[str, Any] = {}
    for old, value in options.items():
        if old not in renames:
            raise TypeError(f"{where} got an unexpected keyword argument {old!r}")
        new = renames[old]
        warn(f"{where}: {old!r} is deprecated and will be removed in the next release; "
             f"use {new!r}", PromptkitDeprecationWarning, stacklevel=stacklevel + 1)
        renamed[new] = value
    return renamed
