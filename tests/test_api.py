"""promptkit.evaluate() as a library call, and the three front ends that share it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import promptkit
from helpers import REPO, baseline_answers
from helpers import promptkit as run_cli
from promptkit.testing import FakeEndpoint, Reply

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


TOKENS_SPEC = """\
templates: ../templates
prompts: [summarize@1]
providers: [{{id: gpt, base_url: "{base_url}", model: {model}, retries: 0}}]
cases: [{{article: One.}}, {{article: Two.}}]
assert: [{{type: contains, value: answer}}]
"""


def test_every_report_whose_token_counts_fell_back_says_so(
        project: Path, endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from promptkit.tokens import count_tokens

    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):  # o200k_base: not offline
        monkeypatch.delenv(variable, raising=False)
    model = "gpt-4o-2024-11-20"  # a name no other test counts with: nothing logged yet
    spec = project / "evals" / "tokens.yaml"
    spec.write_text(TOKENS_SPEC.format(base_url=endpoint.base_url, model=model))
    endpoint.default = Reply.text("An answer.", usage=False)  # promptkit counts the tokens
    expected = (f"token counts for {model} use cl100k_base (its o200k_base encoding is not "
                "available offline)")
    with caplog.at_level("WARNING", logger="promptkit"):
        for use_cache in (True, False):  # not only the first report of the process
            report = promptkit.evaluate(spec, use_cache=use_cache)
            assert report.warnings == [expected]
            assert all(r.input_tokens and r.output_tokens for r in report.results())
        assert caplog.records == []  # collected, not logged
        # answered from the first run's cache, nothing is counted: no warning
        assert promptkit.evaluate(spec).warnings == []
        assert endpoint.count == 4
        # outside evaluate(), counting warns through the logger, once
        assert count_tokens("one", model) == count_tokens("two", model) == 1
    assert [r.getMessage() for r in caplog.records] == [expected]


def test_warnings_given_before_an_error_travel_with_it(project: Path,
                                                       endpoint: FakeEndpoint) -> None:
    spec = project / "evals" / "reasoning.yaml"
    spec.write_text(spec.read_text().replace("mmr_lambda: 0.5", "lambda: 0.5"))
    with pytest.raises(promptkit.PromptkitError, match=r"missing\.json") as info:
        promptkit.evaluate(spec, base_url=endpoint.base_url, model="m",
                           baseline=project / "missing.json")
    assert info.value.warnings == ("fewshot: 'lambda' is deprecated and will be removed in "
                                   "the next release; use 'mmr_lambda'",)
    assert endpoint.count == 0


def test_other_libraries_warnings_are_not_collected(project: Path, endpoint: FakeEndpoint,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "evals" / "noisy_checks.py").write_text(
        "import warnings\n\n"
        "def check(text, context):\n"
        "    warnings.warn('from a library the check uses', UserWarning)\n"
        "    return True\n")
    monkeypatch.syspath_prepend(str(project / "evals"))
    spec = project / "evals" / "noisy.yaml"
    spec.write_text(TOKENS_SPEC.format(base_url=endpoint.base_url, model="m").replace(
        "{type: contains, value: answer}", "{type: python, value: 'noisy_checks:check'}"))
    try:
        with pytest.warns(UserWarning, match="from a library the check uses"):
            report = promptkit.evaluate(spec, use_cache=False)
    finally:
        sys.modules.pop("noisy_checks", None)
    assert report.warnings == [] and report.exit_code == 0


def test_the_cli_prints_the_warnings_given_before_an_error(project: Path,
                                                           endpoint: FakeEndpoint) -> None:
    spec = project / "evals" / "reasoning.yaml"
    spec.write_text(spec.read_text().replace("mmr_lambda: 0.5", "lambda: 0.5"))
    for extra in ((), ("--dry-run",)):
        cli = run_cli("eval", "evals/reasoning.yaml", "--base-url", endpoint.base_url,
                      "--model", "m", "--baseline", "missing.json", "-q", *extra, cwd=project)
        assert cli.returncode == 2
        warning, error = cli.stderr.splitlines()
        assert warning == ("warning: fewshot: 'lambda' is deprecated and will be removed in "
                           "the next release; use 'mmr_lambda'")
        assert error.startswith("promptkit: error: ") and "missing.json" in error
    assert endpoint.count == 0


EMBEDDINGS_SPEC = """\
templates: ../templates
prompts:
  - id: by-embeddings
    template: math@1
    fewshot: {{pool: data/math_pool.jsonl, k: 2, fields: [question], budget: 1,
              embeddings: embedder}}
providers: [{{id: m, base_url: "{base_url}", model: m, retries: 0}}]
graders: [{{id: embedder, base_url: "{base_url}", model: e, retries: 0}}]
cases: [{{question: "What is 2 + 2?"}}, {{question: "What is 3 + 3?"}}]
assert: [{{type: contains, value: "4"}}]
"""


def test_warnings_given_while_selecting_examples_off_the_loop_are_collected(
        project: Path, endpoint: FakeEndpoint) -> None:
    spec = project / "evals" / "embeddings.yaml"
    spec.write_text(EMBEDDINGS_SPEC.format(base_url=endpoint.base_url))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing reaches the warnings module
        report = promptkit.evaluate(spec, use_cache=False)
    assert [w.split(" (")[0] for w in report.warnings] == [
        "few-shot budget of 1 tokens fits no example"]
    assert "(prompt 'by-embeddings': pool " in report.warnings[0]  # names who selects
    assert all(r.examples == [] for r in report.results())
    assert any(r.path.endswith("/embeddings") for r in endpoint.requests)


def test_a_stored_run_that_did_not_finish_does_not_exit_0(project: Path,
                                                          endpoint: FakeEndpoint) -> None:
    spec = project / "evals" / "tokens.yaml"
    spec.write_text(TOKENS_SPEC.format(base_url=endpoint.base_url, model="m"))
    endpoint.default = Reply.text("An answer.")

    def stop(result) -> None:
        raise KeyboardInterrupt  # Ctrl+C after the first case

    with pytest.raises(KeyboardInterrupt):
        promptkit.evaluate(spec, on_result=stop)
    store = project / "evals" / ".promptkit"
    report = promptkit.load_report("last", store_dir=store)
    assert report.run.status == "interrupted"
    assert report.failed_checks() == [] and report.rows[0].pass_rate == 1.0
    assert report.exit_code == 3  # the run did not complete, whatever its rows say
    finished = promptkit.evaluate(spec, resume=True)
    assert finished.run.run_id == report.run.run_id and finished.exit_code == 0
    assert promptkit.load_report("last", store_dir=store).exit_code == 0


def test_evaluate_takes_a_spec_loaded_with_promptkit_load_spec(project: Path,
                                                              endpoint: FakeEndpoint) -> None:
    spec = project / "evals" / "tokens.yaml"
    spec.write_text(TOKENS_SPEC.format(base_url=endpoint.base_url, model="m"))
    endpoint.default = Reply.text("An answer.")
    loaded = promptkit.load_spec(spec)  # validated once, e.g. to look at before running
    assert [p.id for p in loaded.spec.prompts] == ["summarize@1"]
    report = promptkit.evaluate(loaded, limit=1)
    assert (report.exit_code, len(list(report.results()))) == (0, 1)
    assert "load_spec" in promptkit.__all__
