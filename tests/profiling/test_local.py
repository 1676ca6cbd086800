"""Profiling the embedded local server: the bundled model, for real.

Marked ``local_model``: needs the ``[local]`` extra (llama-cpp-python or a llama-server).
"""

from __future__ import annotations

import pytest

from promptkit.errors import ConfigError
from promptkit.profiling import ProfileSettings, build_targets, profile
from promptkit.running.local import LocalServer


@pytest.mark.local_model
def test_the_local_server_s_peak_rss_is_reported() -> None:
    try:
        LocalServer().check()  # an engine and the bundled model
    except ConfigError as missing:
        pytest.skip(str(missing))
    targets = build_targets(["local"], input_tokens=[64])
    report = profile(targets, ProfileSettings(concurrency=(1,), requests=2, max_tokens=8))
    (run,) = report.runs
    assert run.error is None and report.exit_code == 0
    assert ".gguf on llama" in run.engine and run.provider == "local"
    (level,) = run.levels
    assert level.completed == 2 and level.failed == 0
    assert level.peak_rss_mb is not None and level.peak_rss_mb > 0
    assert level["median_ttft_ms"] > 0
    # llama-cpp-python streams no usage: its chunks (a token each) are counted
    assert run.tokens_from in ("usage", "counted") and 0 < level.total_output_tokens <= 16
