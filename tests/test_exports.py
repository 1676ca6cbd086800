"""The public surface: __all__ lists exactly what promptkit exports."""

from __future__ import annotations

import promptkit


def test_all_is_sorted_and_complete() -> None:
    assert promptkit.__all__ == sorted(promptkit.__all__)
    for name in promptkit.__all__:
        assert getattr(promptkit, name) is not None


def test_every_public_name_is_in_all() -> None:
    public = {name for name in dir(promptkit) if not name.startswith("_")}
    modules = {"annotations", "importlib", "TYPE_CHECKING", "Any", "errors", "templates",
               "sandbox", "config", "lockfile", "cli", "testing", "metrics", "scoring"}
    assert public - modules == set(promptkit.__all__)


def test_errors_derive_from_promptkit_error() -> None:
    for name in promptkit.__all__:
        obj = getattr(promptkit, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, promptkit.PromptkitError)
