"""The few-shot search: which k examples to show, found by random search then greedy swaps.

Random search draws k-subsets of the pool (seeded) and scores each, with the starting
version, on one train minibatch (the same cases for all, so they are compared pairwise);
greedy refinement then tries swapping one example of the best set for an unused one, on
a fresh minibatch each round, and keeps a swap that scores higher there than the set it
came from. Every round is planned against the worst case (every request sent), so the
search never spends the validation and test reserve and makes the same choices whether
or not the cache answers (which is what makes a resumed search replay the same steps).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from .trials import Allowance, Scores, Trials, mean_value
from .versions import Candidate

# Candidates per random-search round and swaps per greedy round.
ROUND_SIZE = 4
SWAPS_PER_ROUND = 3
# Candidates, best on train, that go on to the validation split.
FINALISTS = 3


def search_examples(trials: Trials, start: Candidate, pool: Sequence[dict[str, Any]], k: int,
                    train: list[str], allowance: Allowance, seed: int,
                    minibatch: int) -> list[Candidate]:
    """Search ``pool`` for the best ``k`` examples; returns the finalists (best on train
    first, the starting version not among them), for the caller to validate."""
    search = _Search(trials, start, pool, min(k, len(pool)), allowance, seed)
    batches = _minibatches(train, minibatch, search.rng)
    search.random_rounds(batches)
    if search.tried:
        search.greedy_rounds(batches)
    ranked = sorted(search.tried.values(), key=lambda item: (-item[1], int(item[0].key[1:])))
    return [cand for cand, _ in ranked[:FINALISTS]]


class _Search:
    """The state of one few-shot search: the sets tried, with their estimated gain over
    the starting version."""

    def __init__(self, trials: Trials, start: Candidate, pool: Sequence[dict[str, Any]],
                 k: int, allowance: Allowance, seed: int):
        self.trials, self.start, self.pool, self.k = trials, start, pool, k
        self.allowance = allowance
        self.rng = random.Random(seed)
        self.tried: dict[tuple[int, ...], tuple[Candidate, float]] = {}
        self.seen: set[tuple[int, ...]] = set()
        self.made = 0

    def candidate(self, indices: Sequence[int], origin: str) -> Candidate:
        self.made += 1
        return Candidate(f"f{self.made}", self.start.body,
                         tuple(self.pool[i] for i in sorted(indices)), origin)

    def random_rounds(self, batches: Iterator[list[str]]) -> None:
        """Rounds of fresh random sets, each round scored with the start on one
        minibatch, until enough sets were seen or the allowance ends."""
        attempts = 0
        while attempts < 50 * ROUND_SIZE and len(self.tried) < _random_share(
                len(self.pool), self.k):
            subsets: list[tuple[int, ...]] = []
            while len(subsets) < ROUND_SIZE and attempts < 50 * ROUND_SIZE:
                attempts += 1
                subset = tuple(sorted(self.rng.sample(range(len(self.pool)), self.k)))
                if subset not in self.seen:
                    self.seen.add(subset)
                    subsets.append(subset)
            if not subsets:
                return
            batch = next(batches)
            round_ = [self.candidate(s, "random") for s in subsets]
            scores = _score_round(self.trials, [self.start, *round_], batch, self.allowance)
            if scores is None:
                return
            base = mean_value(scores[self.start.key])
            for subset, cand in zip(subsets, round_, strict=True):
                self.tried[subset] = (cand, mean_value(scores[cand.key]) - base)

    def greedy_rounds(self, batches: Iterator[list[str]]) -> None:
        """From the best set, swap one example for an unused one; keep a swap that beats
        the current set on a fresh minibatch; stop when no swap is left or affordable."""
        best = max(self.tried, key=lambda s: (self.tried[s][1], -int(self.tried[s][0].key[1:])))
        while swaps := self.swaps(best):
            current = self.tried[best][0]
            round_ = [self.candidate(s, "greedy") for s in swaps]
            scores = _score_round(self.trials, [current, *round_], next(batches),
                                  self.allowance)
            if scores is None:
                return
            base = mean_value(scores[current.key])
            gains = {s: mean_value(scores[c.key]) - base
                     for s, c in zip(swaps, round_, strict=True)}
            for subset, cand in zip(swaps, round_, strict=True):
                self.tried[subset] = (cand, self.tried[best][1] + gains[subset])
            winner = max(gains, key=lambda s: gains[s])
            if gains[winner] > 0:
                best = winner

    def swaps(self, best: tuple[int, ...]) -> list[tuple[int, ...]]:
        unused = [i for i in range(len(self.pool)) if i not in best]
        swaps: list[tuple[int, ...]] = []
        for _ in range(SWAPS_PER_ROUND * 4):
            if not unused or len(swaps) == SWAPS_PER_ROUND:
                break
            out, into = self.rng.choice(best), self.rng.choice(unused)
            subset = tuple(sorted([*(i for i in best if i != out), into]))
            if subset not in self.seen:
                self.seen.add(subset)
                swaps.append(subset)
        return swaps


def _random_share(pool_size: int, k: int) -> int:
    """How many random sets to try before refining: enough to see most examples once."""
    return max(ROUND_SIZE, min(4 * ROUND_SIZE, 2 * pool_size // max(k, 1)))


def _score_round(trials: Trials, candidates: list[Candidate], batch: list[str],
                 allowance: Allowance) -> Scores | None:
    """Score a round, or None when the allowance cannot cover its worst case."""
    if not allowance.covers(trials.worst_case(candidates, batch)):
        return None
    return trials.score(candidates, batch, phase="search")


def _minibatches(ids: list[str], size: int, rng: random.Random) -> Iterator[list[str]]:
    """Endless minibatches of ``size`` train ids: a seeded shuffle, taken in turn (each
    case is seen once before any is seen twice)."""
    size = max(1, min(size, len(ids)))
    while True:
        order = list(ids)
        rng.shuffle(order)
        for start in range(0, len(order) - size + 1, size):
            yield order[start:start + size]
