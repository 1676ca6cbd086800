"""The checks a plan makes on every case before any request, each failing at the case.

A case's variables against what its prompts and assertions read, its own assertions and
their texts, a conversation's keys (turns, tool results, a tool handler) and its category:
:func:`~promptkit.running.plan.plan_eval` runs them all, so a bad row is invalid input at
its dataset line (or its entry in ``cases:``), found before anything is asked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from ..config import format_path
from ..datasets import Case, is_name
from ..errors import ConfigError, PromptkitError
from ..scoring.assertion import Assertion
from ..scoring.registry import add_import_paths
from .spec import PromptVariant, check_references_of
from .turns import CONVERSATION_KEYS, case_turns, check_tool_results, load_tool_handler

if TYPE_CHECKING:
    from .plan import EvalPlan

_ASSERTION_LIST = TypeAdapter(list[Assertion])
MAX_CATEGORY_CHARS = 100


def check_category(plan: EvalPlan, case: Case) -> None:
    """A case's category is a text or a number (the spec's ``category_field`` may be
    missing from a case: it has no category then).

    Raises:
        ConfigError: at the case's line.
    """
    field = plan.spec.category_field
    key = field or "category"
    value = case.vars.get(field) if field else case.reserved.get("category")
    if not is_name(value):
        raise case_error(plan, case, f"a category must be a text or a number, not "
                         f"{type(value).__name__}", [key])
    if value is not None and len(str(value)) > MAX_CATEGORY_CHARS:
        raise case_error(plan, case, f"a category of {len(str(value)):,} characters is more "
                         f"than the {MAX_CATEGORY_CHARS} allowed (it names a group in "
                         "every table)", [key])


def check_conversation(plan: EvalPlan, case: Case) -> None:
    """A conversation case (``turns``, ``tool_results``, ``tool_handler``) can run.

    Raises:
        ConfigError: at the case: a provider without the chat API, self-consistency,
            a malformed turn or turn assertion, a tool no prompt declares, a tool
            handler that cannot be imported.
    """
    key = next(k for k in CONVERSATION_KEYS
               if case.reserved.get(k) not in (None, "", [], {}))
    for provider in plan.spec.providers:
        if provider.api != "chat":
            raise case_error(plan, case, f"a case with {key} is a conversation, which needs "
                             f"the chat API; provider {provider.id!r} uses {provider.api}",
                             [key])
    for variant in plan.spec.prompts:
        if plan.samples(variant) > 1:
            raise case_error(plan, case, f"a case with {key} is a conversation; prompt "
                             f"{variant.id!r} samples {plan.samples(variant)} answers "
                             "(self-consistency), which conversations do not do", [key])
    try:
        turns = case_turns(case.reserved.get("turns"))
        for index, turn in enumerate(turns):
            if turn.asserts:
                check_turn_texts(plan, case, index, turn_assertions(plan, case, index))
        for variant in plan.spec.prompts:
            if len(turns) + 1 > plan.max_turns(variant):
                raise ValueError(f"this case has {len(turns)} later turns, so it needs at "
                                 f"least {len(turns) + 1} requests; max_turns of prompt "
                                 f"{variant.id!r} is {plan.max_turns(variant)}", ["turns"])
        declared = {tool["function"]["name"] for template in plan.templates.values()
                    for tool in getattr(template, "tools", None) or []}
        check_tool_results(case.reserved.get("tool_results"), declared)
        if case.reserved.get("tool_handler") not in (None, ""):
            add_import_paths(plan.loaded.path.parent)
            load_tool_handler(case.reserved["tool_handler"])
    except ValueError as exc:
        message, *path = exc.args
        raise case_error(plan, case, message, path[0] if path else ["tool_handler"]) from None


def check_turn_texts(plan: EvalPlan, case: Case, index: int,
                     assertions: list[Assertion]) -> None:
    """A turn's assertion texts render with the case's fields (and each prompt's vars).

    Raises:
        ConfigError: at the case, naming ``turns[i].assert[j].<key>``.
    """
    located = [(["turns", index, "assert", number], a) for number, a in enumerate(assertions)]
    for variant in plan.spec.prompts:
        _render_texts(plan, case, _light_variables(variant, case), located,
                      lambda message, path: case_error(plan, case, message, path))


def turn_assertions(plan: EvalPlan, case: Case, index: int) -> list[Assertion]:
    """The assertions of one later turn of a case (``turns[index].assert``), validated.

    Raises:
        ConfigError: at the case, naming the key path within the turn.
    """
    raw = case_turns(case.reserved.get("turns"))[index].asserts
    key = "turn:" + json.dumps(raw, sort_keys=True, default=str)
    found = plan.case_assertion_cache.get(key)
    if found is None:
        where = ["turns", index, "assert"]
        try:
            found = _ASSERTION_LIST.validate_python(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            message = error["msg"].removeprefix("Value error, ")
            raise case_error(plan, case, message, [*where, *error["loc"]]) from None
        check_references_of(found, plan.spec, lambda message, path: case_error(
            plan, case, message, [*where, *path]))
        plan.case_assertion_cache[key] = found
    return found


Need = tuple[str, str, "str | None"]  # (variable, what reads it, the assertion text or None)


def variable_needs(plan: EvalPlan) -> dict[str, list[Need]]:
    """Per variant id, the variables every case must have: the required inputs of its
    template, and those its assertions' texts read (with the text, since a read such as
    ``x|default(y)`` may be fine without ``x``)."""
    env = plan.store.env
    needs: dict[str, list[Need]] = {}
    for index, variant in enumerate(plan.spec.prompts):
        template = plan.templates[variant.id]
        given = {*variant.vars, *env.globals, *([variant.fewshot.var] if variant.fewshot else [])}
        found: list[Need] = [(name, f"{template.ref} (a required input)", None) for name, spec
                             in template.inputs.items() if spec.is_required and name not in given]
        for where, assertion in plan.located_assertions(variant, index):
            for key, source in assertion.template_strings():
                found += [(name, format_path([*where, key]), source) for name
                          in sorted(_reads(env, source)) if name not in given]
        needs[variant.id] = found
    return needs


def _reads(env: Any, source: str) -> set[str]:
    """The variables a short template reads (none when it does not parse: that error is
    reported, with its location, by the first case's render)."""
    if "{{" not in source and "{%" not in source:
        return set()
    from jinja2 import TemplateSyntaxError, meta

    try:
        return meta.find_undeclared_variables(env.parse(source))
    except TemplateSyntaxError:
        return set()


def check_case_variables(plan: EvalPlan, case: Case, needs: dict[str, list[Need]]) -> None:
    """Every variable the prompts and assertions need is a field of ``case``.

    Raises:
        ConfigError: at the case's dataset line (or its entry in ``cases:``).
    """
    for variant in plan.spec.prompts:
        for name, user, source in needs[variant.id]:
            if name in case.vars or (source is not None
                                     and _renders(plan, variant, case, source)):
                continue
            if name in case.reserved:
                message = (f"{name!r} is a reserved case key: it configures the case and is "
                           f"never a template variable; rename it in {user} and in the data")
            else:
                fields = ", ".join(sorted(map(str, case.vars))) or "none"
                message = (f"case {case.id!r} has no {name!r}, which {user} reads (its "
                           f"fields: {fields})")
            raise case_error(plan, case, message)


def _renders(plan: EvalPlan, variant: PromptVariant, case: Case, source: str) -> bool:
    """Whether an assertion text renders for a case that lacks a variable it reads."""
    try:
        plan.store.render_string(source, _light_variables(variant, case))
    except PromptkitError:
        return False
    return True


def case_error(plan: EvalPlan, case: Case, message: str, path: Sequence[str | int] = ()
               ) -> ConfigError:
    """An error about one case: at its dataset line, or at its entry in ``cases:``."""
    loaded = plan.loaded
    if loaded.dataset_path is None:
        return loaded.error(message, ["cases", case.index, *path])
    return ConfigError(message, str(loaded.dataset_path), case.line,
                       format_path(path) if path else None)


def check_assertion_texts(plan: EvalPlan, case: Case, *, own_only: bool = False) -> None:
    """Render every assertion string of every variant with a case, before any request (a
    typo such as ``value: "{{ lable }}"`` would otherwise fail every case).

    ``own_only`` checks only the case's own assertions, with its variables and the
    variants' (no example selection: an assertion of one case need not cost a search).

    Raises:
        ConfigError: naming the spec file (or the case's dataset line), the assertion and
            the problem; for a missing variable, the fields the case has.
    """
    loaded = plan.loaded
    for index, variant in enumerate(plan.spec.prompts):
        located = [(where, a) for where, a in plan.located_assertions(variant, index, case)
                   if where[0] == "case" or not own_only]
        if not located:
            continue
        values = _light_variables(variant, case) if own_only else \
            plan.variables(variant, case, offline=True)
        _render_texts(plan, case, values, located, lambda message, path: case_error(
            plan, case, message, path[1:]) if path[0] == "case"  # its dataset line
            else loaded.error(message, path))


def _render_texts(plan: EvalPlan, case: Case, values: dict[str, Any],
                  located: list[tuple[list[str | int], Assertion]],
                  error: Callable[[str, list[str | int]], ConfigError]) -> None:
    """Render each assertion's texts with ``values``; the first that fails is ``error``
    at its key path (a missing variable's message lists the fields the case has)."""
    for where, assertion in located:
        for key, source in assertion.template_strings():
            try:
                plan.store.render_string(source, values)
            except PromptkitError as exc:
                message = str(exc)
                if "is undefined" in message:
                    fields = ", ".join(sorted(map(str, case.vars))) or "none"
                    message += f" (case {case.id!r} has: {fields})"
                raise error(f"{source[:60]!r}: {message}", [*where, key]) from None


def _light_variables(variant: PromptVariant, case: Case) -> dict[str, Any]:
    values = {**case.vars, **variant.vars}
    if variant.fewshot is not None:
        values[variant.fewshot.var] = []
    return values


def case_assertions(plan: EvalPlan, case: Case) -> list[Assertion]:
    """A case's own ``assert`` list, validated (once per distinct list).

    Raises:
        ConfigError: at the case's dataset line and the key path within its ``assert``.
    """
    raw = case.asserts
    if not raw or all(isinstance(a, Assertion) for a in raw):
        return list(raw)
    key = json.dumps(raw, sort_keys=True, default=str)
    found = plan.case_assertion_cache.get(key)
    if found is None:
        try:
            found = _ASSERTION_LIST.validate_python(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            message = error["msg"].removeprefix("Value error, ")
            raise case_error(plan, case, message, ["assert", *error["loc"]]) from None
        check_references_of(found, plan.spec, lambda message, path: case_error(
            plan, case, message, ["assert", *path]))
        plan.case_assertion_cache[key] = found
    return found
