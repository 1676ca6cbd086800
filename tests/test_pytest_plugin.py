"""The pytest plugin as an app uses it: a project's own tests, run by pytest in a subprocess."""

from __future__ import annotations

import shutil
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from helpers import WORSE, baseline_answers
from promptkit.testing import FakeEndpoint

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
