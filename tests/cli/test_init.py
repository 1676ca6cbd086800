"""``promptkit init``: what it writes, that it never overwrites, and that what it writes runs:
the templates check, the eval (scripted stand-in model and bundled local model) and the
workflow's own shell steps."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import promptkit
from promptkit.running.spec import load_spec
from promptkit.scaffold import FILES, LOCK, REQUIREMENTS, WORKFLOW, install_source, packaged

EXPECTED = sorted([*FILES.values(), REQUIREMENTS, LOCK])

needs_local = pytest.mark.skipif(
    shutil.which("llama-server") is None and not os.environ.get("PROMPTKIT_LLAMA_SERVER")
    and __import__("importlib.util").util.find_spec("llama_cpp") is None,
    reason="the [local] extra is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stand_in_model(project: Path) -> tuple[subprocess.Popen[str], str]:
    """The scaffolded evals/fake_model.py served as the README says, from evals/."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "promptkit.testing", "--port", str(port),
         "--responder", "fake_model:classify"], cwd=project / "evals",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}/v1"
        assert server.poll() is None, server.stderr.read()
        time.sleep(0.1)
    raise AssertionError("the stand-in model did not start")


def test_init_writes_the_files_then_never_overwrites_them(tmp_path: Path) -> None:
    proc = promptkit("init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    created = sorted(line.removeprefix("created ") for line in proc.stdout.splitlines()
                     if line.startswith("created "))
    assert created == EXPECTED
    assert all((tmp_path / path).is_file() for path in EXPECTED)
    assert "promptkit eval evals/classify.yaml" in proc.stdout

    edited = tmp_path / "evals" / "classify.yaml"
    edited.write_text(edited.read_text() + "# the app's own change\n")
    (tmp_path / WORKFLOW).write_text("name: ours\n")
    before = {path: (tmp_path / path).read_bytes() for path in EXPECTED}
    again = promptkit("init", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout
    skipped = sorted(line.removeprefix("skipped ").removesuffix(" (exists; left as it was)")
                     for line in again.stdout.splitlines() if line.startswith("skipped "))
    assert skipped == EXPECTED
    assert {path: (tmp_path / path).read_bytes() for path in EXPECTED} == before


def test_init_adds_what_is_missing_and_leaves_an_apps_lock_alone(tmp_path: Path) -> None:
    (tmp_path / "templates" / "greet").mkdir(parents=True)
    (tmp_path / "templates" / "greet" / "v1.jinja").write_text(
        "---\ninputs:\n  name: {type: string}\n---\nHello {{ name }}\n")
    assert promptkit("templates", "lock", cwd=tmp_path).returncode == 0
    lock = (tmp_path / LOCK).read_bytes()
    proc = promptkit("init", str(tmp_path), cwd=tmp_path.parent)
    assert proc.returncode == 0, proc.stderr
    assert f"skipped {LOCK} (exists; left as it was)" in proc.stdout
    assert "note: run `promptkit templates lock`" in proc.stdout
    assert f"cd {tmp_path} && promptkit eval" in proc.stdout
    assert (tmp_path / LOCK).read_bytes() == lock
    check = promptkit("templates", "check", cwd=tmp_path)
    assert check.returncode == 1 and "classify/v1.jinja" in check.stdout + check.stderr
    assert promptkit("templates", "lock", cwd=tmp_path).returncode == 0
    assert promptkit("templates", "check", cwd=tmp_path).returncode == 0


def test_init_refuses_a_file_where_it_needs_a_folder(tmp_path: Path) -> None:
    (tmp_path / "evals").write_text("not a folder")
    proc = promptkit("init", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("evals: a file is where init needs a folder")
    assert (tmp_path / "evals").read_text() == "not a folder"
    assert not (tmp_path / "templates").exists()  # checked before anything was written
    empty = promptkit("init", "", cwd=tmp_path)
    assert empty.returncode == 2 and "init needs a folder name" in empty.stderr


@pytest.mark.parametrize("taken", ["folder", "broken link", "link loop", "broken folder link"])
def test_init_checks_every_path_before_writing_any(tmp_path: Path, taken: str) -> None:
    target = tmp_path / "evals" / "classify.yaml"
    target.parent.mkdir()
    if taken == "folder":
        target.mkdir()
        expected = "a folder is where init would write a file"
    elif taken == "broken link":
        target.symlink_to(tmp_path / "nowhere.yaml")
        expected = "a broken link is where init would write a file"
    elif taken == "link loop":
        target.symlink_to(target)
        expected = "cannot check it:"
    else:
        target.parent.rmdir()
        target.parent.symlink_to(tmp_path / "gone")
        expected = "a broken link is where init needs a folder"
    proc = promptkit("init", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert expected in proc.stderr
    assert not (tmp_path / "templates").exists() and not (tmp_path / WORKFLOW).exists()


def test_init_makes_a_missing_folder_and_says_how_to_get_there(tmp_path: Path) -> None:
    proc = promptkit("init", "--", "-app/prompts", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "-app" / "prompts" / "evals" / "classify.yaml").is_file()
    assert "next: cd ./-app/prompts && promptkit eval evals/classify.yaml" in proc.stdout


def test_init_in_a_subfolder_of_a_git_repository_says_where_workflows_go(
        tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "service").mkdir()
    proc = promptkit("init", "service", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (f"note: service is inside the git repository {tmp_path}: GitHub runs only "
            f"workflows in {tmp_path / '.github/workflows'}; move {WORKFLOW} there (its "
            "paths already start with service/ and its steps run there)") in proc.stdout
    workflow = yaml.safe_load((tmp_path / "service" / WORKFLOW).read_text())
    assert workflow[True]["pull_request"]["paths"] == [
        "service/templates/**", "service/evals/**", "service/requirements-evals.txt"]
    job = workflow["jobs"]["eval"]
    assert job["defaults"] == {"run": {"working-directory": "service"}}
    steps = {step.get("name", step.get("uses")): step for step in job["steps"]}
    assert steps["actions/setup-python@v6"]["with"]["cache-dependency-path"] == \
        "service/requirements-evals.txt"
    assert steps["Restore the response cache"]["with"]["path"] == \
        "service/evals/.promptkit/cache.db"
    assert "hashFiles('service/templates/**', 'service/evals/**')" in \
        steps["Restore the response cache"]["with"]["key"]
    assert steps["Upload the report"]["with"]["path"].split() == [
        "service/report.html", "service/results.xml", "service/summary.md"]
    from test_examples import actionlint

    linted = actionlint(tmp_path / "service" / WORKFLOW)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    at_top = promptkit("init", cwd=tmp_path)
    assert at_top.returncode == 0 and "inside the git repository" not in at_top.stdout
    assert (tmp_path / WORKFLOW).read_text() == packaged("prompt-evals.yml")


def test_init_with_a_name_too_long_is_one_line(tmp_path: Path) -> None:
    proc = promptkit("init", "a" * 300, cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "File name too long" in proc.stderr


def test_the_scaffolded_eval_runs_against_the_stand_in_model(tmp_path: Path) -> None:
    assert promptkit("init", cwd=tmp_path).returncode == 0
    assert promptkit("templates", "check", cwd=tmp_path).returncode == 0
    server, base_url = stand_in_model(tmp_path)
    try:
        proc = promptkit("eval", "evals/classify.yaml", "--base-url", base_url, "--model",
                         "fake", "-o", "results.json", cwd=tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert len(results) == 8 and all(r["passed"] for r in results)
    # the prompt's own max-words and the informational latency check ran too
    assert [a["type"] for a in results[0]["assertions"]] == ["equals", "latency", "max-words"]
    assert "threshold 75% met by every row" in proc.stdout


def test_the_hosted_alternative_is_a_valid_provider_once_uncommented(tmp_path: Path) -> None:
    assert promptkit("init", cwd=tmp_path).returncode == 0
    spec = tmp_path / "evals" / "classify.yaml"
    lines = spec.read_text().splitlines()
    start = lines.index("  # - id: gpt-4o-mini")
    hosted = [line.replace("  # ", "  ", 1) for line in lines[start:start + 5]]
    assert all(not line.lstrip().startswith("#") for line in hosted)
    spec.write_text("\n".join([*lines[:start], *hosted, *lines[start + 5:]]) + "\n")
    loaded = load_spec(spec)
    assert [p.id for p in loaded.spec.providers] == ["local", "gpt-4o-mini"]
    assert loaded.spec.providers[1].api_key_env == "OPENAI_API_KEY"


def test_requirements_pin_where_promptkit_came_from(monkeypatch) -> None:
    from importlib import metadata

    class Dist:
        def __init__(self, direct: dict | None) -> None:
            self.direct = direct

        def read_text(self, name: str) -> str | None:
            return None if self.direct is None else json.dumps(self.direct)

    cases = [
        ({"url": "https://example.org/team/promptkit.git",
          "vcs_info": {"vcs": "git", "commit_id": "a" * 40}},
         f"promptkit-evals[local] @ git+https://example.org/team/promptkit.git@{'a' * 40}", ""),
        ({"url": "file:///src/promptkit", "vcs_info": {"vcs": "git", "commit_id": "b" * 40}},
         f"promptkit-evals[local] @ git+file:///src/promptkit@{'b' * 40}", "CI cannot reach"),
        ({"url": "file:///src/promptkit", "dir_info": {"editable": True}},
         "promptkit-evals[local] @ file:///src/promptkit", "CI cannot reach"),
        (None, "promptkit-evals[local]==", ""),
    ]
    for direct, line, note in cases:
        monkeypatch.setattr(metadata, "distribution", lambda name, d=direct: Dist(d))
        requirement, why = install_source()
        assert requirement.startswith(line) and (note in why if note else why == "")


def test_init_help_says_it_never_overwrites(tmp_path: Path) -> None:
    proc = promptkit("init", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "never overwritten" in proc.stdout


def run_step(script: str, project: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """One ``run:`` step as GitHub runs it on Linux: bash -e -o pipefail."""
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=project, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "160", **env})


@pytest.mark.local_model
@needs_local
def test_init_then_the_workflows_steps_run_and_gate(tmp_path: Path) -> None:
    """In an empty folder: init, then the workflow's shell steps as written (its install
    step aside), with the bundled local model: no baseline yet (the threshold only), a
    saved baseline (gated on it), and a missed threshold (exit 1, summary still written)."""
    assert promptkit("init", cwd=tmp_path).returncode == 0
    workflow = yaml.safe_load((tmp_path / WORKFLOW).read_text())
    job = workflow["jobs"]["eval"]
    steps = {step["name"]: step for step in job["steps"] if "name" in step}
    summary = tmp_path / "step-summary.md"
    env = {**job["env"], "GITHUB_STEP_SUMMARY": str(summary)}
    install = steps["Install promptkit (not the app)"]["run"]
    assert install == "pip install -r requirements-evals.txt"
    assert "-e ." not in install

    assert run_step(steps["Templates match their lock"]["run"], tmp_path, env).returncode == 0
    evaluate = steps["Eval against the committed baseline"]["run"]
    first = run_step(evaluate, tmp_path, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "::warning file=evals/classify.yaml::no baseline at" in first.stdout
    for name in ("report.html", "results.xml", "summary.md"):
        assert (tmp_path / name).is_file()
    assert run_step(steps["Summary on the run's page"]["run"], tmp_path, env).returncode == 0
    assert "| classify | local |" in summary.read_text()

    saved = promptkit("baseline", "save", "-o", env["BASELINE"], cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    gated = run_step(evaluate, tmp_path, env)
    assert gated.returncode == 0, gated.stdout + gated.stderr
    assert "::warning" not in gated.stdout and "baseline" in gated.stdout.lower()

    spec = tmp_path / env["EVAL"]
    spec.write_text(spec.read_text().replace("threshold: 0.75", "threshold: 1.0").replace(
        'value: "{{ label }}"', 'value: "{{ label }}!"'))
    (tmp_path / "summary.md").unlink()
    failed = run_step(evaluate, tmp_path, env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "NOT met" in failed.stdout
    assert run_step(steps["Summary on the run's page"]["run"], tmp_path, env).returncode == 0
    text = summary.read_text()  # the first run's summary, then this one's with its flips
    assert text.count("| classify | local |") == 2 and "| pass → FAIL | r1 |" in text


def test_init_says_when_the_lock_covers_files_the_app_already_had(tmp_path: Path) -> None:
    (tmp_path / "templates" / "emails").mkdir(parents=True)
    (tmp_path / "templates" / "emails" / "welcome.jinja").write_text("Hi {{ user }}\n")
    proc = promptkit("init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("note: the lock also covers 1 file(s) templates/ already held (e.g. "
            "emails/welcome.jinja): `promptkit templates check` fails when one changes"
            ) in proc.stdout
    fresh = tmp_path / "fresh"
    assert "the lock also covers" not in promptkit("init", str(fresh), cwd=tmp_path).stdout
