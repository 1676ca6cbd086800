"""``python`` assertions: a user's function named ``module:function``.

The function is called as ``function(output_text, {"vars": ..., "output": Output,
"assertion": Assertion})``, may be async, and returns a bool, a float in ``[0, 1]``
(passing at the threshold, 0.5 by default), a
:class:`~promptkit.scoring.verdicts.GradingResult` or a dict with ``pass``, ``score`` and
``reason``. Its value is not rendered. The module is imported before the run, so a typo
fails at once. (A type of its own, with its own YAML name, is
:func:`~promptkit.scoring.registry.register_assertion`.)
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .assertion import Assertion
from .context import Output, ScoringContext
from .registry import register_assertion
from .verdicts import (
    EvaluationError,
    GradingResult,
    binary,
    thresholded,
    unit_score,
    verdict_from_mapping,
)

__all__ = ["python_function"]


@functools.cache
def _load_function(spec: str) -> Callable[..., Any]:
    module_name, _, attribute_path = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for name in attribute_path.split("."):
        target = getattr(target, name)
    if not callable(target):
        raise TypeError(f"{attribute_path!r} is not callable")
    return target


def _validate_reference(a: Assertion) -> None:
    value = a.value
    module, _, function = value.partition(":") if isinstance(value, str) else ("", "", "")
    if not (module and function):
        raise ValueError("value: python needs 'module:function'")


def _check_loads(a: Assertion) -> None:
    try:
        _load_function(a.value)
    except Exception as exc:  # an import runs user code: any failure is a config error
        raise ValueError(f"cannot load python assertion {a.value!r}: "
                         f"{type(exc).__name__}: {exc}") from exc


def _to_grading_result(returned: Any, threshold: float) -> GradingResult:
    """Interpret what a ``python`` assertion function returned."""
    if isinstance(returned, bool):
        return binary(returned, f"function returned {returned}")
    if isinstance(returned, int | float):
        return thresholded("function score", unit_score(returned, False, "function"), threshold)
    if isinstance(returned, Mapping):
        return verdict_from_mapping(returned, "function")
    if isinstance(returned, GradingResult):
        value = unit_score(returned.score, returned.passed, "function")
        return GradingResult(returned.passed, value, returned.reason)
    raise EvaluationError(
        f"function returned {type(returned).__name__}; expected bool, a float in [0, 1], "
        "a GradingResult or a dict with 'pass', 'score' and 'reason'"
    )


@register_assertion("python", threshold=0.5, validate=_validate_reference, check=_check_loads)
async def python_function(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """Call the function and read its verdict."""
    function = _load_function(a.value)
    context = {"vars": dict(ctx.vars), "output": output, "assertion": a}
    returned = function(output.text, context)
    if inspect.isawaitable(returned):
        returned = await returned
    return _to_grading_result(returned, a.pass_mark or 0.0)
