"""Sizes of what a template operation would build, computed before it is built.

The sandbox (:mod:`.sandbox`) asks these functions how long a value, a ``%``-format, a
``str.format`` or a replacement would be, and refuses the operation when the answer is
over its cap, so nothing huge is ever allocated. Lists and dicts are measured without
making their text, and measuring stops as soon as the limit is passed.
"""

from __future__ import annotations

import itertools
import re
import string
from collections import deque
from collections.abc import Iterator, Mapping, MappingView
from typing import Any

from jinja2.environment import TemplateModule
from jinja2.utils import Namespace

from ..errors import TemplateSecurityError

_DONE = object()


def _entries(value: Any) -> tuple[int, Iterator[Any], int] | None:
    """A container's entry count, its children and the separator characters per entry."""
    if isinstance(value, list | tuple):
        return len(value), iter(value), 2  # "v, "
    if isinstance(value, Namespace):
        value = object.__getattribute__(value, "_Namespace__attrs")
    if isinstance(value, dict | Mapping):
        return len(value), itertools.chain.from_iterable(value.items()), 4  # "k: v, "
    if isinstance(value, set | frozenset | deque | MappingView):
        return len(value), iter(value), 2
    return None


def _scalar_size(value: Any, nested: bool, reprs: dict[int, int]) -> int:
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if isinstance(value, float | complex):
        return 50  # a complex is two floats
    if isinstance(value, bytes | bytearray):
        return 4 * len(value) + 3
    if isinstance(value, TemplateModule):  # str() is the imported template's output
        return sum(map(len, value._body_stream)) if not nested else 100
    if not nested:
        return len(str(value))
    if id(value) not in reprs:  # the same object may be repeated a million times
        reprs[id(value)] = len(repr(value))
    return reprs[id(value)]


def text_size(value: Any, limit: int, indent: int | None = None) -> int:
    """An upper estimate of ``len(str(value))``, found without building the text.

    Lists, dicts and other containers are walked iteratively (no recursion limit),
    stopping as soon as the estimate passes ``limit``; nested strings count their
    quotes. An ``indent`` adds a line break and JSON-style indentation per entry.
    Escaping (``repr``, JSON, HTML) can still make the real text a few times longer.
    """
    if isinstance(value, str):
        return len(value)
    total = 0
    reprs: dict[int, int] = {}
    pending: list[Iterator[Any]] = [iter((value,))]
    while pending and total <= limit:
        item = next(pending[-1], _DONE)
        if item is _DONE:
            pending.pop()
            continue
        depth = len(pending) - 1
        if isinstance(item, str):
            total += len(item) + (2 if depth else 0)
        elif type(item) is int:  # the common cases first: long lists are walked
            total += item.bit_length() // 3 + 2
        elif type(item) is float:
            total += 24
        elif (entries := _entries(item)) is not None:
            count, children, separators = entries
            per_entry = separators
            if indent is not None:  # a line break and indentation per entry, and the end
                per_entry += 1 + (depth + 1) * indent
                total += 1 + depth * indent
            total += 2 + count * per_entry
            pending.append(children)
        else:
            total += _scalar_size(item, depth > 0, reprs)
    return total


def _number(digits: str) -> int:
    return int(digits[:13]) if digits else 0  # 13 digits are already far past any cap


_PERCENT_TAIL = re.compile(r"[-+ #0]*(\*|[0-9]*)(?:\.(\*|[0-9]*))?[hlL]?(.?)", re.S)


def _percent_specs(fmt: str | bytes) -> Iterator[tuple[Any, str, str, str]]:
    """Each conversion of a ``%``-format string as (key, width, precision, type).

    Parsed the way CPython does: ``%`` [``(key)``] [flags] [width] [``.`` precision]
    [length modifier] type, where a key may hold balanced parentheses.
    """
    text = fmt.decode("latin-1") if isinstance(fmt, bytes | bytearray) else fmt
    pos = 0
    while (pos := text.find("%", pos)) >= 0:
        pos += 1
        key = None
        if text.startswith("(", pos):
            depth, start = 0, pos
            while pos < len(text):
                depth += {"(": 1, ")": -1}.get(text[pos], 0)
                pos += 1
                if depth == 0:
                    break
            key = text[start + 1 : pos - 1]
        tail = _PERCENT_TAIL.match(text, pos)
        assert tail is not None  # every part of the pattern is optional
        pos = tail.end()
        yield key, tail.group(1), tail.group(2) or "", tail.group(3)


def percent_size(fmt: str | bytes, args: Any, limit: int) -> int:
    """An upper estimate of ``len(fmt % args)``.

    Raises:
        TemplateSecurityError: the format takes its width or precision from the
            arguments (``*``), which would hide the size from this check.
    """
    total, position = len(fmt), 0
    for key, width, precision, kind in _percent_specs(fmt):
        if "*" in (width, precision):
            raise TemplateSecurityError(
                "'*' widths and precisions in format strings are not allowed in templates")
        if kind == "%":
            continue
        if key is not None:
            if isinstance(fmt, bytes | bytearray):
                key = key.encode("latin-1")
            arg = args.get(key) if isinstance(args, Mapping) else None
        elif isinstance(args, tuple):
            arg = args[position] if position < len(args) else None
            position += 1
        else:
            arg = args
        total += _number(width) + _number(precision) + text_size(arg, limit)
        if total > limit:
            break
    return total


_FORMAT_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?([0-9]*)[,_]?(?:\.([0-9]*))?[a-zA-Z%]?",
                          re.S)
_FIELD_HEAD = re.compile(r"[^.\[]*")


def format_size(fmt: str, args: tuple[Any, ...], kwargs: Any, limit: int) -> int:
    """An upper estimate of ``len(fmt.format(*args, **kwargs))``.

    Raises:
        TemplateSecurityError: a format spec holds a nested replacement field
            (``{:>{}}``), which would take a width from the arguments unchecked.
    """
    total, auto = 0, 0
    for literal, field, spec, _ in string.Formatter().parse(fmt):
        total += len(literal)
        if field is None:
            continue
        if "{" in (spec or ""):
            raise TemplateSecurityError(
                "nested replacement fields in a format spec are not allowed in templates")
        head = _FIELD_HEAD.match(field).group()  # type: ignore[union-attr]
        if not head:
            index, auto = auto, auto + 1
        elif head.isdecimal():
            index = int(head)
        else:
            index = None
        if index is None:
            arg = kwargs.get(head) if isinstance(kwargs, Mapping) else None
        else:
            arg = args[index] if index < len(args) else None
        if match := _FORMAT_SPEC.fullmatch(spec or ""):
            total += _number(match.group(1)) + _number(match.group(2) or "")
        else:  # a type's own mini-language (dates): count every number in it
            total += sum(_number(digits) for digits in re.findall(r"[0-9]+", spec))
        total += text_size(arg, limit)
        if total > limit:
            break
    return total


def replaced_size(text: Any, old: Any, new: Any, count: Any = None) -> int:
    """The exact length of ``text.replace(old, new, count)``, without building it."""
    if not all(isinstance(part, str | bytes | bytearray) for part in (text, old, new)):
        return len(text) if isinstance(text, str | bytes | bytearray) else 0
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))
