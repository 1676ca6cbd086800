"""Text checks: equals, contains, icontains, starts-with, regex, contains-any/-all."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("kind", "value", "output", "passed"),
    [
        ("equals", "Paris", "Paris\n", True),  # surrounding whitespace ignored
        ("equals", "Paris", "paris", False),
        ("equals", 42, "42", True),  # a YAML number means its text
        ("contains", "北京", "今天北京天气晴朗", True),
        ("contains", "上海", "今天北京天气晴朗", False),
        ("icontains", "PARIS", "I love paris.", True),
        ("icontains", "london", "I love paris.", False),
        ("starts-with", "Answer:", "  Answer: 4", True),
        ("starts-with", "Answer:", "The Answer: 4", False),
        ("regex", r"\d{4}年", "GPT-4o在2024年发布", True),
        ("regex", r"^\d+$", "12a", False),
        ("contains-any", ["cat", "狗"], "我的狗", True),
        ("contains-any", ["cat", "dog"], "a bird", False),
        ("contains-all", ["北京", "晴"], "北京天气晴朗", True),
        ("contains-all", ["北京", "雨"], "北京天气晴朗", False),
    ],
)
async def test_binary_text_types(run_one, kind, value, output, passed):
    result = await run_one(output, type=kind, value=value)
    assert (result.passed, result.score, result.error) == (passed, float(passed), None)
    negated = await run_one(output, type=f"not-{kind}", value=value)
    assert (negated.passed, negated.score) == (not passed, float(not passed))
    assert negated.type == f"not-{kind}"


async def test_values_are_rendered_with_case_vars(run_one, make_ctx):
    ctx = make_ctx(city="北京", items=["x"])
    assert (await run_one("今天北京晴", ctx, type="contains", value="{{ city }}")).passed
    result = await run_one("北京 and 上海", ctx, type="contains-all", value=["{{ city }}", "上海"])
    assert result.passed


async def test_reason_describes_the_check(run_one):
    result = await run_one("a bird", type="contains-any", value=["cat", "bird"])
    assert result.reason == "output contains ['bird'], not ['cat']"
    result = await run_one("a bird", type="not-contains", value="cat")
    assert (result.passed, result.reason) == (True, "output contains 'cat': no")
    result = await run_one("Paris", type="regex", value="^Par")
    assert result.reason == "output matches /^Par/: yes"


async def test_templated_regex_that_renders_invalid_is_an_error(run_one, make_ctx):
    result = await run_one("x", make_ctx(p="("), type="regex", value="{{ p }}")
    assert not result.passed
    assert "invalid regex" in result.error


async def test_render_failure_is_an_error_not_a_crash(run_one, make_ctx):
    result = await run_one("x", make_ctx(), type="contains", value="{{ missing }}")
    assert not result.passed
    assert result.error.startswith("UndefinedError")


async def test_a_catastrophic_regex_fails_its_case_instead_of_stalling(run_one, monkeypatch):
    import promptkit.scoring.reading as reading

    monkeypatch.setattr(reading, "REGEX_TIMEOUT_S", 0.05)
    # (a|aa)+$ on "aaaa...b" tries every split of the a's: Fibonacci(40) ways.
    result = await run_one("a" * 40 + "b", type="regex", value="(a|aa)+$")
    assert not result.passed and "took longer than 0.05s" in result.error
