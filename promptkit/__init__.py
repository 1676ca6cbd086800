"""promptkit: versioned prompt templates and evals for any OpenAI-compatible endpoint.

The public names below are imported on first use, so ``promptkit --help`` and
``import promptkit.errors`` stay fast; type checkers see plain re-exports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConfigError as ConfigError
from .errors import PromptkitError as PromptkitError
from .errors import TemplateError as TemplateError
from .errors import TemplateNotFoundError as TemplateNotFoundError
from .errors import TemplateRenderError as TemplateRenderError
from .errors import TemplateSecurityError as TemplateSecurityError
from .errors import TemplateSyntaxError as TemplateSyntaxError

if TYPE_CHECKING:
    from .api import EvalReport as EvalReport
    from .api import evaluate as evaluate
    from .api import load_report as load_report
    from .builders.answers import majority_vote as majority_vote
    from .builders.cot import ChainOfThought as ChainOfThought
    from .builders.cot import chain_of_thought as chain_of_thought
    from .builders.fewshot import FewShot as FewShot
    from .builders.fewshot import few_shot as few_shot
    from .builders.pools import load_pool as load_pool
    from .comparing.baseline import load_baseline as load_baseline
    from .comparing.comparison import Comparison as Comparison
    from .comparing.comparison import compare as compare
    from .optimizing import OptimizeReport as OptimizeReport
    from .optimizing import OptimizeSettings as OptimizeSettings
    from .optimizing import optimize as optimize
    from .running.spec import load_spec as load_spec
    from .scoring.registry import register_assertion as register_assertion
    from .templates.store import TemplateStore as TemplateStore
    from .templates.template import PromptTemplate as PromptTemplate

__version__ = "0.1.0"

_LAZY = {
    "EvalReport": "promptkit.api",
    "evaluate": "promptkit.api",
    "load_report": "promptkit.api",
    "load_spec": "promptkit.running.spec",
    "ChainOfThought": "promptkit.builders.cot",
    "Comparison": "promptkit.comparing.comparison",
    "compare": "promptkit.comparing.comparison",
    "load_baseline": "promptkit.comparing.baseline",
    "FewShot": "promptkit.builders.fewshot",
    "PromptTemplate": "promptkit.templates.template",
    "TemplateStore": "promptkit.templates.store",
    "chain_of_thought": "promptkit.builders.cot",
    "few_shot": "promptkit.builders.fewshot",
    "load_pool": "promptkit.builders.pools",
    "register_assertion": "promptkit.scoring.registry",
    "majority_vote": "promptkit.builders.answers",
    "OptimizeReport": "promptkit.optimizing",
    "OptimizeSettings": "promptkit.optimizing",
    "optimize": "promptkit.optimizing",
}

__all__ = [
    "ChainOfThought",
    "Comparison",
    "ConfigError",
    "EvalReport",
    "FewShot",
    "OptimizeReport",
    "OptimizeSettings",
    "PromptTemplate",
    "PromptkitError",
    "TemplateError",
    "TemplateNotFoundError",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateStore",
    "TemplateSyntaxError",
    "chain_of_thought",
    "compare",
    "evaluate",
    "few_shot",
    "load_baseline",
    "load_pool",
    "load_report",
    "load_spec",
    "majority_vote",
    "optimize",
    "register_assertion",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'promptkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
