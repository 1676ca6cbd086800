"""The Jinja environment every prompt renders in: sandbox, budgets and role blocks.

Templates are code the project reviews; variable values are data from anywhere
(datasets, users, model output). So the rules are:

* ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``: no attribute escapes,
  no mutation of values, and a missing variable is an error, never an empty string.
* Size caps: no single value a render builds may exceed ``max_output_chars``. Every
  operation that can make a value much larger than its inputs is checked *before*
  it allocates: ``*``, ``+``, ``~``, ``%``-formatting, ``str.format``, joins,
  replacements, width-taking filters and methods, ``tojson``/``pprint``,
  ``batch``/``slice``, and the buffers of macros and ``{% set %}`` blocks. Sizes of
  lists and dicts are estimated without building their text. Integers from ``*``
  and ``**`` are capped by bit length.
* Budgets per render: ``range()`` items; operations (each for-loop item, including
  recursive and filtered loops, counts one, each call the template makes counts
  :data:`CALL_COST`); and characters processed (everything built or output, and
  the text that text filters, sorting filters and string methods go through:
  :data:`PROCESSED_CHARS_PER_OUTPUT_CHAR` times the output cap). So no loop,
  recursion or repeated big operation can run for minutes. Comparisons (``==``,
  ``in``) are not metered beyond the operation budget of the loop they run in.
* Role blocks (``{% message "system" %}...{% endmessage %}``) emit private-use
  marker characters as *template data*. Every ``{{ value }}`` passes through
  ``finalize``, which removes those characters, so no value can open, close or
  change a role. Values are inserted once and never parsed as template code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from pprint import PrettyPrinter
from typing import Any

from jinja2 import StrictUndefined, Template, nodes, pass_environment
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.filters import make_attrgetter
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import TemplateRenderError, TemplateSecurityError
from .limits import format_size, percent_size, replaced_size, text_size
from .messages import MESSAGE_MARKER, MessageExtension, strip_markers

DEFAULT_MAX_OUTPUT_CHARS = 1_000_000
DEFAULT_MAX_RANGE_ITEMS = 1_000_000
DEFAULT_MAX_OPERATIONS = 2_000_000
CALL_COST = 10  # a macro or method call is about ten times the work of a loop step
PROCESSED_CHARS_PER_OUTPUT_CHAR = 100
_MAX_EXPONENT = 1_000
_MAX_INT_BITS = 65_536  # about 19,700 digits, more than str() will print anyway
_MAX_JSON_INDENT = 16
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})
# Case mappings can lengthen text: one character may map to three ("ﬃ".upper() == "FFI").
_CASE_METHODS = frozenset({"upper", "lower", "title", "capitalize", "swapcase", "casefold"})
_CASE_GROWTH = 3
# Filters that turn their whole input into text: the input's text must fit the cap.
_TEXT_FILTERS = ("capitalize", "e", "escape", "forceescape", "lower", "safe", "string",
                 "striptags", "title", "trim", "truncate", "upper", "urlencode",
                 "wordcount", "xmlattr")
# Filters that compare (and by default lowercase) every item: their input's text
# counts as processed, so a list of a million references to one long string stops.
_SCANNING_FILTERS = ("dictsort", "groupby", "max", "min", "sort", "unique")


class _Budget:
    """Per-render counters, so limits hold across loops, macros and includes."""

    def __init__(self, env: PromptEnvironment):
        self.max_range_items = env.max_range_items
        self.max_operations = env.max_operations
        self.max_processed_chars = env.max_output_chars * PROCESSED_CHARS_PER_OUTPUT_CHAR
        self.range_items = 0
        self.operations = 0
        self.processed_chars = 0

    def spend_operations(self, count: int = 1) -> None:
        self.operations += count
        if self.operations > self.max_operations:
            raise TemplateSecurityError(
                f"the template ran more than {self.max_operations:,} operations (loop "
                "iterations and calls) in one render"
            )

    def spend_chars(self, count: int) -> None:
        self.processed_chars += max(count, 0)
        if self.processed_chars > self.max_processed_chars:
            raise TemplateSecurityError(
                f"the template processed more than {self.max_processed_chars:,} characters "
                "in one render"
            )


_active_budget: ContextVar[_Budget | None] = ContextVar("promptkit_render_budget",
                                                        default=None)


class _CappedWriter:
    """A stream for ``PrettyPrinter`` that refuses to grow past the output cap."""

    def __init__(self, env: PromptEnvironment):
        self.env = env
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        self.size += len(text)
        self.env._check_size(self.size)
        self.parts.append(text)


class _CappedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to a size-checked join and meters every for-loop.

    The sandbox has no hooks for ``~`` or for loops, so both are rewritten here.
    """

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.capped_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # `for x in items` becomes `for x in environment.budget_iter(items)`, also for
        # filtered loops (the filter runs on the counted items). A recursive loop's
        # inner `loop(children)` calls are counted in PromptEnvironment.call.
        counted = nodes.Call(nodes.EnvironmentAttribute("budget_iter"), [node.iter], [],
                             None, None, lineno=node.lineno)
        metered = nodes.For(node.target, counted, node.body, node.else_, node.test,
                            node.recursive, lineno=node.lineno)
        super().visit_For(metered, frame)


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """A sandboxed, size-capped Jinja environment with chat role blocks.

    Args:
        max_output_chars: Cap on the rendered prompt and on any single string, list
            or buffer built while rendering it. The characters processed in one
            render may reach :data:`PROCESSED_CHARS_PER_OUTPUT_CHAR` times this.
        max_range_items: Cap on the total number of items ``range()`` may produce in
            one render.
        max_operations: Budget of one render for for-loop iterations (one each) and
            calls of macros, functions and methods (:data:`CALL_COST` each).
        **options: Passed on to :class:`jinja2.Environment` (``loader`` most often).
    """

    intercepted_binops = frozenset({"*", "+", "**", "%"})
    code_generator_class = _CappedCodeGenerator

    def __init__(
        self,
        *,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        max_range_items: int = DEFAULT_MAX_RANGE_ITEMS,
        max_operations: int = DEFAULT_MAX_OPERATIONS,
        **options: Any,
    ):
        options.setdefault("trim_blocks", True)
        options.setdefault("lstrip_blocks", True)
        super().__init__(
            undefined=StrictUndefined,
            finalize=self._finalize,
            extensions=[MessageExtension],
            autoescape=False,
            **options,
        )
        self.max_output_chars = max_output_chars
        self.max_range_items = max_range_items
        self.max_operations = max_operations
        self.globals.pop("lipsum", None)  # unbounded text generator, no use in prompts
        self.filters.pop("urlize", None)  # HTML links whose attributes repeat per link
        self.globals["range"] = self._range
        for name in _TEXT_FILTERS:
            self._guard_filter(name, self._check_case_mapping if name in _CASE_METHODS
                               else self._check_text)
        for name in _SCANNING_FILTERS:
            self._guard_filter(name, self._check_scan)
        self._guard_filter("center", self._check_center)
        self._guard_filter("indent", self._check_indent)
        self._guard_filter("replace", self._check_replace)
        self._guard_filter("join", self._check_join)
        self._guard_filter("format", self._check_format)
        self._guard_filter("tojson", self._check_tojson)
        self._guard_filter("batch", self._check_count)
        self._guard_filter("slice", self._check_count)
        self._guard_filter("sum", self._check_sum)
        self.filters["wordwrap"] = self._capped_wordwrap(self.filters["wordwrap"])
        self.filters["pprint"] = self._pprint

    # -- limits --------------------------------------------------------------

    def _check_size(self, size: int) -> None:
        if size > self.max_output_chars:
            raise TemplateSecurityError(
                f"a value of {size:,} items exceeds the cap of {self.max_output_chars:,}"
            )

    def _spend(self, size: int) -> None:
        budget = _active_budget.get()
        if budget is not None:
            budget.spend_chars(size)

    def _charge(self, size: int) -> None:
        """Check the size of a value about to be built and count it as processed."""
        self._check_size(size)
        self._spend(size)

    def _check_bits(self, bits: float) -> None:
        if bits > _MAX_INT_BITS:
            raise TemplateSecurityError(
                f"an integer of about {bits:,.0f} bits exceeds the cap of {_MAX_INT_BITS:,}"
            )

    def _as_text(self, value: Any) -> str:
        """``str(value)``, refusing containers whose text would pass the cap.

        A string is already built, so it is taken as it is, whatever its size.
        """
        if isinstance(value, str):
            return value
        self._check_size(text_size(value, self.max_output_chars))
        return str(value)

    def _finalize(self, value: Any) -> str:
        text = self._as_text(value)
        self._spend(len(text))
        return strip_markers(text) if MESSAGE_MARKER.search(text) else text

    def capped_concat(self, values: Iterable[Any]) -> str:
        values = tuple(values)
        self._charge(sum(text_size(value, self.max_output_chars) for value in values))
        return "".join(map(str, values))

    def concat(self, chunks: Iterable[str]) -> str:  # type: ignore[override]
        """Join the output of a macro, block, ``{% set %}`` or ``{% filter %}`` body."""
        parts = list(chunks)
        self._charge(sum(map(len, parts)))
        return "".join(parts)

    def _range(self, *args: int) -> range:
        items = range(*args)
        budget = _active_budget.get() or _Budget(self)
        budget.range_items += len(items)
        if budget.range_items > budget.max_range_items:
            raise TemplateSecurityError(
                f"range() produced more than {budget.max_range_items:,} items")
        return items

    def budget_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Count each item a for-loop draws against the render's operation budget."""
        budget = _active_budget.get() or _Budget(self)
        for item in iterable:
            budget.spend_operations()
            yield item

    # -- filters ---------------------------------------------------------------

    def _guard_filter(self, name: str, check: Callable[..., Any]) -> None:
        """Run ``check(value, *args, **kwargs)`` before the filter; it returns the value
        to filter (a materialised list, for a join)."""
        func = self.filters[name]
        skip = 1 if getattr(func, "jinja_pass_arg", None) else 0  # context/environment

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            value = check(*args[skip:], **kwargs)
            return func(*args[:skip], value, *args[skip + 1 :], **kwargs)

        self.filters[name] = guarded

    def _check_text(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        self._spend(len(self._as_text(value)))
        return value

    def _check_case_mapping(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        text = self._as_text(value)
        self._spend(len(text))
        if not text.isascii():
            self._charge(len(text) * _CASE_GROWTH)
        return value

    def _check_scan(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _active_budget.get()
        if budget is not None:
            left = budget.max_processed_chars - budget.processed_chars
            budget.spend_chars(text_size(value, left))
        return value

    def _check_center(self, value: Any, width: Any = 80) -> Any:
        text = self._as_text(value)
        if isinstance(width, int):
            self._charge(max(width, len(text)))
        return value

    def _check_indent(self, value: Any, width: Any = 4, first: bool = False,
                      blank: bool = False) -> Any:
        text = self._as_text(value)
        unit = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        self._charge(len(text) + (len(text.splitlines()) + 1) * max(unit, 0))
        return value

    def _check_replace(self, value: Any, old: Any, new: Any, count: Any = None) -> Any:
        parts = [self._as_text(part) for part in (value, old, new)]
        self._charge(replaced_size(*parts, count))
        return value

    def _check_join(self, value: Iterable[Any], d: Any = "", attribute: Any = None) -> list:
        items = list(value)
        shown = map(make_attrgetter(self, attribute), items) if attribute is not None else items
        total = len(self._as_text(d)) * max(len(items) - 1, 0)
        for item in shown:
            total += text_size(item, self.max_output_chars)
            if total > self.max_output_chars:
                break
        self._charge(total)
        return items

    def _check_format(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        fmt = self._as_text(value)
        self._charge(percent_size(fmt, kwargs or args, self.max_output_chars))
        return value

    def _check_tojson(self, value: Any, indent: Any = None) -> Any:
        if isinstance(indent, str) and len(indent) <= _MAX_JSON_INDENT:
            indent = len(indent)
        elif indent is not None and (not isinstance(indent, int) or isinstance(indent, bool)
                                     or not 0 <= indent <= _MAX_JSON_INDENT):
            raise TemplateSecurityError(
                f"tojson indent must be a whole number from 0 to {_MAX_JSON_INDENT}")
        self._charge(text_size(value, self.max_output_chars, indent))
        return value

    def _check_count(self, value: Any, count: Any, fill_with: Any = None) -> Any:
        if isinstance(count, int):  # batch() and slice() build lists this long
            self._charge(count)
        return value

    def _check_sum(self, value: Any, attribute: Any = None, start: Any = 0) -> Any:
        if not isinstance(start, int | float | complex):
            raise TemplateSecurityError(
                "sum() can only start from a number in templates (adding lists takes "
                "quadratic time; use join or a loop)")
        return value

    def _capped_wordwrap(self, func: Callable[..., str]) -> Callable[..., str]:
        @pass_environment
        def wordwrap(environment: Any, s: Any, width: int = 79, break_long_words: bool = True,
                     wrapstring: Any = None, break_on_hyphens: bool = True) -> str:
            # The filter splits the text at every line break and joins all lines with
            # wrapstring, so wrapping with "\n" gives one "\n" per separator to size.
            text = self._as_text(s)
            separator = (environment.newline_sequence if wrapstring is None
                         else self._as_text(wrapstring))
            wrapped = func(environment, text, width, break_long_words, "\n", break_on_hyphens)
            self._charge(len(wrapped) + wrapped.count("\n") * (len(separator) - 1))
            return wrapped if separator == "\n" else wrapped.replace("\n", separator)

        return wordwrap

    def _pprint(self, value: Any) -> str:
        # Nested dicts indent by their keys' length, so the text is written to a
        # stream that stops at the cap instead of being sized in advance.
        self._check_size(text_size(value, self.max_output_chars))
        writer = _CappedWriter(self)
        PrettyPrinter(stream=writer).pprint(value)
        text = "".join(writer.parts)[:-1]  # pprint() ends with a newline, pformat() not
        self._charge(len(text))
        return text

    # -- operators and calls ---------------------------------------------------

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        sized = (str, bytes, bytearray, list, tuple)
        if operator == "*":
            if isinstance(left, sized) and isinstance(right, int):
                self._charge(len(left) * right)
            elif isinstance(right, sized) and isinstance(left, int):
                self._charge(len(right) * left)
            elif isinstance(left, int) and isinstance(right, int):
                self._check_bits(left.bit_length() + right.bit_length())
        elif operator == "+":
            if isinstance(left, sized) and isinstance(right, sized):
                self._charge(len(left) + len(right))
        elif operator == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise TemplateSecurityError(f"exponent {right} is too large")
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                self._check_bits(right * math.log2(abs(left)))
        elif operator == "%" and isinstance(left, str | bytes | bytearray):
            self._charge(percent_size(left, right, self.max_output_chars))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _active_budget.get()
        if budget is not None:
            budget.spend_operations(CALL_COST)
        if isinstance(__obj, LoopContext) and args:  # loop(children) in a recursive loop
            args = (__self.budget_iter(args[0]), *args[1:])
        else:
            args = __self._check_method_call(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def _check_method_call(self, method: Any, args: tuple[Any, ...],
                           kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """Size-check a call of a method that can build a large result."""
        owner = getattr(method, "__self__", None)
        name = getattr(method, "__name__", "")
        if isinstance(owner, int) and name == "to_bytes":
            length = args[0] if args else kwargs.get("length", 1)
            if isinstance(length, int):
                self._charge(length)
        if not isinstance(owner, str | bytes | bytearray):
            return args
        self._spend(len(owner))  # string methods go through the whole string
        if name in _WIDTH_METHODS and args and isinstance(args[0], int):
            self._charge(max(args[0], len(owner)))
        elif name in _CASE_METHODS and isinstance(owner, str) and not owner.isascii():
            self._charge(len(owner) * _CASE_GROWTH)
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(tabsize, int):
                tabs = owner.count("\t" if isinstance(owner, str) else b"\t")
                self._charge(len(owner) + max(tabsize, 0) * (tabs + 1))
        elif name == "replace" and len(args) >= 2:
            self._charge(replaced_size(owner, *args[:3]))
        elif name == "join" and args:
            items = list(args[0])
            size = sum(len(item) for item in items if isinstance(item, str | bytes | bytearray))
            self._charge(size + len(owner) * max(len(items) - 1, 0))
            return (items, *args[1:])
        elif name == "translate" and args:
            table = args[0]
            values = (table.values() if isinstance(table, Mapping)
                      else table if isinstance(table, list | tuple) else ())
            longest = max((len(v) for v in values if isinstance(v, str)), default=1)
            self._charge(len(owner) * max(longest, 1))
        return args

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # str.format is wrapped when the attribute is read; the size check needs the
        # arguments too, so it runs when the wrapper is called.
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt, is_map = value.__self__, value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            fields = args[0] if is_map and args else kwargs
            positional = () if is_map else args
            self._charge(format_size(fmt, positional, fields, self.max_output_chars))
            return wrapped(*args, **kwargs)

        return functools.update_wrapper(checked, value)

    # -- rendering -----------------------------------------------------------

    def render(self, template: Template, variables: Mapping[str, Any]) -> str:
        """Render with fresh budgets, stopping at the output size cap."""
        with _BudgetScope(self):
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
    def __init__(self, env: PromptEnvironment):
        self._budget = _Budget(env)

    def __enter__(self) -> _Budget:
        self._token = _active_budget.set(self._budget)
        return self._budget

    def __exit__(self, *exc: object) -> None:
        _active_budget.reset(self._token)
