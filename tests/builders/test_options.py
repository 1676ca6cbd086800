"""Tests for promptkit.builders.options: settings from Python keyword arguments."""

from __future__ import annotations

import warnings

import pytest
from pydantic import BaseModel, ConfigDict, Field

from promptkit.builders.options import rename_deprecated, validate_settings
from promptkit.errors import ConfigError


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depth: int = Field(1, ge=1)


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "x"
    inner: Inner = Field(default_factory=Inner)


def test_a_model_passes_through_and_a_mapping_is_validated() -> None:
    outer = Outer(name="y")
    assert validate_settings(Outer, outer) is outer
    assert validate_settings(Outer, {"inner": {"depth": 3}}) == Outer(inner=Inner(depth=3))


def test_errors_are_config_errors_with_the_dotted_key_path() -> None:
    with pytest.raises(ConfigError, match="greater than or equal to 1") as info:
        validate_settings(Outer, {"inner": {"depth": 0}})
    assert info.value.key_path == "inner.depth"
    with pytest.raises(ConfigError, match="unknown key 'colour'") as info:
        validate_settings(Outer, {"inner": {"colour": "red"}}, key_prefix="cot")
    assert info.value.key_path == "cot.inner.colour"
    with pytest.raises(ConfigError, match="expected a mapping or Outer, not int"):
        validate_settings(Outer, 42)  # type: ignore[arg-type]


def test_deprecated_names_are_renamed_with_a_warning_at_the_caller() -> None:
    def build(**old: object) -> dict[str, object]:
        return rename_deprecated(old, {"size": "budget"}, "build()", stacklevel=2)

    with pytest.warns(DeprecationWarning, match="build\\(\\): 'size' is deprecated and will "
                                                "be removed in the next release; use "
                                                "'budget'") as record:
        assert build(size=3) == {"budget": 3}
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build() == {}
    with pytest.raises(TypeError, match="build\\(\\) got an unexpected keyword argument 'big'"):
        build(big=1)
