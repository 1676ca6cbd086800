"""Keeping secrets out of everything promptkit writes or prints.

Every secret promptkit learns (an API key read from the environment, a header value, the
password of a ``http://user:pass@host`` URL) is registered here with :func:`add_secret`;
every text that may carry one (an endpoint's error message, a judge's answer, a model's
output, an unexpected traceback) goes through :func:`redact` before it is stored, written
or printed. Redaction happens before any truncation, so a key cannot survive cut in half,
and it also catches the key's URL-encoded, upper-cased and lower-cased forms, which some
servers echo back.

Run configs store header names only and URLs without userinfo (:func:`strip_userinfo`).
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

from .terminal import cut, one_line

MASK = "[redacted]"
_USERINFO = re.compile(r"//([^/?#]*)@")
MIN_SECRET_CHARS = 6  # shorter values would mask ordinary words; no real key is that short

_lock = threading.Lock()
_forms: set[str] = set()
_pattern: re.Pattern[str] | None = None


def add_secret(value: str | None) -> None:
    """Remember ``value`` (and its encoded forms) as a secret for :func:`redact`."""
    if not value or len(value) < MIN_SECRET_CHARS or value == "unused":
        return
    forms = {value, quote(value, safe=""), quote_plus(value), value.upper(), value.lower(),
             # how an HTTP client prints a header it refused ("Illegal header value b'…'")
             repr(value)[1:-1], repr(value.encode("utf-8", "backslashreplace"))[2:-1]}
    forms.discard("")
    global _pattern
    with _lock:
        if forms <= _forms:
            return
        _forms.update(forms)
        # Longest first, so a key is masked whole before any shorter form inside it.
        ordered = sorted(_forms, key=len, reverse=True)
        _pattern = re.compile("|".join(map(re.escape, ordered)))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def redact_data(value: Any) -> Any:
    """``value`` (JSON data: dicts, lists, strings, numbers) with :func:`redact` applied to
    every string in it, keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(item) for item in value]
    return value


def strip_userinfo(url: str) -> str:
    """``http://user:pass@host/v1`` → ``http://host/v1``; the password becomes a secret."""
    try:
        parts = urlsplit(url)
    except ValueError:  # unparsable (a bad IPv6 address...): cut what looks like userinfo
        match = _USERINFO.search(url)
        if match is None:
            return url
        user, _, password = match.group(1).partition(":")
        for secret in (password, unquote(password), match.group(1)):
            add_secret(secret)
        return url[:match.start(1)] + url[match.end(1) + 1:]
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    for secret in (password, unquote(password), userinfo):
        add_secret(secret)
    if user and password:  # the Basic auth header an HTTP client would build from them
        add_secret(base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode())
    return urlunsplit(parts._replace(netloc=host))


def forget_secrets() -> None:
    """Drop every registered secret (for tests)."""
    global _pattern
    with _lock:
        _forms.clear()
        _pattern = None


def shorten(text: str, limit: int = 300) -> str:
    """``text`` redacted, on one line, cut to ``limit`` characters (redacted first, so a
    secret past the cut cannot survive cut in half)."""
    return cut(one_line(redact(str(text))), limit)
