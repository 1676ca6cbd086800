"""Every script in examples/ runs and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
SCRIPTS = sorted((REPO / "examples").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs(script: Path) -> None:
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "an example must show its result"


def test_render_prompt_example_shows_the_production_version() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "render_prompt.py")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("summarize@2 sha256=")
    assert "hottest since records began" in proc.stdout


def test_fewshot_cot_example_votes_the_right_answer() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "fewshot_cot.py")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "answer 54, votes {'54': 2, '56': 1}, agreement 0.67" in proc.stdout
    assert "similar  -> ['p-en-" in proc.stdout


def workflow_commands() -> list[list[str]]:
    """The promptkit command lines of examples/github-actions.yml, split like a shell."""
    import shlex

    import yaml

    workflow = yaml.safe_load((REPO / "examples" / "github-actions.yml").read_text())
    assert workflow[True]["pull_request"]["paths"]  # YAML 1.1 reads the `on:` key as True
    steps = workflow["jobs"]["eval"]["steps"]
    commands = [shlex.split(step["run"]) for step in steps if "run" in step]
    return [words for words in commands if words[0] == "promptkit"]


def test_github_actions_workflow_uses_commands_the_cli_has() -> None:
    import click

    from promptkit.cli import cli

    commands = workflow_commands()
    assert len(commands) == 2
    for words in commands:
        command: click.Command = cli
        args = words[1:]
        while isinstance(command, click.Group) and args and args[0] in command.commands:
            command = command.commands[args.pop(0)]
        assert not isinstance(command, click.Group), words
        options = {opt for param in command.params for opt in param.opts}
        used = [arg.split("=")[0] for arg in args if arg.startswith("-")]
        assert (used and set(used) <= options) or command.name == "check", (words, options)
    eval_words = commands[1]
    assert eval_words[:3] == ["promptkit", "eval", "evals/summarize.yaml"]
    assert (REPO / eval_words[2]).is_file()
    baseline = eval_words[eval_words.index("--baseline") + 1]
    assert (REPO / baseline).is_file() and "--fail-on-regression" in eval_words


def test_github_actions_workflow_uploads_the_report_it_writes() -> None:
    import yaml

    steps = yaml.safe_load((REPO / "examples" / "github-actions.yml").read_text())[
        "jobs"]["eval"]["steps"]
    upload = next(step for step in steps if step.get("uses", "").startswith(
        "actions/upload-artifact"))
    assert upload["if"] == "always()"  # the report matters most when the gate fails
    eval_words = workflow_commands()[1]
    written = {eval_words[i + 1] for i, word in enumerate(eval_words) if word == "--output"}
    assert written == set(upload["with"]["path"].split())
    assert "report.html" in written
