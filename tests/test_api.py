"""promptkit.evaluate() as a library call, and the three front ends that share it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import promptkit
from helpers import REPO, baseline_answers
from helpers import promptkit as run_cli
from promptkit.testing import FakeEndpoint

ROW_FIELDS = ("prompt_id", "provider_id", "cases", "passed", "errors", "pass_rate", "ci_low",
              "ci_high", "score", "metrics", "input_tokens", "output_tokens", "flaky_cases")


def rows_of(rows) -> list[dict]:
    return [{name: getattr(row, name) if not isinstance(row, dict) else row[name]
             for name in ROW_FIELDS} for row in rows]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    shutil.copytree(REPO / "evals", tmp_path / "evals",
                    ignore=shutil.ignore_patterns(".promptkit"))
    return tmp_path


def test_evaluate_prints_nothing_and_returns_rows_results_and_an_exit_code(
        project: Path, endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(baseline_answers())
    script = (
        "import promptkit\n"
        f"r = promptkit.evaluate('evals/summarize.yaml', base_url={endpoint.base_url!r}, "
        "model='m', api='completions', limit=4)\n"
        "print('RESULT', len(r.rows), sum(1 for _ in r.results()), r.exit_code)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "RESULT 2 8 0\n"  # nothing else: no table, no progress
    assert proc.stderr == ""


def test_the_report_keeps_nothing_open(project: Path,
                                                 endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(baseline_answers())
    with promptkit.evaluate(project / "evals/summarize.yaml", base_url=endpoint.base_url,
                            model="m", api="completions", limit=2) as report:
        assert [r.prompt_id for r in report.rows] == ["zero-shot", "few-shot"]
        results = list(report.results(prompt_id="few-shot"))
        assert len(results) == 2 and {r.prompt_id for r in results} == {"few-shot"}
    assert report.exit_code in (0, 1) and report.comparison is None
    # no database handle travels with the report: the store can be moved away
    moved = report.store_path.with_name("moved.db")
    report.store_path.rename(moved)
    assert moved.exists()


def test_warnings_are_returned_for_the_presenter_not_printed(
        project: Path, endpoint: FakeEndpoint, capsys: pytest.CaptureFixture[str]) -> None:
    spec = project / "evals" / "reasoning.yaml"
    spec.write_text(spec.read_text().replace("mmr_lambda: 0.5", "lambda: 0.5"))
    report = promptkit.evaluate(spec, base_url=endpoint.base_url, model="m", limit=1)
    assert any("mmr_lambda" in warning for warning in report.warnings)
    assert capsys.readouterr() == ("", "")


def test_the_cli_the_plugin_and_evaluate_give_identical_summaries(
        project: Path, endpoint: FakeEndpoint, pytester: pytest.Pytester) -> None:
    endpoint.respond_with(baseline_answers())
    args = ("--base-url", endpoint.base_url, "--model", "m", "--api", "completions")
    cli = run_cli("eval", "evals/summarize.yaml", *args, "-q", "-o", "cli.json", cwd=project)
    assert cli.returncode in (0, 1), cli.stderr
    from_cli = json.loads((project / "cli.json").read_text())["summary"]["rows"]
    report = promptkit.evaluate(project / "evals/summarize.yaml", base_url=endpoint.base_url,
                                model="m", api="completions")
    shutil.copytree(project / "templates", pytester.path / "templates")
    shutil.copytree(project / "evals", pytester.path / "evals",
                    ignore=shutil.ignore_patterns(".promptkit"))
    out = pytester.path / "plugin.json"
    pytester.makepyfile(test_app=f'''
import json

def test_rows(promptkit_eval):
    result = promptkit_eval("evals/summarize.yaml")
    rows = [{{name: getattr(row, name) for name in {ROW_FIELDS!r}}} for row in result.summary.rows]
    open({str(out)!r}, "w").write(json.dumps(rows))
''')
    outcome = pytester.runpytest_subprocess("--promptkit-base-url", endpoint.base_url,
                                            "--promptkit-model", "m", "--promptkit-api",
                                            "completions", "-p", "no:cacheprovider")
    outcome.assert_outcomes(passed=1)
    from_plugin = json.loads(out.read_text())
    assert rows_of(from_cli) == rows_of(report.rows) == from_plugin
