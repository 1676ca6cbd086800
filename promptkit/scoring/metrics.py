"""Text-similarity metrics: CJK-aware tokens, ROUGE, BLEU, Levenshtein and cosine.

Pure functions, no I/O. Every score is a float in ``[0, 1]`` (cosine: ``[-1, 1]``) and
every function is defined on empty input, so a scorer never raises ``ZeroDivisionError``.

Tokenization (:func:`tokenize`) is what makes the metrics work on Chinese, Japanese and
Korean: those scripts are scored one character per token, which is also how Chinese
ROUGE/BLEU are usually reported. Common libraries (``rouge-score``, NLTK's word tokenizer)
split on spaces or drop non-ASCII text, so an unspaced Chinese summary scores 0 with them.

How the scores relate to the reference implementations (each point is checked by a test
in ``tests/test_metrics.py`` that runs those libraries as oracles):

* :func:`rouge_n` and :func:`rouge_l` are exactly the ``fmeasure`` of ``rouge-score``'s
  ``RougeScorer(["rougeN", "rougeL"], use_stemmer=False).score(reference, candidate)``:
  on English (ASCII) text with its default tokenizer, which splits as :func:`tokenize`
  does there, and on any text when given ``tokenizer=`` an object whose ``tokenize``
  method is :func:`tokenize`. The one difference is the empty-input convention below:
  ``rouge-score`` gives 0.0 where a side has fewer tokens than the n-gram order.
* :func:`bleu` is exactly sacrebleu's ``sentence_bleu(candidate, references,
  tokenize="none", smooth_method="floor", smooth_value=0.1, use_effective_order=True)``
  divided by 100, with each text passed as its :func:`tokenize` tokens joined by spaces
  (so punctuation is dropped and case folded); other ``max_n`` match ``BLEU(...,
  max_ngram_order=max_n)``. It equals NLTK's ``sentence_bleu(references, candidate,
  smoothing_function=SmoothingFunction().method1)`` on the same tokens when the candidate
  has at least ``max_n`` tokens; for shorter candidates NLTK floors the missing orders
  at 0.1 instead of leaving them out, so ``"hello world"`` against itself is 0.316 with
  NLTK and 1.0 here and in sacrebleu. Where sacrebleu differs: two empty texts score 1.0
  here and 0.0 there, and a reference that is empty after tokenization is ignored here
  while sacrebleu counts its length of 0 for the brevity penalty.
* sacrebleu's default settings (``tokenize="13a"``, ``smooth_method="exp"``) and its
  ``"zh"`` tokenizer (which keeps Chinese punctuation as tokens) give other numbers on
  Chinese text, so promptkit's BLEU is not comparable with BLEU reported that way.

Empty-input convention, shared by :func:`rouge_n`, :func:`rouge_l` and :func:`bleu`: when a
side has nothing to count (no tokens, or fewer tokens than the n-gram order), the score is
1.0 if both token sequences are equal (two empty strings, or two identical one-word strings
under ROUGE-2) and 0.0 otherwise.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

__all__ = [
    "bleu",
    "cosine",
    "levenshtein",
    "levenshtein_ratio",
    "rouge_l",
    "rouge_n",
    "tokenize",
    "word_count",
]

# Scripts written without spaces between words, scored one character per token:
# Han ideographs, kana and hangul. Only letters and numbers inside these blocks count,
# so the katakana middle dot (・) and the sound marks (゛゜) are dropped like punctuation.
_CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3040, 0x30FF),  # Hiragana, Katakana (with ー)
    (0x3130, 0x318F),  # Hangul Compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA960, 0xA97F),  # Hangul Jamo Extended-A
    (0xAC00, 0xD7FF),  # Hangul Syllables, Hangul Jamo Extended-B
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F),  # Half-width Katakana (NFKC maps most of these to full width)
    (0x20000, 0x323AF),  # CJK Extensions B-H and Compatibility Supplement
)


# Characters that change how the previous character is drawn but are not text of their
# own: variation selectors (❤ + U+FE0F is the red-heart emoji; U+E0100... pick CJK glyph
# variants), the combining enclosing keycap (1 + U+FE0F + U+20E3 is the keycap-one emoji)
# and the zero-width joiner (👨‍👩‍👧, Indic conjuncts). They are removed before
# tokenizing, so they neither make a token nor split a word.
_IGNORED = dict.fromkeys([0x200D, 0x20E3, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)])


def _in_cjk_block(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _char_kind(char: str) -> str:
    """``"cjk"`` (a token on its own), ``"word"`` (part of a word) or ``"sep"`` (dropped)."""
    major_category = unicodedata.category(char)[0]
    if _in_cjk_block(char):
        # Marks and symbols inside CJK blocks (NFKC turns ゛ into a combining mark)
        # separate like punctuation rather than gluing onto a Latin word.
        return "cjk" if major_category in "LN" else "sep"
    return "word" if major_category in "LNM" else "sep"


def _normalize(text: str) -> str:
    # NFKC folds full-width ASCII (ＧＰＴ－４) and half-width katakana to their usual
    # forms, so text typed with a CJK input method compares equal to plain text.
    return unicodedata.normalize("NFKC", text.translate(_IGNORED)).lower()


def tokenize(text: str) -> list[str]:
    """Split text into lowercase tokens, one per CJK character.

    The rule, applied after NFKC normalization and lowercasing:

    * a Han ideograph, kana or hangul character is a token on its own;
    * a maximal run of other letters, digits and combining marks is one token;
    * everything else (spaces, ASCII and full-width punctuation such as ``，。！？、：；“”（）``,
      symbols, emoji) separates tokens and is dropped;
    * variation selectors (U+FE00-FE0F, U+E0100-E01EF), the combining enclosing keycap
      (U+20E3) and the zero-width joiner (U+200D) are ignored: they neither make a
      token nor split one, so ``"很好❤️"`` gives ``["很", "好"]`` like ``"很好"``.

    So ``"GPT-4o在2024年发布"`` gives ``["gpt", "4o", "在", "2024", "年", "发", "布"]`` and
    ``"don't"`` gives ``["don", "t"]`` (as ``rouge-score`` does). Thai, Lao and other
    unspaced scripts outside CJK are not segmented: a run of them is one token.

    Args:
        text: Any text.

    Returns:
        The tokens in order; empty for empty or punctuation-only text.
    """
    tokens: list[str] = []
    word: list[str] = []
    for char in _normalize(text):
        kind = _char_kind(char)
        if kind == "word":
            word.append(char)
            continue
        if word:
            tokens.append("".join(word))
            word = []
        if kind == "cjk":
            tokens.append(char)
    if word:
        tokens.append("".join(word))
    return tokens


def word_count(text: str) -> int:
    """Count words the way a reader would, with each CJK character counted as one word.

    Text is split on whitespace; inside each piece, every CJK character is a word, and each
    stretch of other characters that holds at least one letter or digit is one word. Unlike
    :func:`tokenize`, punctuation inside a piece does not split it, so ``"GPT-4o"`` and
    ``"don't"`` are one word each, and ``"GPT-4o在2024年发布"`` is 6 words. Emoji are not
    words, nor are the variation selectors, keycap and joiner that :func:`tokenize`
    ignores: ``"I ❤️ you"`` is 2 words.

    Args:
        text: Any text.

    Returns:
        The number of words; 0 for empty or punctuation-only text.
    """
    count = 0
    for piece in _normalize(text).split():
        in_word = False
        for char in piece:
            kind = _char_kind(char)
            if kind == "cjk":
                count += 1
                in_word = False
            elif kind == "word" and not in_word:
                count += 1
                in_word = True
    return count


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _f1(overlap: int, candidate_total: int, reference_total: int) -> float:
    if overlap == 0:
        return 0.0
    precision = overlap / candidate_total
    recall = overlap / reference_total
    return 2 * precision * recall / (precision + recall)


def rouge_n(candidate: str, reference: str, n: int = 1) -> float:
    """ROUGE-N F1: the harmonic mean of n-gram precision and recall.

    Overlap counts each n-gram at most as often as it occurs on the other side (clipped
    counts, as in ``rouge-score``).

    Args:
        candidate: The model output.
        reference: The expected text.
        n: The n-gram order, 1 or more.

    Returns:
        F1 in ``[0, 1]``.

    Raises:
        ValueError: If ``n`` is less than 1.
    """
    if n < 1:
        raise ValueError(f"rouge_n needs n >= 1, got {n}")
    candidate_tokens, reference_tokens = tokenize(candidate), tokenize(reference)
    candidate_ngrams = _ngrams(candidate_tokens, n)
    reference_ngrams = _ngrams(reference_tokens, n)
    if not candidate_ngrams or not reference_ngrams:
        return 1.0 if candidate_tokens == reference_tokens else 0.0
    overlap = sum((candidate_ngrams & reference_ngrams).values())
    return _f1(overlap, candidate_ngrams.total(), reference_ngrams.total())


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix / Hyyrö 2004).

    Equivalent to the textbook O(len(a) * len(b)) table, but each row of the table is one
    Python integer updated with a handful of big-int operations, so comparing two
    2,000-character Chinese texts takes milliseconds instead of seconds. Bit i of ``row``
    is 0 where the table's value steps up at column i; the LCS length is the count of 0s.
    """
    if not a or not b:
        return 0
    positions: dict[str, int] = {}
    for index, token in enumerate(a):
        positions[token] = positions.get(token, 0) | (1 << index)
    all_ones = (1 << len(a)) - 1
    row = all_ones
    for token in b:
        matches = row & positions.get(token, 0)
        row = ((row + matches) | (row - matches)) & all_ones
    return len(a) - row.bit_count()


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (beta = 1): precision and recall of the longest common subsequence.

    Precision is ``LCS / len(candidate tokens)``, recall ``LCS / len(reference tokens)``,
    over a single sentence (``rougeL`` in ``rouge-score``, not the summary-level
    ``rougeLsum``).

    Args:
        candidate: The model output.
        reference: The expected text.

    Returns:
        F1 in ``[0, 1]``.
    """
    candidate_tokens, reference_tokens = tokenize(candidate), tokenize(reference)
    if not candidate_tokens or not reference_tokens:
        return 1.0 if candidate_tokens == reference_tokens else 0.0
    overlap = _lcs_length(candidate_tokens, reference_tokens)
    return _f1(overlap, len(candidate_tokens), len(reference_tokens))


# Chen & Cherry (2014) smoothing method 1: an n-gram order with no match gets precision
# epsilon / total instead of 0 (NLTK's SmoothingFunction().method1, sacrebleu's "floor").
_BLEU_EPSILON = 0.1


def bleu(
    candidate: str,
    references: str | Sequence[str],
    max_n: int = 4,
    smooth: bool = True,
) -> float:
    """Sentence BLEU with uniform weights, clipped counts and the brevity penalty.

    Details, chosen so that short sentences (a Chinese sentence scored per character is
    often only 10-20 tokens) get a meaningful score:

    * Smoothing (``smooth=True``) is Chen & Cherry's method 1 with epsilon 0.1: an order
      with no matching n-gram counts as ``0.1 / total`` (NLTK ``method1``, sacrebleu
      ``floor``). Without smoothing such an order makes the score 0.
    * Effective order (as sacrebleu's ``sentence_bleu``): orders longer than the candidate
      (no candidate n-grams at all) are left out of the geometric mean instead of zeroing
      it, so an identical three-token sentence scores 1.0.
    * A candidate sharing no token with any reference scores 0.0, even when smoothed.
    * The brevity penalty uses the reference length closest to the candidate's (the
      shorter on a tie), as NLTK and sacrebleu do.

    The value equals sacrebleu's ``sentence_bleu(..., tokenize="none",
    smooth_method="floor", smooth_value=0.1, use_effective_order=True) / 100`` on
    :func:`tokenize` tokens joined by spaces (``smooth=False``: ``smooth_method="none"``),
    and, for candidates of at least ``max_n`` tokens, NLTK's ``sentence_bleu(refs, hyp,
    smoothing_function=SmoothingFunction().method1)`` on the same tokens (see the module
    docstring for where they differ).

    Args:
        candidate: The model output.
        references: One reference text or several (n-gram counts are clipped to the
            highest count in any single reference).
        max_n: The highest n-gram order.
        smooth: Apply smoothing method 1.

    Returns:
        BLEU in ``[0, 1]``.

    Raises:
        ValueError: If ``max_n`` is less than 1 or no reference is given.
    """
    if max_n < 1:
        raise ValueError(f"bleu needs max_n >= 1, got {max_n}")
    reference_texts = [references] if isinstance(references, str) else list(references)
    if not reference_texts:
        raise ValueError("bleu needs at least one reference")
    candidate_tokens = tokenize(candidate)
    all_reference_tokens = [tokenize(text) for text in reference_texts]
    if not candidate_tokens:
        return 1.0 if [] in all_reference_tokens else 0.0
    # An empty reference can match nothing and would only distort the brevity penalty.
    reference_tokens = [tokens for tokens in all_reference_tokens if tokens]
    if not reference_tokens:
        return 0.0

    log_precision_sum = 0.0
    orders = 0
    for n in range(1, max_n + 1):
        candidate_ngrams = _ngrams(candidate_tokens, n)
        total = candidate_ngrams.total()
        if total == 0:
            break  # the candidate is shorter than n: effective order stops here
        max_reference_counts: Counter[tuple[str, ...]] = Counter()
        for tokens in reference_tokens:
            max_reference_counts |= _ngrams(tokens, n)
        matches = sum((candidate_ngrams & max_reference_counts).values())
        if matches == 0:
            if n == 1 or not smooth:
                return 0.0
            log_precision_sum += math.log(_BLEU_EPSILON / total)
        else:
            log_precision_sum += math.log(matches / total)
        orders += 1

    candidate_length = len(candidate_tokens)
    closest_length = min(
        (len(tokens) for tokens in reference_tokens),
        key=lambda length: (abs(length - candidate_length), length),
    )
    if candidate_length >= closest_length:
        brevity_penalty = 1.0
    else:
        brevity_penalty = math.exp(1 - closest_length / candidate_length)
    return min(1.0, brevity_penalty * math.exp(log_precision_sum / orders))


def levenshtein(a: str, b: str) -> int:
    """Edit distance: the fewest single-character insertions, deletions and substitutions.

    Compares the strings as given, character (code point) by character, with no
    normalization, so each CJK character is one edit. Computed by ``rapidfuzz``
    (bit-parallel, milliseconds for two 2,000-character texts).

    Args:
        a: One string.
        b: The other.

    Returns:
        The distance, from 0 to ``max(len(a), len(b))``.
    """
    return Levenshtein.distance(a, b)


def levenshtein_ratio(a: str, b: str) -> float:
    """Similarity from edit distance: ``1 - levenshtein(a, b) / max(len(a), len(b))``.

    Args:
        a: One string.
        b: The other.

    Returns:
        A ratio in ``[0, 1]``; 1.0 for two empty strings.
    """
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1 - levenshtein(a, b) / longest


def cosine(u: Sequence[float], v: Sequence[float]) -> float:
    """Cosine similarity of two vectors.

    Args:
        u: One vector.
        v: Another of the same length.

    Returns:
        The cosine in ``[-1, 1]``; 0.0 when either vector is all zeros or empty.

    Raises:
        ValueError: If the vectors differ in length.
    """
    if len(u) != len(v):
        raise ValueError(f"cosine needs vectors of equal length, got {len(u)} and {len(v)}")
    norm_u, norm_v = math.hypot(*u), math.hypot(*v)
    if norm_u == 0 or norm_v == 0:
        return 0.0
    dot = math.fsum(x * y for x, y in zip(u, v, strict=True))
    # Rounding can push the cosine of parallel vectors just past 1.
    return max(-1.0, min(1.0, dot / (norm_u * norm_v)))
