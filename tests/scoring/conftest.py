"""Fixtures of the scoring tests: a context with a real Jinja renderer, and one-assertion
scoring."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import jinja2
import pytest

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
