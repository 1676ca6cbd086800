"""Numbers as every presenter shows them: seconds, counts, percentage points, dollars,
durations (re-exported by :mod:`.views`, which builds every cell with them)."""

from __future__ import annotations

import math


def seconds(value: float | None) -> str:
    """``850ms``, ``1.25s``, or ``—`` when unknown."""
    if value is None:
        return "—"
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def count(value: int) -> str:
    """``950``, ``12,345``, ``1.2M``: short enough for a narrow column."""
    return f"{value:,}" if value < 1_000_000 else f"{value / 1_000_000:.1f}M"


def points(value: float) -> str:
    """Percentage points: ``25``, or ``0.7`` below one point."""
    return f"{value:.0f}" if value >= 1 else f"{value:.1f}"


def money(value: float | None) -> str:
    """``$0.0040``; below $0.0001 two significant digits (``$0.000044``), so a small cost
    never reads as none; ``—`` when no price was configured."""
    if value is None:
        return "—"
    small = 0 < abs(value) < 0.0001
    return f"${value:.{1 - math.floor(math.log10(abs(value))) if small else 4}f}"


def duration(value: float) -> str:
    """``850ms``, ``1.25s``, ``12m 05s``, ``3h 02m``."""
    minutes, whole = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return seconds(value) if value < 60 else (
        f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {whole:02d}s")
