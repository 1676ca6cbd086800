"""What reaches a terminal: text from models, datasets and servers, made harmless.

A model's output, a case id or a server's error message may hold control sequences
(``ESC[2J`` clears the screen, OSC 0 retitles the window, OSC 8 plants a hidden link).
Everything such text goes through :func:`printable` before it is printed, which shows
each control character as a visible escape (``\\x1b``) instead of sending it; :func:`clip`
also puts it on one line and cuts it (:func:`cut`) to fit a column.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, and the C1 controls (0x9b is a one-byte CSI).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """``text`` with every control character but tab and newline shown as ``\\xNN``."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(text))


def printable_line(text: object) -> str:
    """:func:`printable` on one line: newlines and tabs become spaces as well."""
    return printable(one_line(text))


def clip(text: str | None, limit: int, missing: str = "(no output)") -> str:
    """:func:`printable_line` cut to ``limit`` characters (``missing`` for no text)."""
    if text is None:
        return missing
    return cut(printable_line(text), limit)


def one_line(text: object) -> str:
    """``text`` with each run of whitespace (newlines and tabs too) as one space."""
    return " ".join(str(text).split())


def cut(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and "…" in ``limit``.

    The one place promptkit shortens text: :func:`clip` for terminals and Markdown,
    :func:`promptkit.redact.shorten` for messages, :func:`promptkit.scoring.verdicts.quoted`
    for values in verdicts.
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"
