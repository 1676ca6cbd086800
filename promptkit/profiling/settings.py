"""What a profile asks for: concurrency levels, requests per level, output length, SLOs.

The command line gives the lists as comma-separated text (``--concurrency 1,2,4,8``,
``--input-tokens 256,1024``, ``--slo ttft=500ms,tpot=50ms,e2el=2s``); each is read here,
and a mistake is one :class:`~promptkit.errors.PromptkitError` line naming the option.
SLO targets are kept in milliseconds, as the metrics they are checked against.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import PromptkitError

# The metrics vLLM's serving benchmark lets a goodput SLO name (--goodput ttft:500 ...).
SLO_METRICS = ("ttft", "tpot", "e2el")
MAX_CONCURRENCY = 1024
MAX_INPUT_TOKENS = 1_000_000
MIN_DEFAULT_REQUESTS = 8
ATTAINMENT = 0.9  # the share of requests meeting every SLO a level must reach
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s)")


@dataclass(frozen=True)
class ProfileSettings:
    """How each provider is profiled.

    Attributes:
        concurrency: The levels, in order: requests in flight at once.
        requests: Requests per level; ``None``: four per unit of concurrency, at least 8.
        max_tokens: ``max_tokens`` of every request (``None``: the eval's or the server's).
        slo: SLO targets in milliseconds by metric (``ttft``, ``tpot``, ``e2el``).
        warmup: Requests sent (and not measured) before the first level.
        ignore_eos: Ask servers that know ``ignore_eos`` (vLLM, llama-server) to generate
            ``max_tokens`` every time, so levels compare equal output lengths.
    """

    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    requests: int | None = None
    max_tokens: int | None = 128
    slo: dict[str, float] = field(default_factory=dict)
    warmup: int = 1
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if self.requests is not None and self.requests < max(self.concurrency, default=1):
            raise PromptkitError(
                f"--requests {self.requests} is fewer than the concurrency level "
                f"{max(self.concurrency)}: that level could never have "
                f"{max(self.concurrency)} requests in flight; send at least as many requests "
                "as the highest level")

    def requests_at(self, concurrency: int) -> int:
        """Requests sent at one level."""
        if self.requests is not None:
            return self.requests
        return max(MIN_DEFAULT_REQUESTS, 4 * concurrency)


def parse_counts(text: str, option: str, maximum: int) -> tuple[int, ...]:
    """``"1,2,4"`` → ``(1, 2, 4)``: positive whole numbers up to ``maximum``, each once,
    in the order given.

    Raises:
        PromptkitError: empty, not a number, out of range or repeated (one line).
    """
    values: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or not 1 <= int(item) <= maximum:
            shown = repr(item) if item else "an empty item"
            raise PromptkitError(f"{option} {text!r}: {shown} is not a whole number from 1 "
                                 f"to {maximum} (give a comma-separated list, e.g. 1,2,4)")
        if int(item) in values:
            raise PromptkitError(f"{option} {text!r}: {item} is given twice")
        values.append(int(item))
    return tuple(values)


def parse_slo(text: str) -> dict[str, float]:
    """``"ttft=500ms,tpot=50ms,e2el=2s"`` → ``{"ttft": 500.0, "tpot": 50.0, "e2el": 2000.0}``
    (milliseconds).

    Raises:
        PromptkitError: an unknown metric, a value without ``ms`` or ``s``, a metric given
            twice (one line).
    """
    slo: dict[str, float] = {}
    for item in text.split(","):
        metric, equals, value = (part.strip() for part in item.partition("="))
        if not equals or metric not in SLO_METRICS:
            raise PromptkitError(f"--slo {text!r}: {item.strip() or 'an empty item'!r} is not "
                                 f"metric=value with a metric among {', '.join(SLO_METRICS)} "
                                 "(e.g. ttft=500ms,tpot=50ms,e2el=2s)")
        match = _DURATION.fullmatch(value)
        if match is None:
            raise PromptkitError(f"--slo {text!r}: {metric}={value} is not a duration in ms "
                                 "or s (e.g. 500ms or 2s)")
        if metric in slo:
            raise PromptkitError(f"--slo {text!r}: {metric} is given twice")
        number = float(match["number"])
        milliseconds = number * (1000 if match["unit"] == "s" else 1)
        if not (math.isfinite(milliseconds) and milliseconds > 0):
            raise PromptkitError(f"--slo {text!r}: {metric} must be more than 0")
        slo[metric] = milliseconds
    return slo


def describe_slo(slo: dict[str, float]) -> str:
    """``ttft≤500ms, e2el≤2s`` — for tables and pages."""
    return ", ".join(f"{metric}≤{duration_text(ms)}" for metric, ms in slo.items())


def duration_text(milliseconds: float) -> str:
    if milliseconds >= 1000 and milliseconds % 100 == 0:
        return f"{milliseconds / 1000:g}s"
    return f"{milliseconds:g}ms"
