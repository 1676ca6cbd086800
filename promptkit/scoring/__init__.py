"""Scoring: assertions on a model's output, as a registry of handlers by type.

Modules, lowest first::

    metrics      text metrics: CJK-aware tokens, ROUGE, BLEU, Levenshtein, cosine
    verdicts     GradingResult (what a handler returns), EvaluationError, reason helpers
    context      Output and ScoringContext (what a handler is given), Judge, Embedder
    reading      model text read safely: <think> stripped, regex timeout, JSON caps (no NaN),
                 JSON schemas validated with bounded patterns
    registry     register_assertion, AssertionType, ASSERTION_TYPES, DEFAULT_THRESHOLDS
    assertion    Assertion (an ``assert:`` entry, validated by its type), check_assertions
    text_checks  equals, contains, icontains, starts-with, regex, contains-any/-all
    json_checks  is-json, json-schema, json-path; JSON values compared, paths looked up
    tool_checks  tool-call, tool-call-f1 (the answer's function calls)
    functions    python (module:function)
    reference    rouge-n, rouge-l, bleu, levenshtein, similar
    judge        llm-judge: system prompt, verdict schema and parsing
    limits       latency, cost, max-tokens, max-words
    engine       score(): handlers run concurrently, not-, weights, metrics

Built-in types (``value`` is the main parameter; ``expected`` falls back to ``value``)::

    equals, contains, icontains,   value: text              binary
    starts-with, regex
    contains-any, contains-all     value: list of texts     binary
    is-json                        value: JSON schema|None  binary
    json-schema                    value: JSON schema|None  binary (None: the template's output)
    json-path                      path; value, contains,   binary
                                   regex, json_type
    tool-call                      name; arguments, match,  binary
                                   schema, count, order
    tool-call-f1                   value: expected calls    F1 vs threshold 1.0
    python                         value: "module:func"     bool, or score vs threshold 0.5
    rouge-n, rouge-l, bleu         expected: text           score vs threshold 0.5
    levenshtein                    expected: text           levenshtein_ratio vs 0.8
    similar                        expected: text           cosine vs 0.75 (needs provider)
    llm-judge                      value: rubric            judge's verdict (needs provider)
    latency, cost                  value: max ms, max USD   binary
    max-tokens, max-words          value: max count         binary

Strings in ``value`` and ``expected`` (not ``python``'s, nor a schema's) are rendered with
the case's variables first, so ``expected: "{{ summary }}"`` compares with that case's field;
so are the names and arguments of the tool-call types and json-path's ``contains`` and
``regex``. Each type may be written ``not-<type>``. More types: :func:`register_assertion`.

The names below are imported on first use, so importing :mod:`.metrics` alone stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assertion import Assertion as Assertion
    from .assertion import check_assertions as check_assertions
    from .context import Embedder as Embedder
    from .context import Judge as Judge
    from .context import Output as Output
    from .context import ScoringContext as ScoringContext
    from .engine import AssertionResult as AssertionResult
    from .engine import CaseScore as CaseScore
    from .engine import score as score
    from .reading import strip_reasoning as strip_reasoning
    from .registry import ASSERTION_TYPES as ASSERTION_TYPES
    from .registry import DEFAULT_THRESHOLDS as DEFAULT_THRESHOLDS
    from .registry import AssertionHandler as AssertionHandler
    from .registry import register_assertion as register_assertion
    from .registry import unregister_assertion as unregister_assertion
    from .verdicts import EvaluationError as EvaluationError
    from .verdicts import GradingResult as GradingResult

_LAZY = {
    "ASSERTION_TYPES": "registry",
    "Assertion": "assertion",
    "AssertionHandler": "registry",
    "AssertionResult": "engine",
    "CaseScore": "engine",
    "DEFAULT_THRESHOLDS": "registry",
    "Embedder": "context",
    "EvaluationError": "verdicts",
    "GradingResult": "verdicts",
    "Judge": "context",
    "Output": "context",
    "ScoringContext": "context",
    "check_assertions": "assertion",
    "register_assertion": "registry",
    "score": "engine",
    "strip_reasoning": "reading",
    "unregister_assertion": "registry",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
