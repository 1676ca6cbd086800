"""Memory (a process's peak RSS, a server's KV-cache usage from /metrics) and cost."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from promptkit.profiling.measure import RequestRecord
from promptkit.profiling.memory import KvCacheWatcher, RssWatcher, kv_cache_usage, metrics_url
from promptkit.profiling.metrics import add_cost, summarize_level
from promptkit.running.providers import Price

VLLM = """\
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="qwen"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="qwen"} 0.5
vllm:num_requests_running{model_name="qwen"} 3.0
"""
LLAMA_CPP = "llamacpp:kv_cache_usage_ratio 0.125\nllamacpp:requests_processing 1\n"


def test_kv_cache_usage_is_read_from_prometheus_text() -> None:
    assert kv_cache_usage(VLLM) == 0.5  # the fuller engine
    assert kv_cache_usage(LLAMA_CPP) == 0.125
    assert kv_cache_usage("vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.75 1712345678\n") == 0.75
    assert kv_cache_usage("llamacpp:requests_processing 1\n") is None
    assert kv_cache_usage("vllm:kv_cache_usage_perc NaN\n") is None
    assert metrics_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/metrics"
    assert metrics_url("http://host/proxy") == "http://host/proxy/metrics"


class MetricsServer:
    """A /metrics endpoint answering each fetch with the next of ``texts`` (the last one
    again once the others are used)."""

    def __init__(self) -> None:
        texts = self.texts = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = (texts.pop(0) if len(texts) > 1 else texts[0]).encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def metrics_server() -> Iterator[MetricsServer]:
    served = MetricsServer()
    threading.Thread(target=served.server.serve_forever, daemon=True).start()
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_kv_cache_peak_is_sampled_from_metrics(metrics_server: MetricsServer) -> None:
    metrics_server.texts.extend([VLLM, "vllm:kv_cache_usage_perc 0.9\n",
                                 "vllm:kv_cache_usage_perc 0.1\n"])

    async def watch() -> float | None:
        watcher = await KvCacheWatcher.find(metrics_server.base_url)  # reads the first text
        assert watcher is not None
        watcher.begin()
        await watcher.sample()
        await watcher.sample()
        return watcher.end()

    assert asyncio.run(watch()) == pytest.approx(90.0)
    metrics_server.texts[:] = ["no such metric 1\n"]
    assert asyncio.run(KvCacheWatcher.find(metrics_server.base_url)) is None
    assert asyncio.run(KvCacheWatcher.find("http://127.0.0.1:9/v1")) is None  # refused


def test_peak_rss_of_a_process_per_level() -> None:
    code = ("import sys, time; block = bytearray(64 * 1024 * 1024); del block; "
            "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        watcher = RssWatcher(child.pid)
        watcher.begin()  # the 64 MB block is freed: the level's peak is below it
        asyncio.run(watcher.sample())
        peak = watcher.end()
        assert peak is not None and 1 < peak < 64
    finally:
        child.kill()
        child.wait()
    assert RssWatcher(child.pid).end() is None  # gone: no figure


def record(ttft: float, e2el: float, tokens: int) -> RequestRecord:
    return RequestRecord(0.0, ttft=ttft, e2el=e2el, output_tokens=tokens, input_tokens=100,
                         tokens_from_usage=True)


def test_per_hour_pricing_gives_dollars_per_million_output_tokens() -> None:
    records = [record(0.1, 1.1, 101), record(0.2, 2.2, 101), record(0.1, 0.1, 1)]
    level = summarize_level(records, 2, duration=2.0, price=SimpleNamespace(per_hour=3.6))
    assert level.output_throughput == pytest.approx(101.5)  # 203 tokens in 2 s
    # $3.60 an hour is $0.001 a second; a million tokens take 1e6 / 101.5 seconds
    assert level.usd_per_1m_output_tokens == pytest.approx(0.001 * 1e6 / 101.5)
    assert level.token_cost_usd is None
    assert level["median_tpot_ms"] == pytest.approx(15.0)  # 10ms and 20ms; 1 token left out


def test_token_prices_give_the_level_s_token_cost() -> None:
    level = summarize_level([record(0.1, 1.0, 50)], 1, duration=1.0,
                            price=Price(input_per_mtok=2.0, output_per_mtok=10.0))
    assert level.token_cost_usd == pytest.approx((100 * 2.0 + 50 * 10.0) / 1e6)
    assert level.usd_per_1m_output_tokens is None
    add_cost(level, None)  # no price: nothing changes
    assert level.token_cost_usd == pytest.approx(0.0007)
