"""Chat roles in templates: ``{% message "role" %}...{% endmessage %}`` blocks.

A block emits private-use marker characters as *template data*; :func:`split_messages`
cuts the rendered text at them into chat messages. The sandbox passes every value
through :func:`strip_markers`, so no value can open, close or change a role.
"""

from __future__ import annotations

import re

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError
from jinja2.ext import Extension
from jinja2.parser import Parser

ROLES = ("system", "developer", "user", "assistant")

# Private-use code points: they never occur in real prompts, and finalize() strips
# them from every value, so only template text can produce them.
MESSAGE_OPEN = "\ue000"
MESSAGE_ROLE_END = "\ue001"
MESSAGE_CLOSE = "\ue002"
_MARKERS = {ord(MESSAGE_OPEN): None, ord(MESSAGE_ROLE_END): None, ord(MESSAGE_CLOSE): None}
MESSAGE_MARKER = re.compile("[\ue000-\ue002]")


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
