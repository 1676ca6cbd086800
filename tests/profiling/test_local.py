"""Profiling the embedded local server: the bundled model, for real.

Marked ``local_model``: needs the ``[local]`` extra (llama-cpp-python or a llama-server).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from promptkit.errors import ConfigError
from promptkit.profiling import ProfileSettings, build_targets, profile
from promptkit.profiling.profiler import QueueingServer
from promptkit.running.local import Engine, LocalServer


def test_llama_cpp_python_queues_overlapping_requests_instead_of_dropping_them() -> None:
    server = QueueingServer(parallel=4, port=8080)
    server.engine = Engine("llama-cpp-python", ("python", "-m", "llama_cpp.server"))
    assert server.command(Path("m.gguf"))[-2:] == ["--interrupt_requests", "false"]
    server.engine = Engine("llama-server", ("llama-server",))
    command = server.command(Path("m.gguf"))
    assert "--interrupt_requests" not in command and command[command.index("-np") + 1] == "4"


@pytest.mark.local_model
def test_the_local_server_s_peak_rss_is_reported() -> None:
    try:
        LocalServer().check()  # an engine and the bundled model
    except ConfigError as missing:
        pytest.skip(str(missing))
    targets = build_targets(["local"], input_tokens=[64])
    report = profile(targets, ProfileSettings(concurrency=(1, 2), requests=2, max_tokens=8))
    (run,) = report.runs
    assert run.error is None and report.exit_code == 0
    assert ".gguf on llama" in run.engine and run.provider == "local"
    level, overlapping = run.levels
    assert level.completed == 2 and level.failed == 0
    assert overlapping.completed == 2 and overlapping.failed == 0  # queued, not dropped
    assert level.peak_rss_mb is not None and level.peak_rss_mb > 0
    assert level["median_ttft_ms"] > 0
    # llama-cpp-python streams no usage: its chunks (a token each) are counted
    assert run.tokens_from in ("usage", "counted") and 0 < level.total_output_tokens <= 16
