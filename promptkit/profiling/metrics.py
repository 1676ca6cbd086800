"""A level's figures, named and defined as vLLM's serving benchmark names and defines them.

Per request (see :class:`~.measure.RequestRecord`): TTFT from sending to the first content
chunk, E2EL from sending to the last byte, TPOT = (E2EL − TTFT) / (output tokens − 1) (left
out for requests with one token), ITL the gaps between consecutive content chunks, pooled
over requests. Per level: ``completed``, ``failed``, the throughputs over the level's wall
time (first request sent to last byte), and ``mean_``/``median_``/``p90_``/``p99_`` of each
latency in milliseconds (numpy's linear-interpolated percentiles, as vLLM's). With SLOs:
``request_goodput``, the completed requests per second meeting every SLO, and
``slo_attainment``, their share of the requests sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy

from .measure import RequestRecord
from .settings import ATTAINMENT

STATISTICS = (("mean", None), ("median", 50.0), ("p90", 90.0), ("p99", 99.0))
LATENCIES = ("ttft", "tpot", "itl", "e2el")
VLLM_NAMES = {"concurrency": "max_concurrency", "requests": "num_prompts"}
LATENCY_FIELDS = tuple(f"{stat}_{metric}_ms" for metric in LATENCIES for stat, _ in STATISTICS)


@dataclass
class LevelResult:
    """One concurrency level of one profile run (see the module docstring)."""

    concurrency: int
    requests: int
    completed: int
    failed: int
    duration: float
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    latencies: dict[str, float | None]
    tokens_from: str  # "usage", "counted", "mixed", or "none" when nothing completed
    request_goodput: float | None = None
    slo_attainment: float | None = None
    peak_rss_mb: float | None = None
    kv_cache_usage_pct: float | None = None
    usd_per_1m_output_tokens: float | None = None
    token_cost_usd: float | None = None
    errors: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        """A field by its vLLM name: ``level["median_ttft_ms"]``, ``level["completed"]``."""
        if name in self.latencies:
            return self.latencies[name]
        return getattr(self, name)

    def record(self) -> dict[str, Any]:
        """Every field, flat, under vLLM's names (``max_concurrency``, ``num_prompts``,
        ``duration``, ..., ``p99_e2el_ms``)."""
        fields = {VLLM_NAMES.get(key, key): value for key, value in self.__dict__.items()
                  if key != "latencies"}
        return {**fields, **self.latencies}


def statistics(values_ms: Sequence[float], metric: str) -> dict[str, float | None]:
    """``mean_<metric>_ms``, ``median_...``, ``p90_...``, ``p99_...`` (None when empty)."""
    data = numpy.asarray(values_ms, dtype=float)
    found: dict[str, float | None] = {}
    for stat, percentile in STATISTICS:
        key = f"{stat}_{metric}_ms"
        if not len(data):
            found[key] = None
        elif percentile is None:
            found[key] = float(data.mean())
        else:
            found[key] = float(numpy.percentile(data, percentile))
    return found


def meets_slo(record: RequestRecord, slo: dict[str, float]) -> bool:
    """Whether a request completed within every SLO (ms); a one-token request has no TPOT
    and meets a TPOT target, as in vLLM."""
    if not record.ok:
        return False
    measured = {"ttft": record.ttft, "tpot": record.tpot, "e2el": record.e2el}
    return all(measured[metric] is None or measured[metric] * 1000 <= target
               for metric, target in slo.items())


def _tokens_from(done: list[RequestRecord]) -> str:
    sources = {record.tokens_from_usage for record in done}
    if not sources:
        return "none"
    if len(sources) == 2:
        return "mixed"
    return "usage" if sources == {True} else "counted"


def summarize_level(records: Sequence[RequestRecord], concurrency: int, duration: float,
                    slo: dict[str, float] | None = None, price: Any = None) -> LevelResult:
    """The level's figures from its requests and wall time (seconds)."""
    done = [record for record in records if record.ok]
    input_tokens = sum(record.input_tokens or 0 for record in done)
    output_tokens = sum(record.output_tokens for record in done)
    per_second = 1 / duration if duration > 0 else 0.0
    latencies: dict[str, float | None] = {}
    for metric, values in (
            ("ttft", [r.ttft for r in done]), ("tpot", [r.tpot for r in done]),
            ("itl", [gap for r in done for gap in r.itl]), ("e2el", [r.e2el for r in done])):
        latencies.update(statistics([v * 1000 for v in values if v is not None], metric))
    level = LevelResult(
        concurrency, len(records), len(done), len(records) - len(done), duration,
        input_tokens, output_tokens, len(done) * per_second, output_tokens * per_second,
        (input_tokens + output_tokens) * per_second, latencies, _tokens_from(done),
        errors=dict(Counter(record.error for record in records if record.error)))
    if slo:
        good = sum(meets_slo(record, slo) for record in records)
        level.request_goodput = good * per_second
        level.slo_attainment = good / len(records) if records else None
    add_cost(level, price)
    return level


def add_cost(level: LevelResult, price: Any) -> None:
    """$/1M output tokens from a ``per_hour`` rate (the hour's cost over the tokens the
    level's throughput makes in it), and the token cost of a token-priced provider."""
    if price is None:
        return
    per_hour = getattr(price, "per_hour", None)
    if per_hour is not None and level.output_throughput > 0:
        level.usd_per_1m_output_tokens = per_hour / 3600 / level.output_throughput * 1e6
    if getattr(price, "input_per_mtok", 0) or getattr(price, "output_per_mtok", 0):
        level.token_cost_usd = price.cost(level.total_input_tokens, level.total_output_tokens)


def max_concurrency_meeting_slo(levels: Iterable[LevelResult]) -> int | None:
    """The highest concurrency at which at least 90% of the requests met every SLO."""
    meeting = [level.concurrency for level in levels
               if level.slo_attainment is not None and level.slo_attainment >= ATTAINMENT]
    return max(meeting, default=None)
