"""Optimizing prompts: search few-shot examples and instructions by an eval's assertions.

``promptkit optimize`` splits an eval's cases (:mod:`.splits`), checks everything before
a request (:mod:`.setup`), scores candidates through the runner (:mod:`.trials`) in a
search over examples (:mod:`.fewshot_search`) or reflective rewrites run by ``gepa``
(:mod:`.instructions`, with :mod:`.structure` keeping a rewrite's tags and roles), and
writes the winner as the template's next version (:mod:`.versions`); :mod:`.optimizer`
joins them and prints nothing.
"""

from .optimizer import OptimizeReport as OptimizeReport
from .optimizer import optimize as optimize
from .setup import OptimizeSettings as OptimizeSettings

__all__ = ["OptimizeReport", "OptimizeSettings", "optimize"]
