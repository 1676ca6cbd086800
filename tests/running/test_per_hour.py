"""Cost per hour: a provider priced by the time it is busy (``price: {per_hour: USD}``), run
against the test endpoint. Its cost is the union of its requests' intervals × the rate,
shared among its results by latency; cached answers cost nothing."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

import promptkit
from promptkit.errors import ConfigError
from promptkit.reporting.charts import charts
from promptkit.reporting.summary import busy_seconds, summarize
from promptkit.reporting.views import duration, leaderboard_view
from promptkit.results import CaseResult
from promptkit.running.providers import Price
from promptkit.running.spec import load_spec
from promptkit.testing import FakeEndpoint, Reply

RATE = 36.0  # USD per hour: a busy second costs a cent
SPEC = """\
templates: templates
prompts:
  - {id: plain, template: ask@1, vars: {please: ""}}
  - {id: polite, template: ask@1, vars: {please: "please "}}
providers:
  - id: gpu
    base_url: BASE_URL
    model: m
    retries: 0
    concurrency: CONCURRENCY
    price: {per_hour: 36.0}
assert:
  - {type: contains, value: "ok"}
cases:
  - {q: one}
  - {q: two}
  - {q: three}
  - {q: four}
"""


def make_eval(tmp_path: Path, endpoint: FakeEndpoint, concurrency: int, latency: float
              ) -> Path:
    (tmp_path / "templates" / "ask").mkdir(parents=True, exist_ok=True)
    (tmp_path / "templates" / "ask" / "v1.jinja").write_text("{{ please }}{{ q }}\n")
    spec = tmp_path / "eval.yaml"
    spec.write_text(SPEC.replace("BASE_URL", endpoint.base_url)
                    .replace("CONCURRENCY", str(concurrency)))
    endpoint.respond_with(lambda request: Reply.text("ok", latency=latency))
    return spec


def formula(results: list[CaseResult]) -> tuple[float, float]:
    """Busy seconds and cost, worked out here from the stored results: the union of the
    intervals of the results that sent a request."""
    intervals = sorted((r.started_at, r.started_at + r.latency_s) for r in results
                       if not r.cached and r.started_at is not None and r.latency_s is not None)
    busy, reached = 0.0, -math.inf
    for start, end in intervals:
        if end > reached:
            busy += end - max(start, reached)
            reached = end
    return busy, busy / 3600 * RATE


def test_a_provider_priced_by_the_hour_costs_its_busy_time(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_eval(tmp_path, endpoint, concurrency=1, latency=0.05)
    report = promptkit.evaluate(spec, use_cache=False,
                                outputs=[tmp_path / "out.csv", tmp_path / "out.json"])
    results = list(report.results())
    busy, cost = formula(results)
    assert busy >= 8 * 0.05 and cost > 0
    assert report.summary.total_cost == pytest.approx(cost)
    spent = report.summary.hourly["gpu"]
    assert (spent.busy_s, spent.per_hour, spent.requests) == (pytest.approx(busy), RATE, 8)
    # each row: its results' latencies over all of the provider's, times the cost
    total_latency = sum(r.latency_s for r in results)
    for row in report.summary.rows:
        mine = sum(r.latency_s for r in results if r.prompt_id == row.prompt_id)
        assert row.priced_by_hour and row.cost == pytest.approx(cost * mine / total_latency)
    # one request at a time: busy is the sum of the latencies (gaps between them aside)
    assert busy == pytest.approx(total_latency, rel=0.01)
    # each result's share is its cost in the output files, and they add up
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as handle:
        shares = {(row["prompt_id"], row["case_id"]): float(row["cost"])
                  for row in csv.DictReader(handle)}
    assert math.fsum(shares.values()) == pytest.approx(cost)
    first = results[0]
    assert shares[first.prompt_id, first.case_id] == pytest.approx(
        cost * first.latency_s / total_latency)
    document = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    (hourly,) = document["summary"]["hourly"]
    assert hourly["provider_id"] == "gpu" and hourly["cost"] == pytest.approx(cost)
    assert math.fsum(r["cost"] for r in document["results"]) == pytest.approx(cost)
    # shown as token costs are: the cost column, the totals say how it came about
    view = leaderboard_view(report.summary)
    assert view.rows[0].cells[-1] == f"${report.summary.rows[0].cost:.4f}"
    assert view.totals.endswith(f"(gpu busy {duration(spent.busy_s)} × $36/h)")
    # the quality-per-dollar chart plots it
    drawn = charts(report.summary.rows)
    assert len(drawn.cost.points) == 2 and "gpu by the hour" in drawn.cost.caption
    # a stored run gives the same figure: the price comes from the config stored with it
    stored = promptkit.load_report(report.run.run_id, store_dir=tmp_path / ".promptkit")
    assert stored.summary.total_cost == report.summary.total_cost
    assert [row.cost for row in stored.summary.rows] == [row.cost for row in report.summary.rows]


def test_requests_in_flight_together_are_counted_once(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_eval(tmp_path, endpoint, concurrency=8, latency=0.3)
    report = promptkit.evaluate(spec, use_cache=False)
    results = list(report.results())
    busy, cost = formula(results)
    summed = sum(r.latency_s for r in results)
    assert busy < summed / 3  # eight at once: far less than the latencies added up
    assert report.summary.hourly["gpu"].busy_s == pytest.approx(busy)
    assert report.summary.total_cost == pytest.approx(cost)
    assert report.summary.total_cost < summed / 3600 * RATE / 3


def test_cached_answers_cost_nothing(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    spec = make_eval(tmp_path, endpoint, concurrency=4, latency=0.02)
    first = promptkit.evaluate(spec, use_cache=True)
    assert first.summary.total_cost > 0
    again = promptkit.evaluate(spec, use_cache=True, outputs=[tmp_path / "again.csv"])
    assert all(r.cached for r in again.results())
    assert again.summary.total_cost == 0.0
    assert [row.cost for row in again.summary.rows] == [0.0, 0.0]
    assert again.summary.hourly["gpu"].busy_s == 0.0
    with (tmp_path / "again.csv").open(encoding="utf-8", newline="") as handle:
        assert {row["cost"] for row in csv.DictReader(handle)} == {"0.0"}


def test_busy_time_is_the_union_of_the_intervals() -> None:
    assert busy_seconds([(0, 1), (0.5, 2), (3, 4), (3.2, 3.5)]) == 3.0
    assert busy_seconds([]) == 0.0
    # a cached result takes no time; one timed request does, whatever the order
    results = [CaseResult("p", "gpu", "c1", 0, passed=True, latency_s=2.0, started_at=10.0),
               CaseResult("p", "gpu", "c2", 1, passed=True, latency_s=2.0, started_at=11.0),
               CaseResult("p", "gpu", "c3", 2, passed=True, latency_s=5.0, cached=True,
                          requests=0)]
    summary = summarize(reversed(results), hourly={"gpu": 3600.0})
    assert summary.hourly["gpu"].busy_s == 3.0 and summary.total_cost == pytest.approx(3.0)
    assert [summary.hourly["gpu"].share(r) for r in results] == [1.5, 1.5, 0.0]


def test_a_cost_by_the_hour_never_picks_the_leader() -> None:
    # the same answers; "a" happened to be slower, so its share is larger: still tied,
    # and the leader goes by prompt id as with no price at all
    results = [CaseResult(prompt, "gpu", f"c{i}", i, passed=True, score=1.0,
                          latency_s=3.0 if prompt == "a" else 1.0, started_at=i * 10.0)
               for prompt in ("a", "b") for i in range(3)]
    summary = summarize(results, hourly={"gpu": 10.0})
    rows = {row.prompt_id: row for row in summary.rows}
    assert rows["a"].cost > rows["b"].cost
    unpriced = summarize(results)
    assert [(row.prompt_id, row.best, row.tied) for row in summary.rows] == \
        [(row.prompt_id, row.best, row.tied) for row in unpriced.rows] == \
        [("a", False, True), ("b", False, True)]
    assert "the leader a " in leaderboard_view(summary).leaders[0]


def test_per_hour_and_token_prices_do_not_mix(tmp_path: Path) -> None:
    spec = tmp_path / "eval.yaml"
    spec.write_text(SPEC.replace("BASE_URL", "http://127.0.0.1:9/v1")
                    .replace("CONCURRENCY", "1")
                    .replace("{per_hour: 36.0}", "{per_hour: 2.5, input_per_mtok: 1}"))
    (tmp_path / "templates").mkdir()
    with pytest.raises(ConfigError) as info:
        load_spec(spec)
    assert str(info.value).endswith(
        "eval.yaml:11: providers[0].price: per_hour cannot be combined with input_per_mtok: "
        "price a provider by the hour or by its tokens, not both")
    assert "\n" not in str(info.value)
    # a price by the hour is stored as such, a token price as before (no per_hour key)
    assert Price(per_hour=2.5).model_dump() == {"per_hour": 2.5}
    assert Price(input_per_mtok=1).model_dump() == {"input_per_mtok": 1.0,
                                                    "output_per_mtok": 0.0}
    assert Price(per_hour=2.5).cost(100, 100) is None


@pytest.mark.parametrize("value", [True, "2", None, 0, -1, 1e308, float("nan")])
def test_per_hour_must_be_a_plausible_number(value) -> None:
    from pydantic import ValidationError

    from promptkit.running.providers import Price

    with pytest.raises(ValidationError):
        Price(per_hour=value)
    assert Price(per_hour=2).per_hour == 2.0


def test_a_small_cost_never_reads_as_none() -> None:
    from promptkit.reporting.views import money

    assert [money(v) for v in (None, 0.0, 4.36e-05, 0.0045, 1.2)] == [
        "—", "$0.0000", "$0.000044", "$0.0045", "$1.2000"]
