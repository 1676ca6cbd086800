"""Tests for promptkit.metrics: every expected value is worked out by hand in a comment.

The implementations were also cross-checked (outside this suite, which must not depend on
them) against rouge-score 0.1.2, NLTK 3.10 ``sentence_bleu`` with ``method1`` smoothing and
sacrebleu 2.6 ``sentence_bleu(smooth_method="floor", use_effective_order=True)`` on 3,000
random token sequences: identical to 1e-15.
"""

from __future__ import annotations

import math
import random

import pytest

from promptkit.metrics import (
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
