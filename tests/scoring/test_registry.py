"""Assertion types registered from Python: what they accept, how they are validated and
scored, and a custom type used by a YAML eval run end to end."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pydantic
import pytest

import promptkit
from helpers import promptkit as promptkit_cli
from promptkit.errors import ConfigError, PromptkitError
from promptkit.running.plan import plan_eval
from promptkit.running.runner import RunOptions, run_eval
from promptkit.running.spec import load_spec
from promptkit.running.storage import RunStore
from promptkit.scoring import registry
from promptkit.scoring.assertion import Assertion, check_assertions
from promptkit.scoring.context import Output
from promptkit.scoring.engine import score
from promptkit.scoring.registry import (
    ASSERTION_TYPES,
    DEFAULT_THRESHOLDS,
    register_assertion,
    unregister_assertion,
)
from promptkit.scoring.verdicts import GradingResult, thresholded
from promptkit.testing import FakeEndpoint, Reply

pytestmark = pytest.mark.usefixtures("restore_registry")

REPO = Path(__file__).parents[2]


def keyword_share(assertion, output, ctx):
    """The share of the output's words that contain the value."""
    words = output.text.split()
    share = sum(assertion.value in word for word in words) / len(words) if words else 0.0
    return thresholded("keyword share", share, assertion.pass_mark)


def test_the_top_package_exports_the_registration_function():
    assert promptkit.register_assertion is register_assertion
    assert "register_assertion" in promptkit.__all__


async def test_a_registered_type_is_validated_and_scored_like_a_built_in(make_ctx):
    promptkit.register_assertion("keyword-share", takes="text", threshold=0.3)(keyword_share)
    assert "keyword-share" in ASSERTION_TYPES and DEFAULT_THRESHOLDS["keyword-share"] == 0.3
    assertions = [Assertion(type="keyword-share", value="{{ word }}"),
                  Assertion(type="not-keyword-share", value="cat", threshold=0.9, weight=0)]
    case = await score(Output(text="cat dog cat bird"), assertions, make_ctx(word="dog"))
    first, second = case.results
    assert (first.passed, first.score, first.reason) == (False, 0.25, "keyword share 0.250 < 0.3")
    assert (second.passed, second.score, second.metric) == (True, 0.5, "not-keyword-share")
    with pytest.raises(pydantic.ValidationError, match="value: keyword-share needs a text"):
        Assertion(type="keyword-share")
    with pytest.raises(pydantic.ValidationError, match="n: only rouge-n takes n"):
        Assertion(type="keyword-share", value="a", n=2)


def test_registering_a_name_twice_is_an_error_unless_replacing():
    register_assertion("twice")(keyword_share)
    with pytest.raises(PromptkitError, match="'twice' is already registered; pass replace=True"):
        register_assertion("twice")(keyword_share)
    with pytest.raises(PromptkitError, match="'contains' is already registered"):
        register_assertion("contains", takes="text")(keyword_share)

    def contains_word(assertion, output, ctx):
        return GradingResult(assertion.value in output.text.split())

    register_assertion("contains", takes="text", replace=True)(contains_word)
    assert registry.lookup("contains").handler is contains_word
    assert list(ASSERTION_TYPES).index("contains") == 1  # replaced in place


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("", {}, "invalid assertion type name ''"),
        ("not-mine", {}, "not starting with 'not-'"),
        ("mine", {"takes": "number"}, "takes='number'; choose one of any, text, texts"),
        ("mine", {"threshold": 1.5}, "threshold=1.5 is not in"),
        ("mine", {"threshold": 0.5, "scored": False}, "a type with a default threshold is scored"),
        ("mine", {"provider": "grader"}, "choose 'judge' or 'embedding'"),
        ("mine", {"params": ("path",), "renders": ("name",)},
         r"renders=\['name'\]; choose among value and params"),
    ],
)
def test_bad_registrations_are_refused(name, options, message):
    with pytest.raises(PromptkitError, match=message):
        register_assertion(name, **options)


def test_unknown_types_list_the_registered_ones_too():
    register_assertion("keyword-share", takes="text", threshold=0.3)(keyword_share)
    with pytest.raises(pydantic.ValidationError) as info:
        Assertion(type="keyword-shares")
    assert "valid types: equals, contains," in str(info.value)
    assert "max-words, keyword-share (each may be prefixed 'not-')" in str(info.value)
    unregister_assertion("keyword-share")
    with pytest.raises(pydantic.ValidationError, match="unknown assertion type 'keyword-share'"):
        Assertion(type="keyword-share")
    with pytest.raises(PromptkitError, match="no assertion type 'keyword-share'"):
        unregister_assertion("keyword-share")


def test_a_type_validates_and_checks_its_own_parameters():
    def must_be_short(assertion):
        if not isinstance(assertion.value, str) or len(assertion.value) > 5:
            raise ValueError("value: short-word needs a word of at most 5 letters")

    def must_be_known(assertion):
        if assertion.value not in {"cat", "dog"}:
            raise LookupError(f"no list has {assertion.value!r}")

    register_assertion("short-word", validate=must_be_short, check=must_be_known)(keyword_share)
    with pytest.raises(pydantic.ValidationError, match="needs a word of at most 5 letters"):
        Assertion(type="short-word", value="elephant")
    with pytest.raises(ConfigError) as info:
        check_assertions([Assertion(type="short-word", value="cow")], set())
    assert str(info.value) == "assert[0].value: LookupError: no list has 'cow'"


def test_a_type_that_needs_a_provider_must_name_a_known_one():
    register_assertion("second-opinion", takes="text", scored=True,
                       provider="judge")(keyword_share)
    Assertion(type="second-opinion", value="r", threshold=0.5)  # scored: takes a threshold
    with pytest.raises(ConfigError, match=r"assert\[0\]\.provider: second-opinion needs an "
                                          r"explicit judge provider"):
        check_assertions([Assertion(type="second-opinion", value="r")], {"j"})
    with pytest.raises(ConfigError, match=r"unknown provider 'k' \(known: j\)"):
        check_assertions([Assertion(type="second-opinion", value="r", provider="k")], {"j"})
    with pytest.raises(pydantic.ValidationError,
                       match="only llm-judge, second-opinion and similar take a provider"):
        Assertion(type="contains", value="a", provider="j")


async def test_a_handler_that_raises_fails_its_assertion_and_the_others_still_run(make_ctx):
    @register_assertion("explodes")
    def explodes(assertion, output, ctx):
        raise RuntimeError("boom")

    assertions = [Assertion(type="explodes"), Assertion(type="contains", value="x")]
    case = await score(Output(text="x"), assertions, make_ctx())
    exploded, contained = case.results
    assert (exploded.passed, exploded.score, exploded.error) == (False, 0.0, "RuntimeError: boom")
    assert contained.passed and contained.error is None
    assert not case.passed and case.metrics == {"contains": 1.0}


# --- end to end: a YAML eval run against the scripted endpoint ------------------------------

SPEC = """\
templates: templates
prompts: [summarize@1]
providers:
  - id: fake
    base_url: {base_url}
    model: m
    retries: 1
dataset: data.jsonl
assert:
  - type: keyword-share
    value: "{{{{ keyword }}}}"
  - type: not-keyword-share
    value: nowhere
    metric: off-topic
  - type: explodes
    weight: 0
"""


def test_a_registered_type_scores_a_yaml_eval_run(tmp_path: Path, endpoint: FakeEndpoint):
    register_assertion("keyword-share", takes="text", threshold=0.3)(keyword_share)

    @register_assertion("explodes")
    def explodes(assertion, output, ctx):
        raise RuntimeError("boom")

    shutil.copytree(REPO / "templates", tmp_path / "templates")
    rows = [{"id": f"c{i}", "article": f"Article {i}.", "keyword": f"key{i}"} for i in (0, 1)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    spec = tmp_path / "eval.yaml"
    spec.write_text(SPEC.format(base_url=endpoint.base_url))
    endpoint.default = Reply.text("key0 and key0 once again")  # 5 words, 2 with key0

    outcome = asyncio.run(run_eval(plan_eval(load_spec(spec)), RunOptions()))
    with RunStore(tmp_path / ".promptkit" / "runs.db") as store:
        results = {r.case_id: r for r in store.results(outcome.run.run_id)}

    assert outcome.run.status == "finished" and set(results) == {"c0", "c1"}
    for case_id, share in (("c0", 0.4), ("c1", 0.0)):
        result = results[case_id]
        # the exploding check has weight 0: informational, reported but never failing
        assert result.error is None and result.passed == (share >= 0.3)
        assert result.metrics == {"keyword-share": pytest.approx(share), "off-topic": 1.0}
        shared, off_topic, exploded = result.assertions
        assert (shared["type"], shared["passed"], shared["score"]) == (
            "keyword-share", share >= 0.3, pytest.approx(share))
        assert (off_topic["type"], off_topic["passed"]) == ("not-keyword-share", True)
        assert exploded["error"] == "RuntimeError: boom"
        assert result.score == pytest.approx((share + 1.0) / 2)  # weight 0 for the error


# --- plugins: modules a spec imports before its assertions are checked ------------------------

PLUGIN = '''\
from promptkit import register_assertion
from promptkit.scoring import GradingResult


@register_assertion("max-lines", takes="maximum")
def max_lines(assertion, output, context):
    lines = len(output.text.splitlines())
    return GradingResult(lines <= assertion.value, reason=f"{lines} lines")


def ok(text, context):
    return True
'''

PLUGIN_SPEC = """\
templates: ../templates
plugins: [mychecks]
prompts: [summarize@1]
providers: [{{id: fake, base_url: "{base_url}", model: m, retries: 0}}]
cases: [{{article: One.}}, {{article: Two.}}]
assert: [{{type: python, value: "mychecks:ok"}}, {{type: max-lines, value: {most}}}]
threshold: 1
"""


def plugin_project(tmp_path: Path, base_url: str, most: int) -> Path:
    """templates/, evals/ with the spec and its plugin beside it, and another folder."""
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "mychecks.py").write_text(PLUGIN)
    (tmp_path / "evals" / "lines.yaml").write_text(
        PLUGIN_SPEC.format(base_url=base_url, most=most))
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "evals" / "lines.yaml"


@pytest.mark.parametrize(("most", "code"), [(3, 0), (1, 1)])
def test_a_type_registered_by_a_plugin_scores_a_cli_run(tmp_path: Path, endpoint: FakeEndpoint,
                                                        most: int, code: int):
    spec = plugin_project(tmp_path, endpoint.base_url, most)
    endpoint.default = Reply.text("first line\nsecond line")
    # from another folder: the plugin and the python assertion's module sit beside the spec
    run = promptkit_cli("eval", str(spec), "-q", "--no-cache", "-o", "out.json",
                        cwd=tmp_path / "elsewhere")
    assert run.returncode == code, run.stderr
    results = json.loads((tmp_path / "elsewhere" / "out.json").read_text())["results"]
    checks = [(a["type"], a["passed"], a["reason"]) for r in results for a in r["assertions"]]
    assert checks == [("python", True, "function returned True"),
                      ("max-lines", most >= 2, "2 lines")] * 2
    assert endpoint.count == 2


def test_a_plugin_that_fails_to_import_is_one_line_and_exit_2(tmp_path: Path,
                                                              endpoint: FakeEndpoint):
    spec = plugin_project(tmp_path, endpoint.base_url, 3)
    spec.write_text(spec.read_text().replace("plugins: [mychecks]",
                                             "plugins:\n  - mychecks\n  - no_such_checks"))
    run = promptkit_cli("eval", str(spec), "-q", cwd=tmp_path / "elsewhere")
    assert run.returncode == 2
    assert run.stderr == (f"promptkit: error: {spec}:4: plugins[1]: cannot import "
                          "'no_such_checks': ModuleNotFoundError: No module named "
                          "'no_such_checks'\n")
    (tmp_path / "evals" / "mychecks.py").write_text("raise RuntimeError('no\\nway')\n")
    run = promptkit_cli("eval", str(spec), "-q", cwd=tmp_path / "elsewhere")
    assert (run.returncode, run.stderr) == (2, f"promptkit: error: {spec}:3: plugins[0]: "
                                               "cannot import 'mychecks': RuntimeError: no\n")
    assert endpoint.count == 0
