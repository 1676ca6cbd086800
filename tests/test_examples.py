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
