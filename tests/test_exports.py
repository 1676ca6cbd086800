"""The public surface: __all__ lists exactly what promptkit exports."""

from __future__ import annotations

from types import ModuleType

import promptkit


def test_all_is_sorted_and_complete() -> None:
    assert promptkit.__all__ == sorted(promptkit.__all__)
    for name in promptkit.__all__:
        assert getattr(promptkit, name) is not None


def test_every_public_name_is_in_all() -> None:
    public = {
        name for name in dir(promptkit)
        if not name.startswith("_") and not isinstance(getattr(promptkit, name), ModuleType)
    }
    assert public - {"annotations", "TYPE_CHECKING", "Any"} == set(promptkit.__all__)


def test_errors_derive_from_promptkit_error() -> None:
    for name in promptkit.__all__:
        obj = getattr(promptkit, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, promptkit.PromptkitError)
