"""The Jinja environment every prompt renders in: sandbox, size caps and role blocks.

Templates are code the project reviews; variable values are data from anywhere
(datasets, users, model output). So the rules are:

* ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``: no attribute escapes,
  no mutation of values, and a missing variable is an error, never an empty string.
* Size caps: string/list ``*`` and ``+``, ``**``, ``%``-formatting, width-taking
  filters and ``str`` methods, ``range`` and the rendered output are all bounded, so
  a value (or a careless loop) cannot blow up memory.
* Role blocks (``{% message "system" %}...{% endmessage %}``) emit private-use
  marker characters as *template data*. Every ``{{ value }}`` passes through
  ``finalize``, which removes those characters, so no value can open, close or
  change a role. Values are inserted once and never parsed as template code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import TemplateRenderError, TemplateSecurityError

ROLES = ("system", "developer", "user", "assistant")

# Private-use code points: they never occur in real prompts, and finalize() strips
# them from every value, so only template text can produce them.
MESSAGE_OPEN = "\ue000"
MESSAGE_ROLE_END = "\ue001"
MESSAGE_CLOSE = "\ue002"
_MARKERS = {ord(MESSAGE_OPEN): None, ord(MESSAGE_ROLE_END): None, ord(MESSAGE_CLOSE): None}

DEFAULT_MAX_OUTPUT_CHARS = 1_000_000
DEFAULT_MAX_RANGE_ITEMS = 1_000_000
_MAX_EXPONENT = 1_000
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})


class _Budget:
    """Per-render counters, so limits hold across loops and includes."""

    def __init__(self, max_range_items: int):
        self.range_items = 0
        self.max_range_items = max_range_items


_budget: ContextVar[_Budget | None] = ContextVar("promptkit_render_budget", default=None)


class MessageExtension(Extension):
    """``{% message "role" %}...{% endmessage %}``: one chat message.

    The role must be a string literal, so no variable can choose it. Blocks work
    inside loops and conditionals (a few-shot loop emits user/assistant turns) but
    cannot nest.
    """

    tags = frozenset({"message"})

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        token = parser.stream.current
        if token.type != "string":
            raise JinjaSyntaxError(
                "message role must be a quoted string literal, e.g. {% message \"user\" %}",
                lineno,
            )
        role = token.value
        next(parser.stream)
        if role not in ROLES:
            raise JinjaSyntaxError(
                f"unknown message role {role!r} (use one of: {', '.join(ROLES)})", lineno
            )
        if getattr(parser, "_promptkit_in_message", False):
            raise JinjaSyntaxError("message blocks cannot be nested", lineno)
        parser._promptkit_in_message = True  # type: ignore[attr-defined]
        try:
            body = parser.parse_statements(("name:endmessage",), drop_needle=True)
        finally:
            parser._promptkit_in_message = False  # type: ignore[attr-defined]
        start = nodes.Output([nodes.TemplateData(MESSAGE_OPEN + role + MESSAGE_ROLE_END)])
        end = nodes.Output([nodes.TemplateData(MESSAGE_CLOSE)])
        start.set_lineno(lineno)
        end.set_lineno(lineno)
        return [start, *body, end]


def strip_markers(text: str) -> str:
    """Remove role markers from a value so it cannot change message boundaries."""
    return text.translate(_MARKERS)


def _finalize(value: Any) -> str:
    return strip_markers(str(value))


def _check_format_string(fmt: str, cap: int) -> None:
    # A width or precision is what turns a short format string into a huge one.
    if "%*" in fmt or ".*" in fmt:
        raise TemplateSecurityError("'*' widths in format strings are not allowed in templates")
    for digits in re.findall(r"\d+", fmt):
        if len(digits) > 12 or int(digits) > cap:
            raise TemplateSecurityError(f"format width {digits} exceeds the output size cap")


class _CappedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a size-checked join (the sandbox has no hook for ``~``)."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.capped_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """A sandboxed, size-capped Jinja environment with chat role blocks.

    Args:
        max_output_chars: Cap on the rendered prompt and on any string built while
            rendering it.
        max_range_items: Cap on the total number of items ``range()`` may produce in
            one render.
        **options: Passed on to :class:`jinja2.Environment` (``loader`` most often).
    """

    intercepted_binops = frozenset({"*", "+", "**", "%"})
    code_generator_class = _CappedCodeGenerator

    def __init__(
        self,
        *,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        max_range_items: int = DEFAULT_MAX_RANGE_ITEMS,
        **options: Any,
    ):
        options.setdefault("trim_blocks", True)
        options.setdefault("lstrip_blocks", True)
        super().__init__(
            undefined=StrictUndefined,
            finalize=_finalize,
            extensions=[MessageExtension],
            autoescape=False,
            **options,
        )
        self.max_output_chars = max_output_chars
        self.max_range_items = max_range_items
        self.globals.pop("lipsum", None)  # unbounded text generator, no use in prompts
        self.globals["range"] = self._range
        self.filters["center"] = self._wrap_width_filter(self.filters["center"])
        self.filters["indent"] = self._wrap_width_filter(self.filters["indent"])
        self.filters["format"] = self._wrap_format_filter(self.filters["format"])

    # -- limits --------------------------------------------------------------

    def _too_big(self, size: int) -> None:
        if size > self.max_output_chars:
            raise TemplateSecurityError(
                f"a value of {size:,} items exceeds the cap of {self.max_output_chars:,}"
            )

    def capped_concat(self, values: Iterable[Any]) -> str:
        parts = [str(value) for value in values]
        self._too_big(sum(map(len, parts)))
        return "".join(parts)

    def _range(self, *args: int) -> range:
        items = range(*args)
        budget = _budget.get()
        limit = budget.max_range_items if budget else self.max_range_items
        used = (budget.range_items if budget else 0) + len(items)
        if used > limit:
            raise TemplateSecurityError(f"range() produced more than {limit:,} items")
        if budget:
            budget.range_items = used
        return items

    def _wrap_width_filter(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def capped(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
            if isinstance(width, int):
                lines = str(value).count("\n") + 1
                self._too_big(width * lines)
            return func(value, width, *args, **kwargs)

        return capped

    def _wrap_format_filter(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def capped(value: Any, *args: Any, **kwargs: Any) -> Any:
            _check_format_string(str(value), self.max_output_chars)
            return func(value, *args, **kwargs)

        return capped

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        sized = (str, list, tuple)
        if operator == "*":
            if isinstance(left, sized) and isinstance(right, int):
                self._too_big(len(left) * right)
            elif isinstance(right, sized) and isinstance(left, int):
                self._too_big(len(right) * left)
        elif operator == "+":
            if isinstance(left, sized) and isinstance(right, sized):
                self._too_big(len(left) + len(right))
        elif operator == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise TemplateSecurityError(f"exponent {right} is too large")
        elif operator == "%" and isinstance(left, str):
            _check_format_string(left, self.max_output_chars)
        return super().call_binop(context, operator, left, right)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if name in _WIDTH_METHODS and args and isinstance(args[0], int):
                self._too_big(args[0])
            elif name == "expandtabs" and args and isinstance(args[0], int):
                self._too_big(args[0] * (owner.count("\t") + 1) + len(owner))
            elif name == "replace" and len(args) >= 2:
                old, new = str(args[0]), str(args[1])
                count = owner.count(old) if old else len(owner) + 1
                self._too_big(len(owner) + count * len(new))
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # str.format is wrapped when the attribute is read, before any call() hook.
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and getattr(value, "__name__", "") in ("format", "format_map"):
            _check_format_string(owner, self.max_output_chars)
        return super().wrap_str_format(value)

    # -- rendering -----------------------------------------------------------

    def render(self, template: Template, variables: Mapping[str, Any]) -> str:
        """Render with a fresh range() budget, stopping at the output size cap."""
        with _BudgetScope(self.max_range_items):
            return self._collect(template.generate(dict(variables)))

    def _collect(self, chunks: Iterable[str]) -> str:
        total = 0
        parts: list[str] = []
        for chunk in chunks:
            total += len(chunk)
            if total > self.max_output_chars:
                raise TemplateRenderError(
                    f"rendered output exceeds the cap of {self.max_output_chars:,} characters"
                )
            parts.append(chunk)
        return "".join(parts)


class _BudgetScope:
    def __init__(self, max_range_items: int):
        self._budget = _Budget(max_range_items)

    def __enter__(self) -> _Budget:
        self._token = _budget.set(self._budget)
        return self._budget

    def __exit__(self, *exc: object) -> None:
        _budget.reset(self._token)


def split_messages(rendered: str) -> tuple[list[dict[str, str]], str]:
    """Split rendered output into chat messages and the text outside any block.

    Returns:
        The messages in order (content stripped of surrounding whitespace) and the
        concatenated text that stood outside every message block.
    """
    messages: list[dict[str, str]] = []
    outside: list[str] = []
    pos = 0
    while True:
        start = rendered.find(MESSAGE_OPEN, pos)
        if start < 0:
            outside.append(rendered[pos:])
            break
        outside.append(rendered[pos:start])
        role_end = rendered.index(MESSAGE_ROLE_END, start)
        close = rendered.index(MESSAGE_CLOSE, role_end)
        role = rendered[start + 1 : role_end]
        messages.append({"role": role, "content": rendered[role_end + 1 : close].strip()})
        pos = close + 1
    return messages, "".join(outside)
