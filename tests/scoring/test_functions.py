"""python assertions: a user's function named module:function."""

from __future__ import annotations

import pytest

from promptkit.scoring.context import Output
from promptkit.scoring.registry import DEFAULT_THRESHOLDS
from promptkit.scoring.verdicts import GradingResult

# --- helpers referenced by `python` assertions as f"{__name__}:name" ----------------------
# __name__ is whatever pytest imported this module as, and it is in sys.modules, so the
# reference resolves however pytest is configured (rootdir-relative or importlib mode).


def says_hello(output, context):
    return "hello" in output


def quarter(output, context):
    return 0.25


def verdict_dict(output, context):
    return {"pass": context["vars"]["ok"], "score": 0.9, "reason": "looked at vars"}


def grading_result(output, context):
    return GradingResult(passed=False, reason="not good enough")


async def async_check(output, context):
    return context["output"].output_tokens == 3


def explodes(output, context):
    raise RuntimeError("boom")


def returns_text(output, context):
    return "yes"


def returns_too_much(output, context):
    return 1.5


NOT_CALLABLE = 42


def ref(name: str) -> str:
    return f"{__name__}:{name}"


async def test_python_bool(run_one):
    assert (await run_one("hello there", type="python", value=ref("says_hello"))).passed
    result = await run_one("bye", type="python", value=ref("says_hello"))
    assert (result.passed, result.score) == (False, 0.0)


async def test_python_float_against_threshold(run_one):
    # 0.25 < default 0.5 -> fail; with threshold 0.2 -> pass; the score is kept either way.
    result = await run_one("x", type="python", value=ref("quarter"))
    assert (result.passed, result.score) == (False, 0.25)
    assert DEFAULT_THRESHOLDS["python"] == 0.5
    result = await run_one("x", type="python", value=ref("quarter"), threshold=0.2)
    assert (result.passed, result.score) == (True, 0.25)


async def test_python_dict_and_grading_result(run_one, make_ctx):
    ctx = make_ctx(ok=True)
    result = await run_one("x", ctx, type="python", value=ref("verdict_dict"))
    assert (result.passed, result.score, result.reason) == (True, 0.9, "looked at vars")
    result = await run_one("x", type="python", value=ref("grading_result"))
    assert (result.passed, result.score, result.reason) == (False, 0.0, "not good enough")


async def test_python_async_function_gets_the_output_object(run_one):
    output = Output(text="abc", output_tokens=3)
    assert (await run_one(output, type="python", value=ref("async_check"))).passed


async def test_python_value_is_not_rendered(run_one, make_ctx):
    # "{{" never reaches a python reference: it names code, not a case's text.
    result = await run_one("x", make_ctx(), type="python", value="{{ m }}:f")
    assert "ModuleNotFoundError" in result.error


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("explodes", "RuntimeError: boom"),
        ("returns_text", "function returned str"),
        ("returns_too_much", "function gave score 1.5"),
    ],
)
async def test_python_failures_are_errors(run_one, function, message):
    result = await run_one("x", type="python", value=ref(function))
    assert (result.passed, result.score) == (False, 0.0)
    assert message in result.error
