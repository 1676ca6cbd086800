"""Reference metrics: ``rouge-n``, ``rouge-l``, ``bleu``, ``levenshtein`` and ``similar``.

Each scores the output against a reference text (``expected``, or ``value``; rendered with
the case's fields) and passes at its threshold: 0.5 for ROUGE and BLEU, 0.8 for the
Levenshtein ratio, 0.75 for the embeddings' cosine. The metrics are
:mod:`promptkit.scoring.metrics`; ``similar`` asks the embedding provider it names.
"""

from __future__ import annotations

from . import metrics
from .assertion import Assertion
from .context import Output, ScoringContext
from .registry import register_assertion
from .verdicts import EvaluationError, GradingResult, thresholded

__all__ = ["bleu", "levenshtein", "rouge_l", "rouge_n", "similar"]


def reference(a: Assertion) -> str:
    """The reference text: ``expected``, else ``value``."""
    return a.expected if a.expected is not None else a.value


@register_assertion("rouge-n", takes="reference", threshold=0.5, takes_n=True)
def rouge_n(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """ROUGE-N F-measure, n from ``n`` (default 1)."""
    n = a.n or 1
    return thresholded(f"rouge-{n}", metrics.rouge_n(output.text, reference(a), n), a.pass_mark)


@register_assertion("rouge-l", takes="reference", threshold=0.5)
def rouge_l(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """ROUGE-L F-measure."""
    return thresholded("rouge-l", metrics.rouge_l(output.text, reference(a)), a.pass_mark)


@register_assertion("bleu", takes="reference", threshold=0.5)
def bleu(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """Sentence BLEU with floor smoothing."""
    return thresholded("bleu", metrics.bleu(output.text, reference(a)), a.pass_mark)


@register_assertion("levenshtein", takes="reference", threshold=0.8)
def levenshtein(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The character edit distance ratio, surrounding whitespace ignored."""
    ratio = metrics.levenshtein_ratio(output.text.strip(), reference(a).strip())
    return thresholded("levenshtein ratio", ratio, a.pass_mark)


@register_assertion("similar", takes="reference", threshold=0.75, provider="embedding")
async def similar(a: Assertion, output: Output, ctx: ScoringContext) -> GradingResult:
    """The cosine of the output's and the reference's embeddings."""
    if ctx.embed is None or a.provider is None:
        raise EvaluationError("similar needs an embedding provider, and none is available")
    vectors = await ctx.embed(a.provider, [output.text, reference(a)])
    if len(vectors) != 2:
        raise EvaluationError(f"embedder returned {len(vectors)} vectors for 2 texts")
    # Embedding cosines are practically never negative; clamp so the score stays in [0, 1].
    similarity = max(0.0, metrics.cosine(vectors[0], vectors[1]))
    return thresholded("cosine similarity", similarity, a.pass_mark)
