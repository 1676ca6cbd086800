"""Profiling a real HTTP endpoint (the fake one) through the openai SDK: the measured TTFT,
ITL and TPOT match the delays it was scripted with; goodput follows the SLOs; failures are
counted; where token counts came from is said."""

from __future__ import annotations

import threading

import pytest

from promptkit.profiling import ProfileSettings, build_targets, profile
from promptkit.testing import FakeEndpoint, Reply

WORDS = "one two three four five six seven eight nine ten"  # streamed as 10 chunks
LATENCY, CHUNK_DELAY = 0.2, 0.05


def close_to(measured_ms: float, expected_s: float) -> bool:
    """A scripted delay as measured: never early (but for clock jitter between chunks);
    late by what a busy 2-core machine adds to each of the fake's sleeps."""
    expected_ms = expected_s * 1000
    return expected_ms - 5 <= measured_ms <= expected_ms * 1.3 + 50


def sent(endpoint: FakeEndpoint) -> list:
    """The completion requests received (the profile also asks for /metrics once)."""
    return [request for request in endpoint.requests if request.path.endswith("completions")]


def run_profile(endpoint: FakeEndpoint, api: str = "completions", **settings):
    settings.setdefault("warmup", 0)
    targets = build_targets(base_url=endpoint.base_url, model="m", api=api, input_tokens=[16])
    return profile(targets, ProfileSettings(**settings))


@pytest.mark.parametrize(("api", "first_content_chunk"), [("completions", 0), ("chat", 1)])
def test_ttft_itl_and_tpot_match_the_scripted_delays(endpoint: FakeEndpoint, api: str,
                                                       first_content_chunk: int) -> None:
    endpoint.default = Reply.text(WORDS, latency=LATENCY, chunk_delay=CHUNK_DELAY)
    (run,) = run_profile(endpoint, api, concurrency=(1, 2), requests=3).runs
    # The fake sends its first event after `latency`, then one every `chunk_delay`: (chat:
    # the role first), the 10 words, the finish reason, the usage chunk and [DONE].
    words = 10
    events = first_content_chunk + words + 3
    ttft = LATENCY + first_content_chunk * CHUNK_DELAY
    e2el = LATENCY + (events - 1) * CHUNK_DELAY
    tpot = (e2el - ttft) / (words - 1)
    for level in run.levels:
        assert level.completed == 3 and level.failed == 0
        for name, expected in (("ttft", ttft), ("itl", CHUNK_DELAY), ("tpot", tpot),
                               ("e2el", e2el)):
            assert close_to(level[f"median_{name}_ms"], expected), name
        assert level.total_output_tokens == 3 * words
        assert level.output_throughput == pytest.approx(3 * words / level.duration)
        assert level.request_throughput == pytest.approx(3 / level.duration)
        assert level.total_token_throughput == pytest.approx(
            (level.total_input_tokens + level.total_output_tokens) / level.duration)
    assert run.tokens_from == "usage"
    assert [level.concurrency for level in run.levels] == [1, 2]
    record = run.levels[0].record()
    for prefix in ("mean", "median", "p90", "p99"):
        for metric in ("ttft", "tpot", "itl", "e2el"):
            assert isinstance(record[f"{prefix}_{metric}_ms"], float)
    for name in ("completed", "failed", "request_throughput", "output_throughput",
                 "total_token_throughput", "max_concurrency", "duration"):
        assert name in record


def test_concurrency_puts_that_many_requests_in_flight(endpoint: FakeEndpoint) -> None:
    together = threading.Barrier(4)  # answers only once four requests wait at once
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def answer(request):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        together.wait(timeout=30)
        with lock:
            in_flight[0] -= 1
        return Reply.text("a b")

    endpoint.respond_with(answer)
    (run,) = run_profile(endpoint, concurrency=(4,), requests=8).runs
    assert run.levels[0].completed == 8  # two rounds of four
    assert most[0] == 4


def test_without_usage_tokens_are_counted_from_the_chunks(endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text(WORDS, usage=False)
    (run,) = run_profile(endpoint, concurrency=(1,), requests=2).runs
    level = run.levels[0]
    assert run.tokens_from == level.tokens_from == "counted"
    assert level.total_output_tokens == 20
    assert level.total_input_tokens == 2 * 16  # the prompts, counted by tiktoken


def test_goodput_counts_the_requests_meeting_every_slo(endpoint: FakeEndpoint) -> None:
    fast, slow = Reply.text("a b c"), Reply.text("a b c", latency=0.4)
    endpoint.script(fast, fast, fast, fast,  # concurrency 1: all meet ttft ≤ 200ms
                    fast, slow, fast, slow,  # concurrency 2: half do
                    slow, slow, slow, fast)  # concurrency 4: a quarter
    (run,) = run_profile(endpoint, concurrency=(1, 2, 4), requests=4,
                         slo={"ttft": 200.0}).runs
    assert [level.slo_attainment for level in run.levels] == [1.0, 0.5, 0.25]
    for level, good in zip(run.levels, (4, 2, 1), strict=True):
        assert level.request_goodput * level.duration == pytest.approx(good)
        assert level.completed == 4
    assert run.max_concurrency_meeting_slo == 1


def test_tpot_and_e2el_slos_use_each_request_s_own_figures(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply.text(WORDS, chunk_delay=0.0),
                    Reply.text(WORDS, chunk_delay=0.08),  # TPOT ~ 100ms: misses both
                    Reply.text("one", latency=0.0))  # one token: no TPOT, meets it
    (run,) = run_profile(endpoint, concurrency=(1,), requests=3,
                         slo={"tpot": 50.0, "e2el": 500.0}).runs
    level = run.levels[0]
    assert level.slo_attainment == pytest.approx(2 / 3)
    assert level["p99_tpot_ms"] > 50


def test_failed_requests_are_counted_with_their_reasons(endpoint: FakeEndpoint) -> None:
    endpoint.script(Reply.text("a b"), Reply.status(500, body="overloaded"),
                    Reply.drop_stream(2, content="a b c d"), Reply.text("a b"),
                    Reply.malformed_json())
    (run,) = run_profile(endpoint, concurrency=(1,), requests=5, slo={"ttft": 1000.0}).runs
    level = run.levels[0]
    assert (level.requests, level.completed, level.failed) == (5, 2, 3)
    assert sum(level.errors.values()) == 3
    reasons = " | ".join(level.errors)
    assert "HTTP 500" in reasons and "overloaded" in reasons
    assert "connection failed: peer closed connection" in reasons  # the dropped stream
    assert "not JSON" in reasons
    assert level.slo_attainment == pytest.approx(2 / 5)
    assert endpoint.count == 5  # never retried
    assert level.total_output_tokens == 4


def test_a_failed_warm_up_stops_the_run_with_exit_code_3(endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.status(404, body="model 'm' not found")
    report = run_profile(endpoint, concurrency=(1, 2), requests=2, warmup=1)
    (run,) = report.runs
    assert run.levels == [] and "warm-up request failed: HTTP 404" in run.error
    assert report.exit_code == 3 and endpoint.count == 1


def test_an_api_key_never_reaches_a_report(endpoint: FakeEndpoint, monkeypatch) -> None:
    secret = "sk-test-profile-0123456789abcdef"
    monkeypatch.setenv("PROFILE_KEY", secret)
    endpoint.respond_with(lambda request: Reply.status(
        401, body=f"bad key {request.headers['authorization']}"))
    targets = build_targets(base_url=endpoint.base_url, model="m", api_key_env="PROFILE_KEY",
                            input_tokens=[8])
    report = profile(targets, ProfileSettings(concurrency=(1,), requests=2, warmup=0))
    assert sent(endpoint)[0].headers["authorization"] == f"Bearer {secret}"
    assert report.runs[0].levels[0].failed == 2
    assert secret not in repr(report.record()) and "[redacted]" in repr(report.record())


def test_max_tokens_and_ignore_eos_reach_the_request(endpoint: FakeEndpoint) -> None:
    run_profile(endpoint, concurrency=(1,), requests=1, max_tokens=7, ignore_eos=True)
    body = sent(endpoint)[0].body
    assert body["max_tokens"] == 7 and body["ignore_eos"] is True
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    run_profile(endpoint, concurrency=(1,), requests=1)
    assert sent(endpoint)[1].body["max_tokens"] == 128
    assert "ignore_eos" not in sent(endpoint)[1].body
