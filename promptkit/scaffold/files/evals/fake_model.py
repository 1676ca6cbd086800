"""A scripted stand-in for a model, for runs without one (tests, a first CI run).

    cd evals && python -m promptkit.testing --port 8765 --responder fake_model:classify

answers every request of the classify eval by keywords, over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import re

NEGATIVE = {"cannot", "crash", "crashes", "terrible", "ads", "drains", "lost", "refund",
            "freezes", "never", "useless", "charged", "worst", "broken"}


def classify(request) -> str:
    """The label of the last review in the prompt: negative if it has a negative word."""
    review = request.prompt_text.rsplit("Review:", 1)[-1]
    words = set(re.findall(r"[a-z]+", review.lower()))
    return "negative" if words & NEGATIVE else "positive"
