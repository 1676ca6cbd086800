"""Fixtures of the scoring tests: a context with a real Jinja renderer, one-assertion
scoring, and eval spec files with one assertion to load."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import jinja2
import pytest

from promptkit.errors import ConfigError
from promptkit.running.spec import load_spec
from promptkit.scoring import registry
from promptkit.scoring.assertion import Assertion
from promptkit.scoring.context import Output, ScoringContext
from promptkit.scoring.engine import AssertionResult, score


def jinja_render(text, variables):
    return jinja2.Template(text, undefined=jinja2.StrictUndefined).render(**variables)


def build_ctx(judge=None, embed=None, **variables) -> ScoringContext:
    return ScoringContext(vars=variables, render=jinja_render, judge=judge, embed=embed)


async def score_one(output: str | Output, ctx: ScoringContext | None = None,
                    **fields) -> AssertionResult:
    if isinstance(output, str):
        output = Output(text=output)
    case = await score(output, [Assertion(**fields)], ctx or build_ctx())
    assert len(case.results) == 1
    return case.results[0]


@pytest.fixture
def make_ctx() -> Callable[..., ScoringContext]:
    """``make_ctx(judge=None, embed=None, **case_fields)``: a context rendering with Jinja."""
    return build_ctx


@pytest.fixture
def run_one() -> Callable[..., Awaitable[AssertionResult]]:
    """``await run_one(output, ctx=None, **assertion_fields)``: score one assertion."""
    return score_one


@pytest.fixture
def restore_registry():
    """Undo whatever a test registers, replaces or removes."""
    saved = dict(registry._types())
    yield
    registry._TYPES.clear()
    registry._TYPES.update(saved)


SPEC = """\
templates: templates
prompts: [summarize@1]
providers:
  - id: fake
    base_url: http://127.0.0.1:9/v1
    model: m
cases:
  - {{article: A storm., city: Berlin}}
assert:
  - type: contains
    value: Hello
{assertion}"""


@pytest.fixture
def spec_with(tmp_path: Path) -> Callable[[str], Path]:
    """``spec_with(yaml)``: an eval spec file whose second assertion is ``yaml`` (from line
    12, ``  - type: ...``); its cases have ``article`` and ``city``."""

    def write(assertion: str) -> Path:
        path = tmp_path / "eval.yaml"
        path.write_text(SPEC.format(assertion=assertion))
        return path

    return write


@pytest.fixture
def spec_error(spec_with) -> Callable[[str], str]:
    """``spec_error(yaml)``: the one-line error of loading :func:`spec_with`'s spec, with
    its file name left out (``:12: assert[1]: ...``)."""

    def load(assertion: str) -> str:
        path = spec_with(assertion)
        with pytest.raises(ConfigError) as info:
            load_spec(path)
        message = str(info.value)
        assert message.startswith(str(path)) and "\n" not in message, message
        return message.removeprefix(str(path))

    return load
