"""`promptkit eval` as a user runs it: a subprocess against a real scripted endpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from promptkit.store import RunStore
from promptkit.testing import FakeEndpoint, Reply

REPO = Path(__file__).parent.parent
CANARY = "sk-canary-7f3a9c2e41d0b5"


def promptkit(*args: str, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promptkit.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "160", **(env or {})})


def summary_reply(request) -> Reply:
    # Few-shot prompts get the reference-like answer, zero-shot a rambling one.
    if request.prompt_text.count("Article:") > 1:
        return Reply.text("The council approved a plan for the city.")
    return Reply.text("Sure! Here is a summary: " + "words " * 45)


def test_demo_eval_against_the_test_endpoint(project: Path, endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(summary_reply)
    outputs = [project / f"out.{ext}" for ext in ("json", "jsonl", "csv", "xml")]
    args = ["eval", "evals/summarize.yaml", "--base-url", endpoint.base_url, "--model", "m"]
    for output in outputs:
        args += ["-o", str(output)]
    proc = promptkit(*args, cwd=project)
    assert proc.returncode in (0, 1), proc.stderr
    assert "zero-shot" in proc.stdout and "few-shot" in proc.stdout
    # both variants fail every case here: no winner, the two are tied
    assert "★" not in proc.stdout and "= tied on m: zero-shot, few-shot" in proc.stdout
    assert endpoint.count == 48
    data = json.loads(outputs[0].read_text())
    assert len(data["results"]) == 48
    assert len(outputs[1].read_text().splitlines()) == 48
    rows = list(csv.DictReader(outputs[2].open(encoding="utf-8")))
    assert len(rows) == 48
    suites = ET.parse(outputs[3]).getroot()
    assert len(suites.findall(".//testcase")) == 48
    # the few-shot variant wins: its answers are short, the zero-shot ones too long
    by_prompt = {}
    for result in data["results"]:
        by_prompt.setdefault(result["prompt_id"], []).append(result["passed"])
    assert not any(by_prompt["zero-shot"])


def test_exit_codes(project: Path, endpoint: FakeEndpoint) -> None:
    spec = project / "evals" / "summarize.yaml"
    spec.write_text(spec.read_text() + "threshold: 0.5\n")
    base = ["eval", "evals/summarize.yaml", "--base-url", endpoint.base_url, "--model", "m",
            "--limit", "2", "-q"]
    endpoint.default = Reply.text("Words that match nothing at all.")
    assert promptkit(*base, cwd=project).returncode == 1  # threshold 0.5 not met
    endpoint.respond_with(lambda r: Reply.text(r.prompt_text.split("Article: ")[-1]
                                               .split("\n")[0][:150]))
    ok = promptkit(*base, "--no-cache", cwd=project)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    down = promptkit("eval", "evals/summarize.yaml", "--base-url", "http://127.0.0.1:9/v1",
                     "--model", "m", "--limit", "3", "-q", cwd=project)
    assert down.returncode == 3
    assert "endpoint unreachable" in down.stderr


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t: t.replace("prompts:", "prompts: [oops\n"), "invalid YAML"),
        (lambda t: t.replace("summarize@1", "summarize@9"), "has no version 9"),
        (lambda t: t.replace("type: max-words", "type: max-wordz"), "unknown assertion type"),
        (lambda t: t.replace("dataset: data/news.jsonl", "cases: [{title: no article}]"),
         "'article' is undefined"),
        (lambda t: t + "colour: red\n", "colour: unknown key"),
    ],
    ids=["bad-yaml", "unknown-template", "unknown-assertion", "missing-variable",
         "unknown-key"],
)
def test_invalid_input_exits_2_with_one_line(project: Path, endpoint: FakeEndpoint, edit,
                                             needle: str) -> None:
    spec = project / "evals" / "summarize.yaml"
    spec.write_text(edit(spec.read_text()))
    proc = promptkit("eval", "evals/summarize.yaml", "--base-url", endpoint.base_url,
                     "--model", "m", cwd=project)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert (needle in lines[0] and "summarize.yaml" in lines[0]) or needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert endpoint.count == 0


def test_api_key_never_reaches_disk_or_output(project: Path, endpoint: FakeEndpoint) -> None:
    # The server echoes the key back in its 401 error, as some gateways do.
    endpoint.default = Reply.status(401, body={"error": {"message": f"bad key {CANARY}"}})
    outputs = [project / f"out.{ext}" for ext in ("json", "jsonl", "csv", "xml")]
    args = ["eval", "evals/summarize.yaml", "--base-url", endpoint.base_url, "--model", "m",
            "--api-key-env", "MY_KEY", "--limit", "3"]
    for output in outputs:
        args += ["-o", str(output)]
    proc = promptkit(*args, cwd=project, env={"MY_KEY": CANARY})
    assert proc.returncode == 3  # every request failed: the run could not complete
    assert "every request failed" in proc.stderr
    assert endpoint.requests[0].headers["authorization"] == f"Bearer {CANARY}"
    assert CANARY not in proc.stdout + proc.stderr
    stored = list((project / "evals" / ".promptkit").rglob("*")) + outputs
    assert stored
    for path in stored:
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_kill_9_then_resume_gives_one_result_per_case(project: Path,
                                                      endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text("The council approved a plan.", latency=0.05)
    args = ["eval", "evals/summarize.yaml", "--base-url", endpoint.base_url, "--model", "m",
            "-j", "2", "-q"]
    child = subprocess.Popen([sys.executable, "-m", "promptkit.cli", *args], cwd=project,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs_db = project / "evals" / ".promptkit" / "runs.db"
    deadline = time.monotonic() + 60
    committed = 0
    while time.monotonic() < deadline and committed < 15:
        time.sleep(0.1)
        if runs_db.exists():
            with RunStore(runs_db) as runs:
                listed = runs.list_runs()
                committed = runs.count_results(listed[0].run_id) if listed else 0
    child.send_signal(signal.SIGKILL)
    child.wait()
    with RunStore(runs_db) as runs:
        run = runs.list_runs()[0]
        finished = {(r.prompt_id, r.case_id) for r in runs.results(run.run_id)}
    assert 15 <= len(finished) < 48 and run.status == "running"
    prompts_seen = [r.prompt_text for r in endpoint.requests]
    proc = promptkit(*args, "--resume", cwd=project)
    assert proc.returncode in (0, 1), proc.stderr
    with RunStore(runs_db) as runs:
        assert [r.run_id for r in runs.list_runs()] == [run.run_id]
        results = list(runs.results(run.run_id))
        assert runs.get_run(run.run_id).status == "finished"
    keys = [(r.prompt_id, r.case_id) for r in results]
    assert len(keys) == 48 and len(set(keys)) == 48
    resumed = endpoint.requests[len(prompts_seen):]
    # no finished case was requested again
    assert len(resumed) <= 48 - len(finished)
    assert len(endpoint.requests) <= 48 + 2  # at most the two in flight were sent twice


def test_dry_run_sends_nothing(project: Path, endpoint: FakeEndpoint) -> None:
    proc = promptkit("eval", "evals/summarize.yaml", "--base-url", endpoint.base_url,
                     "--model", "m", "--dry-run", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "48 requests" in proc.stdout and endpoint.count == 0


def test_schema_command_prints_json_schema(project: Path) -> None:
    proc = promptkit("schema", cwd=project)
    assert json.loads(proc.stdout)["title"] == "promptkit eval spec"
