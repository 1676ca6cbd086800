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


def named_tests() -> list[str]:
    """Every test README.md names beside a claim: ``<!-- test: path::name, ... -->``."""
    text = (REPO / "README.md").read_text()
    names = []
    for comment in re.findall(r"<!--\s*test:(.*?)-->", text, re.S):
        names += [name.strip() for name in comment.replace("\n", " ").split(",") if name.strip()]
    return names


def test_every_test_the_readme_names_exists() -> None:
    names = named_tests()
    assert len(names) >= 40  # exit codes, secrets, caching, metrics, the gate
    for name in names:
        path, _, function = name.partition("::")
        source = (REPO / path).read_text()
        assert re.search(rf"^(async )?def {re.escape(function)}\(", source, re.M), name


def test_claims_about_exit_codes_secrets_caching_and_metrics_name_their_tests() -> None:
    text = (REPO / "README.md").read_text()
    for heading in ("**Exit codes.**", "**Caching.**", "**Secrets.**",
                    "**Metrics, as measured against reference implementations.**"):
        section = text[text.index(heading):]
        section = section[:section.index("-->") + 3]
        assert "<!-- test:" in section, heading


def test_detectable_drop_table_matches_the_code() -> None:
    from promptkit.comparing.stats import detectable_drop_table

    text = (REPO / "README.md").read_text()
    head = re.search(r"^\| cases \|(.*)\|$", text, re.M)
    one = re.search(r"^\| D, one gated row \(points\) \|(.*)\|$", text, re.M)
    three = re.search(r"^\| D, three gated rows \|(.*)\|$", text, re.M)
    assert head and one and three
    ns = [int(cell.strip().replace(",", "")) for cell in head.group(1).split("|")]
    for row, alpha in ((one, 0.05), (three, 0.05 / 3)):
        shown = [float(cell) for cell in row.group(1).split("|")]
        computed = [round(points, 1) for _, points in detectable_drop_table(ns, alpha)]
        assert shown == computed
