"""The assertion types: a registry of handlers by name.

Every ``type:`` of an eval's ``assert:`` list names a handler registered here, with what
the type accepts; the built-in types register themselves the same way a user's do, so
adding one touches no dispatcher. :func:`register_assertion` is the public way in
(re-exported as ``promptkit.register_assertion``)::

    from promptkit import register_assertion
    from promptkit.scoring.verdicts import GradingResult

    @register_assertion("max-lines", takes="maximum")
    def max_lines(assertion, output, ctx):
        lines = len(output.text.splitlines())
        return GradingResult(lines <= assertion.value, reason=f"{lines} lines")

after which an eval may say ``- {type: max-lines, value: 3}`` (or ``not-max-lines``).
Types are checked when the spec loads, so register before that: name the module in the
spec's ``plugins:`` list (``plugins: [mychecks]``; imported from the spec's folder, then
the working directory, before the assertions are validated, so ``promptkit eval`` knows
the type too), or import it yourself before calling ``promptkit.evaluate`` (from your
app, or a conftest for the pytest fixtures).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, get_args, overload

from ..errors import PromptkitError

if TYPE_CHECKING:
    from .assertion import Assertion
    from .context import Output, ScoringContext
    from .verdicts import GradingResult

__all__ = [
    "ASSERTION_TYPES",
    "DEFAULT_THRESHOLDS",
    "AssertionHandler",
    "AssertionType",
    "ProviderRole",
    "ValueShape",
    "add_import_paths",
    "import_plugins",
    "lookup",
    "register_assertion",
    "registered",
    "unregister_assertion",
]

ValueShape = Literal["any", "text", "texts", "reference", "maximum"]
"""What ``value`` (and ``expected``) hold for a type:

* ``any``: anything, or nothing; passed to the handler as written (check it in ``validate``).
* ``text``: a text (a YAML number means its text), rendered with the case's fields.
* ``texts``: a non-empty list of texts, each rendered.
* ``reference``: a reference text in ``expected`` or ``value`` (not both), rendered.
* ``maximum``: a number >= 0.
"""

ProviderRole = Literal["judge", "embedding"]
"""The kind of provider a type needs in ``provider:``: called through ``ctx.judge`` or
``ctx.embed``."""

VALUE_SHAPES: tuple[str, ...] = get_args(ValueShape)


class AssertionHandler(Protocol):
    """Evaluates one assertion on one output, ignoring ``not-`` (the engine inverts).

    Receives the assertion with its texts already rendered for the case, the output and
    the context (``ctx.vars``, ``ctx.judge``, ``ctx.embed``). Returns a
    :class:`~promptkit.scoring.verdicts.GradingResult` (score in ``[0, 1]``), or an
    awaitable of one. Raising fails the assertion with the message as its ``error``
    (:class:`~promptkit.scoring.verdicts.EvaluationError` for a message without the
    exception's type name); the run goes on.
    """

    def __call__(
        self, assertion: Assertion, output: Output, ctx: ScoringContext, /
    ) -> GradingResult | Awaitable[GradingResult]: ...


@dataclass(frozen=True)
class AssertionType:
    """A registered assertion type: its handler and what it accepts.

    Attributes:
        name: The ``type:`` of the assertion (without ``not-``).
        handler: Evaluates it.
        takes: What ``value`` holds (:data:`ValueShape`).
        threshold: The default pass mark of a scored type; None for none.
        scored: Whether ``threshold:`` is accepted.
        provider: The kind of provider ``provider:`` must name; None: takes no provider.
        takes_n: Whether ``n:`` (an integer >= 1) is accepted.
        validate: Checks the assertion's own parameters when the spec loads; raises
            ``ValueError`` with a message such as ``"value: my-check needs ..."``.
        check: Checks the parameters before a run, where that costs (importing a module,
            compiling a pattern); raises ``ValueError`` with the message.
        params: The type's own keys among :data:`~promptkit.scoring.assertion.TYPE_PARAMS`
            (``("name", "arguments")``; ``schema`` is ``"schema_"``); others are refused.
        renders: Keys whose texts (in lists and mappings too) the handler itself renders
            with the case's fields (``ctx.render``); they are checked against every case
            before a run, as ``text`` values are.
    """

    name: str
    handler: AssertionHandler
    takes: ValueShape = "any"
    threshold: float | None = None
    scored: bool = False
    provider: ProviderRole | None = None
    takes_n: bool = False
    validate: Callable[[Assertion], None] | None = None
    check: Callable[[Assertion], None] | None = None
    params: tuple[str, ...] = ()
    renders: tuple[str, ...] = ()


_TYPES: dict[str, AssertionType] = {}
# Handler modules, imported on first use of the registry; their order is the order of
# ASSERTION_TYPES (and of the list an unknown type's message gives).
_BUILTIN_MODULES = ("text_checks", "json_checks", "tool_checks", "functions", "reference",
                    "judge", "limits")
_builtins_loaded = False


def _types() -> dict[str, AssertionType]:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(f"{__package__}.{module}")
    return _TYPES


H = TypeVar("H", bound=Callable[..., object])


def register_assertion(
    name: str,
    *,
    takes: ValueShape = "any",
    threshold: float | None = None,
    scored: bool | None = None,
    provider: ProviderRole | None = None,
    takes_n: bool = False,
    validate: Callable[[Assertion], None] | None = None,
    check: Callable[[Assertion], None] | None = None,
    params: Sequence[str] = (),
    renders: Sequence[str] = (),
    replace: bool = False,
) -> Callable[[H], H]:
    """Register a handler as the assertion type ``name`` (a decorator).

    Example::

        @register_assertion("mentions", takes="text", threshold=0.5)
        def mentions(assertion, output, ctx):
            hits = output.text.lower().count(assertion.value.lower())
            score = min(1.0, hits / 3)
            return GradingResult(score >= assertion.pass_mark, score, f"{hits} mentions")

    A scored type (``threshold`` given, or ``scored=True``) passes when its handler says
    so: the handler compares its score with ``assertion.pass_mark``, the given threshold,
    else the default (None for a scored type without one: the handler decides, as
    ``llm-judge`` does). :func:`~promptkit.scoring.verdicts.thresholded` builds that
    verdict with the built-ins' wording. ``not-<name>`` then inverts pass and score.

    Args:
        name: The ``type:`` to register, without ``not-``.
        takes: What ``value`` holds (:data:`ValueShape`); ``text``, ``texts`` and
            ``reference`` strings reach the handler rendered with the case's fields.
        threshold: Default pass mark in ``[0, 1]``; makes the type scored.
        scored: Whether ``threshold:`` is accepted (default: when ``threshold`` is given).
        provider: ``"judge"`` or ``"embedding"`` when the type calls a provider: the
            assertion must then name one the eval defines.
        takes_n: Whether ``n:`` is accepted.
        validate: Checks the assertion's parameters as the spec loads (raise ValueError).
        check: Checks them before a run, for costly checks (raise ValueError).
        params: The keys of :class:`~promptkit.scoring.assertion.Assertion` beyond the
            common ones that this type takes (``"name"``, ``"path"``, ``"schema_"``...).
        renders: The keys (``"value"`` or among ``params``) whose texts the handler
            renders with the case's fields itself (``ctx.render(text, ctx.vars)``), so
            that a field a case lacks is found before any request.
        replace: Replace a type already registered under ``name`` (a built-in too).

    Returns:
        A decorator that registers the handler and returns it unchanged.

    Raises:
        PromptkitError: ``name`` is registered already (without ``replace``), is empty or
            starts with ``not-``, or an option is out of range.
    """
    scored = _checked_options(name, takes, threshold, scored, provider)
    from .assertion import TYPE_PARAMS

    unknown = sorted(set(params) - set(TYPE_PARAMS))
    if unknown:
        raise PromptkitError(f"{name}: params={unknown!r}; choose among "
                             f"{', '.join(TYPE_PARAMS)}")
    unknown = sorted(set(renders) - {"value", *params})
    if unknown:
        raise PromptkitError(f"{name}: renders={unknown!r}; choose among value and params")

    def register(handler: H) -> H:
        types = _types()
        if name in types and not replace:
            raise PromptkitError(f"assertion type {name!r} is already registered; "
                                 "pass replace=True to replace it")
        types[name] = AssertionType(name, handler, takes, threshold, scored, provider,
                                    takes_n, validate, check, tuple(params), tuple(renders))
        return handler

    return register


def _checked_options(name: str, takes: str, threshold: float | None, scored: bool | None,
                     provider: str | None) -> bool:
    """Check :func:`register_assertion`'s options; return whether the type is scored."""
    if not name or not isinstance(name, str) or name.startswith("not-"):
        raise PromptkitError(f"invalid assertion type name {name!r}: a non-empty text "
                             "not starting with 'not-'")
    if takes not in VALUE_SHAPES:
        raise PromptkitError(f"{name}: takes={takes!r}; choose one of {', '.join(VALUE_SHAPES)}")
    if threshold is not None and not 0 <= threshold <= 1:
        raise PromptkitError(f"{name}: threshold={threshold!r} is not in [0, 1]")
    if provider not in (None, *get_args(ProviderRole)):
        raise PromptkitError(f"{name}: provider={provider!r}; choose 'judge' or 'embedding'")
    if scored is None:
        return threshold is not None
    if threshold is not None and not scored:
        raise PromptkitError(f"{name}: a type with a default threshold is scored")
    return scored


def unregister_assertion(name: str) -> None:
    """Remove a registered type (a test's own, say).

    Raises:
        PromptkitError: No type is registered under ``name``.
    """
    if _types().pop(name, None) is None:
        raise PromptkitError(f"no assertion type {name!r} is registered")


def lookup(name: str) -> AssertionType | None:
    """The type registered under ``name`` (without ``not-``), or None."""
    return _types().get(name)


def registered() -> list[AssertionType]:
    """Every registered type, in registration order."""
    return list(_types().values())


class _TypeNames(Sequence[str]):
    """The registered type names, in registration order; always current."""

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return tuple(_types())[index]

    def __len__(self) -> int:
        return len(_types())

    def __repr__(self) -> str:
        return repr(tuple(_types()))


class _Thresholds(Mapping[str, float]):
    """Type name -> default threshold, for the scored types that have one; always current."""

    def _current(self) -> dict[str, float]:
        return {n: t.threshold for n, t in _types().items() if t.threshold is not None}

    def __getitem__(self, name: str) -> float:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __repr__(self) -> str:
        return repr(self._current())


ASSERTION_TYPES: Sequence[str] = _TypeNames()
"""Every assertion type, built-in and registered; each may also be written with ``not-``."""

DEFAULT_THRESHOLDS: Mapping[str, float] = _Thresholds()
"""Pass marks (``score >= threshold``) for scored types when ``threshold`` is not given.

``llm-judge`` has none: without a threshold the judge's own ``pass`` decides.
"""


# -- plugins: the modules an eval spec imports to register its types ---------------------

MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def add_import_paths(folder: Path) -> None:
    """Let an eval spec's Python code import: ``folder`` (the spec's) first, then the
    working directory, where ``plugins:`` and ``python`` assertions' modules are found.

    The working directory comes last, so a folder there cannot shadow an installed
    package.
    """
    spec_dir = str(folder.resolve())
    if spec_dir not in sys.path:
        sys.path.insert(0, spec_dir)
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)


def import_plugins(modules: object, folder: Path,
                   error: Callable[[str, list[str | int]], Exception]) -> None:
    """Import an eval spec's ``plugins:``, in order, before its assertions are validated,
    so the types they register are known to them; :func:`add_import_paths` first.

    Args:
        modules: The value of ``plugins:`` (None when the spec has none).
        folder: The spec's folder.
        error: Makes the exception to raise from a message and the key path
            (``["plugins", 1]``).

    Raises:
        Exception: what ``error`` makes, when ``modules`` is not a list of module names or
            a module fails to import (any exception its code raises), in one line.
    """
    add_import_paths(folder)
    if modules is None:
        return
    if not isinstance(modules, list):
        raise error("give a list of module names, e.g. [mychecks]", ["plugins"])
    importlib.invalidate_caches()  # a module written since the interpreter started
    for index, name in enumerate(modules):
        if not isinstance(name, str) or not MODULE_NAME.fullmatch(name):
            raise error(f"{name!r} is not a module name (e.g. mychecks or myapp.checks)",
                        ["plugins", index])
        try:
            importlib.import_module(name)
        except Exception as exc:  # importing runs the user's code: any failure is input
            reason = str(exc).strip().splitlines()
            hint = (f" (a module name has no .py: write {name.removesuffix('.py')!r})"
                    if name.endswith(".py") else "")
            raise error(f"cannot import {name!r}: {type(exc).__name__}"
                        + (f": {reason[0]}" if reason else "") + hint,
                        ["plugins", index]) from None
