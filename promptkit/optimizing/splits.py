"""Cases split into train, validation and test: seeded, stratified, and kept apart.

The search scores candidates on train minibatches and picks its winner on validation;
the test split is scored once, at the end. Which split a case lands in depends only on the
seed, the fractions and the cases themselves (their ids and strata), never on the order
they are read in, so a resumed optimization sees the same split.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError

SPLIT_NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    """Case ids per part, each list in a seeded order (the order minibatches are drawn in).

    Attributes:
        train, validation, test: The case ids of each part.
        stratum: What the split was stratified by (``category``, ``label`` or None).
    """

    train: list[str]
    validation: list[str]
    test: list[str]
    stratum: str | None = None

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SPLIT_NAMES}


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.5/0.25/0.25"`` → train, validation and test fractions (they must sum to 1).

    Raises:
        ConfigError: not three positive numbers summing to 1.
    """
    parts = text.split("/")
    try:
        fractions = tuple(float(part) for part in parts)
    except ValueError:
        fractions = ()
    if len(fractions) != 3 or any(not 0 < f < 1 for f in fractions):
        raise ConfigError(f"--split {text!r}: give three fractions between 0 and 1, "
                          "train/validation/test, e.g. 0.5/0.25/0.25")
    if abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"--split {text!r}: the fractions sum to {sum(fractions):g}, not 1")
    return fractions  # type: ignore[return-value]


def split_cases(cases: Iterable[tuple[str, str | None]], fractions: tuple[float, float, float],
                seed: int, stratum: str | None = None) -> Split:
    """Split ``(case id, stratum value)`` pairs.

    Each stratum's cases are shuffled with the seed and spread evenly over one sequence
    (ordered by their relative position within their stratum), which is then cut by the
    fractions (largest remainders): each part holds every stratum in about the same
    proportion, and the parts' sizes are exact even when strata are small.

    Raises:
        ConfigError: a part would be empty (name it, with the case count and fractions).
    """
    groups: dict[str | None, list[str]] = defaultdict(list)
    for case_id, value in cases:
        groups[value].append(case_id)
    spread: list[tuple[float, str, str]] = []
    for value in sorted(groups, key=lambda v: (v is not None, str(v))):
        ids = sorted(groups[value])
        random.Random(_seed(seed, value)).shuffle(ids)
        spread += [(position / len(ids), str(value), case_id)
                   for position, case_id in enumerate(ids)]
    spread.sort()
    order = [case_id for _, _, case_id in spread]
    parts: list[list[str]] = []
    begin = 0
    for size in _cut(len(order), fractions):
        parts.append(order[begin:begin + size])
        begin += size
    for name, part in zip(SPLIT_NAMES, parts, strict=True):
        if not part:
            shown = "/".join(f"{f:g}" for f in fractions)
            raise ConfigError(f"--split {shown} leaves the {name} split empty with "
                              f"{len(order)} cases; use more cases or other fractions")
        random.Random(_seed(seed, name)).shuffle(part)
    return Split(*parts, stratum=stratum)


def _cut(count: int, fractions: tuple[float, float, float]) -> list[int]:
    """How many of ``count`` cases go to each part: floors, then the largest remainders."""
    exact = [count * f for f in fractions]
    sizes = [int(x) for x in exact]
    by_remainder = sorted(range(3), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in by_remainder[: count - sum(sizes)]:
        sizes[i] += 1
    return sizes


def _seed(seed: int, salt: object) -> int:
    """A seed of its own for each stratum and part, stable across Python processes."""
    digest = hashlib.sha256(f"{seed}\x00{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
