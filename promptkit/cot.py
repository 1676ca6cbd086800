"""The old path of :mod:`promptkit.builders.cot` and :mod:`promptkit.builders.answers`; it
warns and goes away next release."""

import warnings

from .builders.answers import DEFAULT_MARKERS as DEFAULT_MARKERS
from .builders.answers import ExtractMethod as ExtractMethod
from .builders.answers import Vote as Vote
from .builders.answers import extract_answer as extract_answer
from .builders.answers import majority_vote as majority_vote
from .builders.answers import normalize_answer as normalize_answer
from .builders.answers import strip_reasoning as strip_reasoning
from .builders.cot import ANSWER_INSTRUCTIONS as ANSWER_INSTRUCTIONS
from .builders.cot import TRIGGERS as TRIGGERS
from .builders.cot import ChainOfThought as ChainOfThought
from .builders.cot import CotStyle as CotStyle
from .builders.cot import chain_of_thought as chain_of_thought
from .errors import PromptkitDeprecationWarning

__all__ = [
    "ANSWER_INSTRUCTIONS",
    "DEFAULT_MARKERS",
    "TRIGGERS",
    "ChainOfThought",
    "CotStyle",
    "ExtractMethod",
    "Vote",
    "chain_of_thought",
    "extract_answer",
    "majority_vote",
    "normalize_answer",
    "strip_reasoning",
]

# stacklevel 2 names the importing line (the import machinery's frames are skipped).
warnings.warn("promptkit.cot is now promptkit.builders.cot (reading and voting on answers: "
              "promptkit.builders.answers); the old path goes away in the next release",
              PromptkitDeprecationWarning, stacklevel=2)
