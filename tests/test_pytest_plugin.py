"""The pytest plugin as an app uses it: a project's own tests, run by pytest in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from helpers import WORSE, baseline_answers
from promptkit.testing import FakeEndpoint, Reply

REPO = Path(__file__).parent.parent

APP_TESTS = '''
def test_production_prompt_renders_the_article(prompt_templates):
    template = prompt_templates.get("summarize@production")
    assert template.version == 2
    messages = template.render(article="Rain fell in Paris.")
    assert "Rain fell in Paris." in messages[-1]["content"]


def test_summaries_do_not_regress(promptkit_eval):
    result = promptkit_eval("evals/summarize.yaml",
                            baseline="evals/baselines/summarize.json")
    assert result.row("few-shot").cases == 24
    result.assert_no_regression()


def test_zero_shot_pass_rate(promptkit_eval):
    promptkit_eval("evals/summarize.yaml", prompts=("zero-shot",)).assert_pass_rate(0.2)
'''


@pytest.fixture
def app(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: the repo's templates and evals, and the tests above."""
    shutil.copytree(REPO / "templates", pytester.path / "templates")
    shutil.copytree(REPO / "evals", pytester.path / "evals",
                    ignore=shutil.ignore_patterns(".promptkit"))
    pytester.makepyfile(test_app=APP_TESTS)
    return pytester


def endpoint_args(endpoint: FakeEndpoint) -> list[str]:
    return ["--promptkit-base-url", endpoint.base_url, "--promptkit-model", "m",
            "--promptkit-api", "completions", "-p", "no:cacheprovider"]


def test_plugin_is_registered_as_pytest11_entry_point() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("promptkit") == "promptkit.pytest_plugin"


def test_app_tests_pass_with_the_baseline_answers(app: pytest.Pytester,
                                                  endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(baseline_answers())
    result = app.runpytest_subprocess(*endpoint_args(endpoint))
    result.assert_outcomes(passed=3)
    assert endpoint.count == 48  # the zero-shot-only eval was answered from the cache


def test_a_worse_template_fails_printing_the_flipped_cases(app: pytest.Pytester,
                                                          endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(baseline_answers(worse_template="summarize@2"))
    result = app.runpytest_subprocess(*endpoint_args(endpoint))
    result.assert_outcomes(passed=2, failed=1)
    output = result.stdout.str()
    assert "test_summaries_do_not_regress" in output
    assert ("verdict: WORSE at alpha 0.05 (one-sided, Holm over 2 gated row(s)): "
            "few-shot × m") in output
    assert "pass → FAIL  en-01  (few-shot × m)" in output
    assert WORSE in output
    assert "Traceback" not in output  # a clean failure, not a stack


def test_invalid_spec_fails_with_promptkit_message(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", bad="prompts: [x@1]\nproviders: [local]\nnonsense: 1\n")
    pytester.makepyfile(test_bad='''
def test_bad(promptkit_eval):
    promptkit_eval("bad.yaml")
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*promptkit: bad.yaml:3: nonsense: unknown key*"])
    assert "During handling" not in result.stdout.str()


def test_options_are_listed_in_pytest_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--promptkit-base-url=BASE_URL*", "*--promptkit-no-cache*"])


def test_missing_template_folder_is_a_clean_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_t='''
def test_t(prompt_templates):
    pass
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*promptkit: *templates*set --promptkit-templates*"])
    assert "Traceback" not in result.stdout.str()


SUBFOLDER_TESTS = '''
from pathlib import Path


def test_the_apps_templates(prompt_templates):
    assert prompt_templates.get("summarize@production").version == 2


def test_the_apps_eval(promptkit_eval):
    result = promptkit_eval("evals/summarize.yaml", prompts=("zero-shot",), limit=2,
                            store_dir=".promptkit-tests")
    assert result.row("zero-shot").cases == 2
    assert Path(__file__).parents[1].joinpath(".promptkit-tests", "runs.db").is_file()
'''


def test_paths_are_relative_to_the_rootdir_from_any_subfolder(tmp_path: Path,
                                                              endpoint: FakeEndpoint) -> None:
    app = tmp_path / "app"
    shutil.copytree(REPO / "templates", app / "templates")
    shutil.copytree(REPO / "evals", app / "evals", ignore=shutil.ignore_patterns(".promptkit"))
    (app / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    (app / "tests").mkdir()
    (app / "tests" / "test_app.py").write_text(SUBFOLDER_TESTS)
    # test data of the app's own, named like the store: never taken for it
    (app / "tests" / "templates" / "summarize").mkdir(parents=True)
    (app / "tests" / "templates" / "summarize" / "v1.jinja").write_text("{{ x }}\n")
    endpoint.respond_with(baseline_answers())
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           *endpoint_args(endpoint)[:-2]], cwd=app / "tests",
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    assert not (app / "tests" / ".promptkit-tests").exists()


THRESHOLD_TESTS = '''
def test_thresholds(promptkit_eval):
    promptkit_eval("evals/reasoning.yaml", prompts=("fewshot-mmr",), limit=2).assert_thresholds()
'''


def test_assert_thresholds_uses_the_reports_checks_and_shows_its_warnings(
        pytester: pytest.Pytester, endpoint: FakeEndpoint) -> None:
    shutil.copytree(REPO / "templates", pytester.path / "templates")
    shutil.copytree(REPO / "evals", pytester.path / "evals",
                    ignore=shutil.ignore_patterns(".promptkit"))
    spec = pytester.path / "evals" / "reasoning.yaml"
    spec.write_text(spec.read_text().replace("mmr_lambda: 0.5", "lambda: 0.5")
                    + "threshold: 0.9\n")
    pytester.makepyfile(test_app=THRESHOLD_TESTS)
    endpoint.default = Reply.text("I do not know.")
    result = pytester.runpytest_subprocess(*endpoint_args(endpoint))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*FAILED threshold: fewshot-mmr × m 0.0% < 90%",
        "warning: fewshot: 'lambda' is deprecated and will be removed in the next release; "
        "use 'mmr_lambda'",
    ])


PER_PROVIDER_TESTS = '''
def test_few_shot_passes_on_each_provider(promptkit_eval):
    promptkit_eval("eval.yaml").assert_pass_rate(0.8, prompt="few-shot")
'''

PER_PROVIDER_SPEC = """\
templates: templates
prompts: [{{id: few-shot, template: summarize@2, vars: {{examples: []}}}}]
providers:
  - {{id: strong, base_url: "{base_url}", model: strong, retries: 0}}
  - {{id: weak, base_url: "{base_url}", model: weak, retries: 0}}
cases: [{{article: One.}}, {{article: Two.}}]
assert: [{{type: contains, value: summary}}]
"""


def test_assert_pass_rate_of_a_prompt_applies_to_each_provider(
        pytester: pytest.Pytester, endpoint: FakeEndpoint) -> None:
    shutil.copytree(REPO / "templates", pytester.path / "templates")
    (pytester.path / "eval.yaml").write_text(
        PER_PROVIDER_SPEC.format(base_url=endpoint.base_url))
    pytester.makepyfile(test_app=PER_PROVIDER_TESTS)
    endpoint.respond_with(lambda request: "a summary" if request.body["model"] == "strong"
                          else "no idea")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*pass rate below 80%: few-shot × weak 0.0%"])
    assert "strong 0.0%" not in result.stdout.str()
    endpoint.respond_with(lambda request: "a summary")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--promptkit-no-cache")
    result.assert_outcomes(passed=1)
