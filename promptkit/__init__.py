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
    from .baseline import load_baseline as load_baseline
    from .comparison import Comparison as Comparison
    from .comparison import compare as compare
    from .cot import ChainOfThought as ChainOfThought
    from .cot import chain_of_thought as chain_of_thought
    from .cot import majority_vote as majority_vote
    from .fewshot import FewShot as FewShot
    from .fewshot import few_shot as few_shot
    from .templates import PromptTemplate as PromptTemplate
    from .templates import TemplateStore as TemplateStore

__version__ = "0.1.0"

_LAZY = {
    "ChainOfThought": "promptkit.cot",
    "Comparison": "promptkit.comparison",
    "compare": "promptkit.comparison",
    "load_baseline": "promptkit.baseline",
    "FewShot": "promptkit.fewshot",
    "PromptTemplate": "promptkit.templates",
    "TemplateStore": "promptkit.templates",
    "chain_of_thought": "promptkit.cot",
    "few_shot": "promptkit.fewshot",
    "majority_vote": "promptkit.cot",
}

__all__ = [
    "ChainOfThought",
    "Comparison",
    "ConfigError",
    "FewShot",
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
    "few_shot",
    "load_baseline",
    "majority_vote",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'promptkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
