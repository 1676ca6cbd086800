"""Tests for promptkit.metrics: hand-worked values, then reference implementations as oracles.

The first sections work every expected value out by hand in a comment. The last section
("Reference implementations") runs rouge-score, sacrebleu and NLTK (test-only dependencies)
on the same inputs and pins down exactly which of their settings promptkit's ROUGE and
BLEU equal, and where they differ; the module docstring of promptkit.metrics cites it.
"""

from __future__ import annotations

import math
import random

import pytest
import sacrebleu
from nltk.translate.bleu_score import SmoothingFunction
from nltk.translate.bleu_score import sentence_bleu as nltk_sentence_bleu
from rouge_score.rouge_scorer import RougeScorer
from sacrebleu.metrics import BLEU

from promptkit.scoring.metrics import (
    bleu,
    cosine,
    levenshtein,
    levenshtein_ratio,
    rouge_l,
    rouge_n,
    tokenize,
    word_count,
)

# The Chinese example of the brief: same meaning, different order and wording.
ZH_REFERENCE = "今天北京天气晴朗"  # 今 天 北 京 天 气 晴 朗
ZH_CANDIDATE = "北京今天天气很好"  # 北 京 今 天 天 气 很 好


# --- tokenize and word_count -------------------------------------------------------------


def test_tokenize_mixed_chinese_and_latin():
    assert tokenize("GPT-4o在2024年发布") == ["gpt", "4o", "在", "2024", "年", "发", "布"]


def test_tokenize_drops_ascii_and_full_width_punctuation():
    text = "“你好，世界！”（测试）：是；否、吗？。Hello, world!"
    assert tokenize(text) == [
        *["你", "好", "世", "界", "测", "试", "是", "否", "吗"],
        *["hello", "world"],
    ]


def test_tokenize_folds_full_width_latin_and_case():
    # NFKC maps full-width ＧＰＴ－４ to GPT-4, then lowercasing.
    assert tokenize("ＧＰＴ－４ Model") == ["gpt", "4", "model"]


def test_tokenize_kana_and_hangul_per_character():
    assert tokenize("カタカナ・ひらがな") == ["カ", "タ", "カ", "ナ", "ひ", "ら", "が", "な"]
    assert tokenize("한국어 텍스트") == ["한", "국", "어", "텍", "스", "트"]
    # The prolonged sound mark is a letter; the middle dot ・ above is punctuation.
    assert tokenize("コーヒー") == ["コ", "ー", "ヒ", "ー"]


def test_tokenize_keeps_accented_words_and_splits_apostrophes():
    assert tokenize("Café don't") == ["café", "don", "t"]


@pytest.mark.parametrize("text", ["", "   ", "，。！？", "--- ... !!!"])
def test_tokenize_empty_and_punctuation_only(text):
    assert tokenize(text) == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", 0),
        ("Hello, world!", 2),
        ("don't stop — GPT-4o rocks", 4),  # the dash alone is no word
        # GPT-4o (1) + 在 + 2024 (1) + 年 + 发 + 布
        ("GPT-4o在2024年发布", 6),
        ("你好，世界！", 4),
        ("東京は晴れです", 7),
    ],
)
def test_word_count(text, words):
    assert word_count(text) == words


def test_emoji_variation_selector_does_not_change_rouge():
    # ❤️ is U+2764 (a symbol: dropped) + U+FE0F VARIATION SELECTOR-16, a combining mark
    # that used to survive as a token of its own: 6/7 precision -> F1 12/13 = 0.923.
    assert rouge_l("今天天气很好❤️", "今天天气很好") == 1.0
    assert rouge_n("Great job 👍🏽️", "great job") == 1.0


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("I ❤️ you", ["i", "you"]),  # U+FE0F
        ("I ❤︎ you", ["i", "you"]),  # U+FE0E VARIATION SELECTOR-15 (text style)
        ("1️⃣ 2⃣ #️⃣", ["1", "2"]),  # keycaps: digit, FE0F, U+20E3; '#' is punctuation
        ("👨‍👩‍👧 family", ["family"]),  # U+200D ZERO WIDTH JOINER between emoji
        ("葛\U000e0100城", ["葛", "城"]),  # an ideographic variation selector (E0100-E01EF)
        ("a\ufe00b", ["ab"]),  # ignored, not a separator
        ("क्\u200dष", ["क्ष"]),  # a joiner inside a Devanagari word does not split it
    ],
)
def test_variation_selectors_keycap_and_joiner_are_not_tokens(text, tokens):
    assert tokenize(text) == tokens


@pytest.mark.parametrize(
    ("text", "words"),
    [("I ❤️ you", 2), ("❤️", 0), ("1️⃣", 1), ("#️⃣ *️⃣", 0), ("👨‍👩‍👧", 0), ("今天很好❤️", 4)],
)
def test_word_count_ignores_variation_selectors_keycap_and_joiner(text, words):
    assert word_count(text) == words


# --- ROUGE-N ------------------------------------------------------------------------------


def test_rouge_1_english():
    # candidate: the the cat sat on mat (6), reference: the the cat is on mat (6)
    # clipped overlap: the×2 + cat + on + mat = 5 -> P = R = 5/6 -> F1 = 5/6
    assert rouge_n("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)


def test_rouge_2_english():
    # candidate bigrams: the-cat cat-sat sat-on on-the the-mat (5)
    # reference bigrams: the-cat cat-is is-on on-the the-mat (5)
    # overlap: the-cat on-the the-mat = 3 -> P = R = 3/5 -> F1 = 0.6
    assert rouge_n("the cat sat on the mat", "the cat is on the mat", n=2) == pytest.approx(0.6)


def test_rouge_1_chinese_per_character():
    # candidate counts: 北1 京1 今1 天2 气1 很1 好1 (8); reference: 今1 天2 北1 京1 气1 晴1 朗1 (8)
    # clipped overlap: 北 京 今 天×2 气 = 6 -> P = R = 6/8 -> F1 = 0.75
    # (a whitespace tokenizer sees one different "word" on each side and gives 0)
    assert rouge_n(ZH_CANDIDATE, ZH_REFERENCE) == pytest.approx(0.75)


def test_rouge_2_chinese_per_character():
    # candidate bigrams: 北京 京今 今天 天天 天气 气很 很好 (7)
    # reference bigrams: 今天 天北 北京 京天 天气 气晴 晴朗 (7)
    # overlap: 北京 今天 天气 = 3 -> P = R = 3/7 -> F1 = 3/7
    assert rouge_n(ZH_CANDIDATE, ZH_REFERENCE, n=2) == pytest.approx(3 / 7)


def test_rouge_1_japanese_unequal_lengths():
    # 東 京 は 晴 れ で す (7) vs 東 京 は 雨 で す (6): overlap 東 京 は で す = 5
    # P = 5/7, R = 5/6 -> F1 = 2PR/(P+R) = (50/42) / (65/42) = 10/13
    assert rouge_n("東京は晴れです", "東京は雨です") == pytest.approx(10 / 13)


def test_rouge_n_clips_repeated_ngrams():
    # candidate the×4, reference the cat: overlap min(4, 1) = 1
    # P = 1/4, R = 1/2 -> F1 = 2 * (1/8) / (3/4) = 1/3
    assert rouge_n("the the the the", "the cat") == pytest.approx(1 / 3)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_rouge_n_identical_and_disjoint(n):
    assert rouge_n(ZH_REFERENCE, ZH_REFERENCE, n) == 1.0
    assert rouge_n("the quick brown fox", "the quick brown fox", n) == 1.0
    assert rouge_n("甲乙丙丁", "one two three four", n) == 0.0


def test_rouge_n_empty_and_too_short_inputs():
    assert rouge_n("", "") == 1.0
    assert rouge_n("", "text") == 0.0
    assert rouge_n("text", "") == 0.0
    assert rouge_n("，。", "") == 1.0  # punctuation only: no tokens on either side
    # No bigrams on either side: equal token sequences score 1, different ones 0.
    assert rouge_n("hello", "Hello!", n=2) == 1.0
    assert rouge_n("hello", "world", n=2) == 0.0
    assert rouge_n("hello", "hello world", n=2) == 0.0


def test_rouge_n_rejects_order_below_one():
    with pytest.raises(ValueError, match="n >= 1"):
        rouge_n("a", "a", n=0)


# --- ROUGE-L ------------------------------------------------------------------------------


def test_rouge_l_english():
    # LCS of "the cat sat on the mat" / "the cat is on the mat" = the cat on the mat = 5
    # P = R = 5/6 -> F1 = 5/6
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)


def test_rouge_l_chinese_per_character():
    # LCS(北京今天天气很好, 今天北京天气晴朗) = 4 (今天天气 or 北京天气; nothing after 气
    # matches, 很好 vs 晴朗), so P = R = 4/8 -> F1 = 0.5
    assert rouge_l(ZH_CANDIDATE, ZH_REFERENCE) == pytest.approx(0.5)


def test_rouge_l_unequal_lengths():
    # LCS(a b c d e, a c e) = a c e = 3 -> P = 3/5, R = 3/3 -> F1 = 2 * 0.6 / 1.6 = 0.75
    assert rouge_l("a b c d e", "a c e") == pytest.approx(0.75)


def test_rouge_l_identical_disjoint_empty():
    assert rouge_l(ZH_CANDIDATE, ZH_CANDIDATE) == 1.0
    assert rouge_l("甲乙丙", "丁戊己") == 0.0
    assert rouge_l("", "") == 1.0
    assert rouge_l("", "text") == 0.0
    assert rouge_l("text", "") == 0.0


def _lcs_table(a: list[str], b: list[str]) -> int:
    """The textbook dynamic-programming LCS, to check the bit-parallel one against."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


def test_rouge_l_matches_dynamic_programming_lcs():
    rng = random.Random(7)
    for _ in range(300):
        a = [rng.choice("甲乙丙丁戊") for _ in range(rng.randint(1, 30))]
        b = [rng.choice("甲乙丙丁戊") for _ in range(rng.randint(1, 30))]
        lcs = _lcs_table(a, b)
        expected = 2 * lcs / (len(a) + len(b))  # F1 = 2PR/(P+R) simplifies to this
        assert rouge_l("".join(a), "".join(b)) == pytest.approx(expected)


def test_rouge_l_long_texts():
    # 3,000 characters each way (the plain table would be 6 million Python steps; the
    # bit-parallel LCS takes milliseconds). b drops every 10th character of a, so b is a
    # subsequence of a: LCS = len(b) = 2,700 -> F1 = 2 * 2700 / (3000 + 2700).
    rng = random.Random(1)
    a = "".join(rng.choice("天气今北京很好晴朗") for _ in range(3000))
    b = "".join(char for index, char in enumerate(a) if index % 10)
    assert rouge_l(a, b) == pytest.approx(2 * 2700 / 5700)


# --- BLEU ---------------------------------------------------------------------------------


def test_bleu_chinese_per_character_is_positive_and_exact():
    # p1 = 6/8 (as ROUGE-1 above), p2 = 3/7 (北京 今天 天气),
    # p3: candidate trigrams 北京今 京今天 今天天 天天气 天气很 气很好 (6), none in the
    #     reference -> smoothed 0.1/6; p4: 5 candidate 4-grams, none match -> 0.1/5.
    # Equal lengths (8, 8) -> BP = 1.
    # BLEU = (6/8 * 3/7 * 0.1/6 * 0.1/5) ** (1/4) = (0.0225/210) ** 0.25 ≈ 0.10174
    expected = (6 / 8 * 3 / 7 * 0.1 / 6 * 0.1 / 5) ** 0.25
    score = bleu(ZH_CANDIDATE, ZH_REFERENCE)
    assert score > 0
    assert score == pytest.approx(expected)
    assert score == pytest.approx(0.10174, abs=1e-5)


def test_bleu_without_smoothing_is_zero_when_an_order_has_no_match():
    # Same sentences: p3 = p4 = 0 -> the geometric mean is 0.
    assert bleu(ZH_CANDIDATE, ZH_REFERENCE, smooth=False) == 0.0


def test_bleu_brevity_penalty():
    # Every n-gram of the 6-token candidate is in the 7-token reference: p1..p4 = 1,
    # c = 6 < r = 7 -> BP = exp(1 - 7/6)
    score = bleu("the cat sat on the mat", "the cat sat on the mat today")
    assert score == pytest.approx(math.exp(1 - 7 / 6))


def test_bleu_clips_counts():
    # candidate the the the the, reference the cat: p1 = min(4, 1)/4 = 1/4;
    # bigrams the-the ×3 unmatched -> 0.1/3; trigrams ×2 -> 0.1/2; the 4-gram -> 0.1/1.
    # c = 4 > r = 2 -> BP = 1. BLEU = (1/4 * 0.1/3 * 0.1/2 * 0.1/1) ** (1/4)
    expected = (1 / 4 * 0.1 / 3 * 0.1 / 2 * 0.1 / 1) ** 0.25
    assert bleu("the the the the", "the cat") == pytest.approx(expected)


def test_bleu_multiple_references_use_closest_length_and_best_counts():
    # Against "a b c d e f" alone: all n-grams match but c = 4 < r = 6 -> BP = exp(1 - 6/4).
    assert bleu("a b c d", "a b c d e f") == pytest.approx(math.exp(-0.5))
    # Adding "a b x" (length 3, closer to 4 than 6) makes r = 3 <= c -> BP = 1; n-gram
    # counts are clipped by the best reference, so p1..p4 stay 1.
    assert bleu("a b c d", ["a b c d e f", "a b x"]) == pytest.approx(1.0)


def test_bleu_effective_order_for_short_sentences():
    # Two tokens: only unigrams and bigrams exist, so only those two orders count.
    # p1 = 1/2 (hello), p2 = 0 -> 0.1/1 smoothed; BLEU = sqrt(1/2 * 0.1) = sqrt(0.05)
    assert bleu("hello world", "hello there") == pytest.approx(math.sqrt(0.05))
    assert bleu("hello world", "hello world") == 1.0
    assert bleu("好", "好") == 1.0


def test_bleu_identical_disjoint_empty():
    assert bleu(ZH_REFERENCE, ZH_REFERENCE) == 1.0
    assert bleu("the cat sat on the mat", "The cat sat on the mat.") == 1.0
    # No shared token: 0 even with smoothing (smoothing only rescues higher orders).
    assert bleu("甲乙丙丁", "one two three four") == 0.0
    assert bleu("", "") == 1.0
    assert bleu("", "text") == 0.0
    assert bleu("text", "") == 0.0


def test_bleu_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_n"):
        bleu("a", "a", max_n=0)
    with pytest.raises(ValueError, match="reference"):
        bleu("a", [])


# --- Levenshtein --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("kitten", "sitting", 3),  # k->s, e->i, +g
        ("flaw", "lawn", 2),  # -f, +n
        ("今天天气很好", "今天天气不好", 1),  # 很 -> 不
        ("北京", "南京市", 2),  # 北 -> 南, +市
        ("", "abc", 3),
        ("abc", "", 3),
        ("", "", 0),
        ("same", "same", 0),
    ],
)
def test_levenshtein(a, b, distance):
    assert levenshtein(a, b) == distance
    assert levenshtein(b, a) == distance


def _levenshtein_table(a: str, b: str) -> int:
    """The textbook dynamic-programming edit distance, to check rapidfuzz's against."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


@pytest.mark.parametrize("alphabet", ["abcde", "今天气很好不北京", "ab今天😀\U00020000é"])
def test_levenshtein_equals_reference_dp_on_random_strings(alphabet):
    rng = random.Random(alphabet)
    for _ in range(300):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        distance = _levenshtein_table(a, b)
        assert levenshtein(a, b) == distance
        longest = max(len(a), len(b))
        assert levenshtein_ratio(a, b) == (1 - distance / longest if longest else 1.0)


def test_levenshtein_long_texts():
    # 2,000 characters each (6.4 s for the pure-Python table). b replaces every 10th
    # character of a with one a never uses, so each of those 200 needs an edit and
    # substituting them is enough: the distance is exactly 200.
    rng = random.Random(3)
    a = "".join(rng.choice("天气今北京很好晴朗") for _ in range(2000))
    b = "".join("雨" if index % 10 == 0 else char for index, char in enumerate(a))
    assert levenshtein(a, b) == 200
    assert levenshtein_ratio(a, b) == pytest.approx(0.9)


def test_levenshtein_ratio():
    assert levenshtein_ratio("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert levenshtein_ratio("今天天气很好", "今天天气不好") == pytest.approx(5 / 6)
    assert levenshtein_ratio("", "") == 1.0
    assert levenshtein_ratio("abc", "") == 0.0
    assert levenshtein_ratio("abc", "xyz") == 0.0


# --- cosine -------------------------------------------------------------------------------


def test_cosine():
    assert cosine([1, 0], [0, 1]) == 0.0
    assert cosine([1, 2, 3], [2, 4, 6]) == 1.0
    assert cosine([1, 2, 3], [-1, -2, -3]) == -1.0
    # [1, 1]·[1, 0] = 1; |[1, 1]| = sqrt 2, |[1, 0]| = 1 -> 1/sqrt 2
    assert cosine([1, 1], [1, 0]) == pytest.approx(1 / math.sqrt(2))
    # [3, 4]·[4, 3] = 24; both norms 5 -> 24/25
    assert cosine([3, 4], [4, 3]) == pytest.approx(0.96)


def test_cosine_zero_and_empty_vectors():
    assert cosine([0, 0], [1, 2]) == 0.0
    assert cosine([], []) == 0.0


def test_cosine_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="equal length"):
        cosine([1, 2], [1, 2, 3])


# --- Reference implementations as oracles -------------------------------------------------
#
# ROUGE: rouge-score's RougeScorer(..., use_stemmer=False).score(reference, candidate).
# BLEU: sacrebleu's sentence_bleu with floor smoothing 0.1 and effective order on
# promptkit's tokens joined by spaces; NLTK's method1 for candidates of 4+ tokens.

ENGLISH_PAIRS = [
    ("The cat sat on the mat.", "The cat is on the mat!"),
    ("Don't stop -- GPT-4o rocks, 2024 was big.", "GPT-4o doesn't stop: 2024 was big"),
    ("A quick brown fox jumps over the lazy dog", "the quick brown dog jumps over a lazy fox"),
    ("Revenue rose 12% in Q3; costs fell.", "In Q3 revenue rose by 12 percent and costs fell"),
]
CHINESE_PAIRS = [
    (ZH_CANDIDATE, ZH_REFERENCE),
    ("北京今天天气很好，适合出门！", "今天北京天气晴朗，适合出门。"),
    ("GPT-4o在2024年发布，速度更快。", "2024年OpenAI发布了GPT-4o模型"),
    ("東京は晴れです", "東京は雨です"),
    ("今天的会议讨论了Q3 revenue和成本", "会议讨论了第三季度的revenue与成本问题"),
]
WORDS = "the cat sat on mat dog a is was running ran don't it's GPT-4o, 2024. Hello! world?"


class PromptkitTokenizer:
    """What RougeScorer(tokenizer=...) calls: promptkit's tokenize as a method."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


def _random_pairs(vocabulary: list[str], seed: int, count: int = 300,
                  joiner: str = " ") -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [
        (joiner.join(rng.choice(vocabulary) for _ in range(rng.randint(1, 25))),
         joiner.join(rng.choice(vocabulary) for _ in range(rng.randint(1, 25))))
        for _ in range(count)
    ]


def _long_enough(candidate: str, reference: str, n: int) -> bool:
    # Where a side has fewer than n tokens the two differ by convention (tested below).
    return min(len(tokenize(candidate)), len(tokenize(reference))) >= n


def test_rouge_n_equals_rouge_score_on_english():
    scorer = RougeScorer(["rouge1", "rouge2", "rouge3"], use_stemmer=False)
    pairs = ENGLISH_PAIRS + _random_pairs(WORDS.split(), seed=11)
    for candidate, reference in pairs:
        expected = scorer.score(reference, candidate)
        for n in (1, 2, 3):
            if _long_enough(candidate, reference, n):
                assert rouge_n(candidate, reference, n) == expected[f"rouge{n}"].fmeasure


def test_rouge_l_equals_rouge_score_on_english():
    scorer = RougeScorer(["rougeL"], use_stemmer=False)
    for candidate, reference in ENGLISH_PAIRS + _random_pairs(WORDS.split(), seed=12):
        assert rouge_l(candidate, reference) == scorer.score(reference, candidate)[
            "rougeL"].fmeasure


def test_rouge_equals_rouge_score_with_promptkit_tokenizer_on_chinese_and_mixed():
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=PromptkitTokenizer())
    pairs = CHINESE_PAIRS + _random_pairs(
        [*"今天北京气很好晴朗", "GPT-4o", "在", "2024年", "，", "。", "data"], seed=13,
        joiner="")
    checked = 0
    for candidate, reference in pairs:
        if not _long_enough(candidate, reference, 2):
            continue
        expected = scorer.score(reference, candidate)
        assert rouge_n(candidate, reference, 1) == expected["rouge1"].fmeasure
        assert rouge_n(candidate, reference, 2) == expected["rouge2"].fmeasure
        assert rouge_l(candidate, reference) == expected["rougeL"].fmeasure
        checked += 1
    assert checked > 250


def test_rouge_score_default_tokenizer_gives_zero_on_chinese():
    # Its tokenizer keeps only [a-z0-9]: unspaced Chinese has no tokens at all.
    scorer = RougeScorer(["rouge1", "rougeL"], use_stemmer=False)
    scores = scorer.score(ZH_REFERENCE, ZH_CANDIDATE)
    assert (scores["rouge1"].fmeasure, scores["rougeL"].fmeasure) == (0.0, 0.0)
    assert (rouge_n(ZH_CANDIDATE, ZH_REFERENCE), rouge_l(ZH_CANDIDATE, ZH_REFERENCE)) == (
        0.75, 0.5)


def test_rouge_differs_from_rouge_score_only_on_too_short_input():
    scorer = RougeScorer(["rouge2", "rougeL"], use_stemmer=False)
    # Two empty texts, or two equal texts with no bigram: rouge-score 0, promptkit 1.
    assert scorer.score("", "")["rougeL"].fmeasure == 0.0
    assert rouge_l("", "") == 1.0
    assert scorer.score("hello", "hello")["rouge2"].fmeasure == 0.0
    assert rouge_n("hello", "hello", n=2) == 1.0


def _spaced(text: str) -> str:
    return " ".join(tokenize(text))


def _sacrebleu_floor(candidate: str, references: list[str], max_n: int = 4,
                     smooth_method: str = "floor") -> float:
    metric = BLEU(tokenize="none", smooth_method=smooth_method,
                  smooth_value=0.1 if smooth_method == "floor" else None,
                  effective_order=True, max_ngram_order=max_n)
    return metric.sentence_score(_spaced(candidate), [_spaced(r) for r in references]).score / 100


def _bleu_cases() -> list[tuple[str, list[str]]]:
    rng = random.Random(21)
    tokens = list("abcdef")
    cases = [(c, [r]) for c, r in ENGLISH_PAIRS + CHINESE_PAIRS]
    for _ in range(500):  # short and long candidates, one to three references
        candidate = " ".join(rng.choice(tokens) for _ in range(rng.randint(1, 12)))
        references = [" ".join(rng.choice(tokens) for _ in range(rng.randint(1, 12)))
                      for _ in range(rng.randint(1, 3))]
        cases.append((candidate, references))
    return cases


def test_bleu_equals_sacrebleu_floor_smoothing_with_effective_order():
    for candidate, references in _bleu_cases():
        # The exact call the docs name (sentence_bleu), then the same through BLEU().
        expected = sacrebleu.sentence_bleu(
            _spaced(candidate), [_spaced(r) for r in references], tokenize="none",
            smooth_method="floor", smooth_value=0.1, use_effective_order=True).score / 100
        assert bleu(candidate, references) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        for max_n in (1, 2, 3):
            assert bleu(candidate, references, max_n=max_n) == pytest.approx(
                _sacrebleu_floor(candidate, references, max_n), rel=1e-12, abs=1e-15)
        # smooth=False is sacrebleu's smooth_method="none".
        assert bleu(candidate, references, smooth=False) == pytest.approx(
            _sacrebleu_floor(candidate, references, smooth_method="none"), rel=1e-12,
            abs=1e-15)


def test_bleu_equals_nltk_method1_for_candidates_of_at_least_4_tokens():
    method1 = SmoothingFunction().method1
    checked = 0
    for candidate, references in _bleu_cases():
        if len(tokenize(candidate)) < 4:
            continue
        expected = nltk_sentence_bleu([tokenize(r) for r in references], tokenize(candidate),
                                      smoothing_function=method1)
        assert bleu(candidate, references) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        checked += 1
    assert checked > 300


def test_bleu_differs_from_nltk_below_4_tokens_effective_order():
    # NLTK gives the absent 3- and 4-gram orders precision 0.1 each: (1*1*0.1*0.1)**0.25.
    nltk_score = nltk_sentence_bleu([["hello", "world"]], ["hello", "world"],
                                    smoothing_function=SmoothingFunction().method1)
    assert nltk_score == pytest.approx(math.sqrt(0.1))
    assert bleu("hello world", "hello world") == 1.0
    assert _sacrebleu_floor("hello world", ["hello world"]) == pytest.approx(1.0)


def test_bleu_differs_from_sacrebleu_on_empty_texts_and_empty_references():
    assert bleu("", "") == 1.0
    assert _sacrebleu_floor("", [""]) == 0.0
    # An empty reference: ignored here (r = 4, BP = exp(1 - 4/2)); sacrebleu takes the
    # closest length, 0 on the tie with 4, so BP = 1.
    assert bleu("a b", ["a b c d", ""]) == pytest.approx(math.exp(-1))
    assert _sacrebleu_floor("a b", ["a b c d", ""]) == pytest.approx(1.0)


def test_bleu_is_not_sacrebleu_13a_or_zh_on_chinese():
    candidate, reference = "北京今天天气很好，适合出门！", "今天北京天气晴朗，适合出门。"
    ours = bleu(candidate, reference)
    # Hand check: 12 tokens each side (punctuation dropped); p1 = 10/12, p2 = 6/11
    # (北京 今天 天气 适合 合出 出门), p3 = 2/10 (适合出 合出门), p4 = 1/9 (适合出门).
    assert ours == pytest.approx((10 / 12 * 6 / 11 * 2 / 10 * 1 / 9) ** 0.25)
    # sacrebleu's defaults: 13a does not split unspaced Chinese -> one token per side.
    assert sacrebleu.sentence_bleu(candidate, [reference]).score == 0.0
    # The zh tokenizer splits characters but keeps ，！。 as tokens (14 per side), with
    # exp smoothing by default; floor smoothing changes nothing here (no order is 0).
    for smooth in ({}, {"smooth_method": "floor", "smooth_value": 0.1}):
        zh = sacrebleu.sentence_bleu(candidate, [reference], tokenize="zh", **smooth).score
        assert zh / 100 == pytest.approx(0.3724, abs=1e-4)
        assert abs(zh / 100 - ours) > 0.05
    assert ours == pytest.approx(0.3170, abs=1e-4)
