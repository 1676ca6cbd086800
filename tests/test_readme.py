"""README.md stays true: its set-up commands come first and CI runs the test one."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).parent.parent


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md must open with a bash block of set-up commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_demo_and_test_commands() -> None:
    demo, tests = readme_commands()[:2]
    assert "promptkit " in demo
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = readme_commands()[1]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci
