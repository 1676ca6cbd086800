"""What a rewritten template must keep, checked by parsing both versions.

A proposer may reword a template's text, never its machinery: a candidate is kept only
when it parses and has exactly its parent's variables, its tags (loops, conditions,
blocks, includes, macros, in the same order) and its chat-role structure (which message
blocks open and close, and where), with its ``{{ ... }}`` expressions in the same order
among them: only the text between them may change. This module also reads which fields
of each few-shot example a template uses, so a pool lacking one is refused before any
request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import jinja2
from jinja2 import nodes

from ..templates.messages import MESSAGE_CLOSE, MESSAGE_OPEN, MESSAGE_ROLE_END

# Tags whose place in the template is its structure (their bodies are walked for more).
_STRUCTURAL = (nodes.For, nodes.If, nodes.Block, nodes.Include, nodes.Import,
               nodes.FromImport, nodes.Macro, nodes.CallBlock, nodes.FilterBlock,
               nodes.With, nodes.Assign, nodes.AssignBlock, nodes.Extends)


@dataclass(frozen=True)
class Skeleton:
    """A template body without its words: what a rewrite must keep.

    Attributes:
        variables: The inputs the body reads.
        tags: The structural tags and role markers, in order, with their expressions.
        outputs: The ``{{ ... }}`` expressions, counted.
    """

    variables: frozenset[str]
    tags: tuple[str, ...]
    outputs: Counter[str]


def skeleton(env: jinja2.Environment, body: str) -> Skeleton:
    """Parse ``body`` with the store's environment and reduce it to its skeleton.

    Raises:
        jinja2.TemplateSyntaxError: the body does not parse.
    """
    tree = env.parse(body)
    from jinja2 import meta

    variables = frozenset(meta.find_undeclared_variables(tree) - set(env.globals))
    tags: list[str] = []
    outputs: Counter[str] = Counter()
    _walk(tree, tags, outputs)
    return Skeleton(variables, tuple(tags), outputs)


def _walk(node: nodes.Node, tags: list[str], outputs: Counter[str]) -> None:
    for child in node.iter_child_nodes():
        if isinstance(child, nodes.TemplateData):
            tags += _role_markers(child.data)
        elif isinstance(child, nodes.Output):
            for item in child.nodes:
                if isinstance(item, nodes.TemplateData):
                    tags += _role_markers(item.data)
                else:  # an expression keeps its place among the tags
                    outputs[_expression(item)] += 1
                    tags.append("{{ " + _expression(item) + " }}")
                    _walk(item, tags, outputs)
        elif isinstance(child, _STRUCTURAL):
            head = [_expression(f) for name, f in child.iter_fields()
                    if name not in ("body", "else_", "elif_") and isinstance(f, nodes.Node)]
            fields = [f"{name}={value!r}" for name, value in child.iter_fields()
                      if isinstance(value, str | bool | int) and name != "lineno"]
            tags.append(f"{type(child).__name__}({', '.join(head + fields)})")
            _walk(child, tags, outputs)
            tags.append(f"end {type(child).__name__}")
        else:
            _walk(child, tags, outputs)


def _role_markers(text: str) -> list[str]:
    """The role openings and closings inside a piece of template data."""
    found = []
    position = 0
    while True:
        opening = text.find(MESSAGE_OPEN, position)
        closing = text.find(MESSAGE_CLOSE, position)
        if opening < 0 and closing < 0:
            return found
        if closing < 0 or 0 <= opening < closing:
            end = text.find(MESSAGE_ROLE_END, opening)
            found.append(f"message {text[opening + 1:end]}")
            position = end + 1
        else:
            found.append("end message")
            position = closing + 1


def _expression(node: nodes.Node) -> str:
    """A node's expression as text without line numbers (``repr`` of jinja nodes holds
    none, and lists its fields in order)."""
    return repr(node)


def structure_problem(env: jinja2.Environment, parent: str, candidate: str) -> str | None:
    """Why ``candidate`` may not replace ``parent`` (None when it may): it does not parse,
    or reads other variables, or changes the tags or the role structure."""
    try:
        new = skeleton(env, candidate)
    except jinja2.TemplateSyntaxError as exc:
        return f"it does not parse (line {exc.lineno}: {exc.message})"
    old = skeleton(env, parent)
    if new.variables != old.variables:
        added, lost = sorted(new.variables - old.variables), sorted(old.variables - new.variables)
        parts = ([f"reads {', '.join(added)}"] if added else []) + (
            [f"no longer reads {', '.join(lost)}"] if lost else [])
        return "it " + " and ".join(parts)
    if new.outputs != old.outputs:
        return "its {{ ... }} expressions differ from its parent's"
    if new.tags != old.tags:
        return "its tags, chat roles or the order of its expressions differ from its parent's"
    return None


def example_fields(env: jinja2.Environment, body: str, variable: str) -> set[str]:
    """The fields the body reads of each item of ``variable`` in ``{% for x in variable %}``
    loops (``x.article``, ``x["summary"]``); empty when no loop reads fields of it."""
    fields: set[str] = set()
    for loop in env.parse(body).find_all(nodes.For):
        if not (isinstance(loop.iter, nodes.Name) and loop.iter.name == variable
                and isinstance(loop.target, nodes.Name)):
            continue
        item = loop.target.name
        for node in loop.find_all((nodes.Getattr, nodes.Getitem)):
            if isinstance(node.node, nodes.Name) and node.node.name == item:
                if isinstance(node, nodes.Getattr):
                    fields.add(node.attr)
                elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                    fields.add(node.arg.value)
    return fields
