"""Reference metrics: rouge-n, rouge-l, bleu, levenshtein and similar (embeddings)."""

from __future__ import annotations

import pytest

from promptkit.scoring import metrics

ZH_REFERENCE = "今天北京天气晴朗"
ZH_OUTPUT = "北京今天天气很好"


class FakeEmbedder:
    """Embeds each text as a fixed vector looked up by text."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors
        self.calls: list[tuple[str, list[str]]] = []

    async def __call__(self, provider_id: str, texts: list[str]) -> list[list[float]]:
        self.calls.append((provider_id, texts))
        return [self.vectors[text] for text in texts]


async def test_rouge_and_bleu_score_chinese_from_case_vars(run_one, make_ctx):
    ctx = make_ctx(summary=ZH_REFERENCE)
    fields = {"expected": "{{ summary }}"}
    # Hand values from tests/scoring/test_metrics.py: ROUGE-1 0.75, ROUGE-2 3/7, ROUGE-L 0.5.
    result = await run_one(ZH_OUTPUT, ctx, type="rouge-n", **fields)
    assert (result.passed, result.score) == (True, pytest.approx(0.75))
    result = await run_one(ZH_OUTPUT, ctx, type="rouge-n", n=2, **fields)
    assert (result.passed, result.score) == (False, pytest.approx(3 / 7))
    assert result.reason == "rouge-2 0.429 < 0.5"
    result = await run_one(ZH_OUTPUT, ctx, type="rouge-l", **fields)
    assert (result.passed, result.score) == (True, pytest.approx(0.5))  # 0.5 >= 0.5
    result = await run_one(ZH_OUTPUT, ctx, type="bleu", threshold=0.1, **fields)
    assert result.score == pytest.approx(metrics.bleu(ZH_OUTPUT, ZH_REFERENCE))
    assert result.passed  # 0.1017 >= 0.1


async def test_reference_falls_back_to_value(run_one):
    result = await run_one("the cat sat", type="rouge-l", value="the cat sat")
    assert (result.passed, result.score) == (True, 1.0)


async def test_levenshtein_ratio_against_threshold(run_one):
    # distance("kitten", "sitting") = 3 -> ratio 1 - 3/7 ≈ 0.571 < default 0.8
    result = await run_one("kitten", type="levenshtein", expected="sitting")
    assert (result.passed, result.score) == (False, pytest.approx(4 / 7))
    result = await run_one("kitten", type="levenshtein", expected="sitting", threshold=0.5)
    assert result.passed
    # Chinese: 很 -> 不 is one edit of six characters -> 5/6 >= 0.8
    assert (await run_one("今天天气很好\n", type="levenshtein", expected="今天天气不好")).passed


async def test_not_on_a_scored_type_inverts_pass_and_score(run_one):
    result = await run_one(ZH_OUTPUT, type="not-rouge-n", expected=ZH_REFERENCE)
    assert (result.passed, result.score) == (False, pytest.approx(0.25))  # 1 - 0.75
    assert result.metric == "not-rouge-n"
    result = await run_one("hello", type="not-rouge-l", expected="goodbye world")
    assert (result.passed, result.score) == (True, 1.0)


async def test_similar_uses_the_named_embedder(run_one, make_ctx):
    embed = FakeEmbedder({"猫": [1.0, 0.0], "cat": [0.8, 0.6], "dog": [0.0, 1.0]})
    ctx = make_ctx(embed=embed, word="cat")
    result = await run_one("猫", ctx, type="similar", expected="{{ word }}", provider="emb")
    assert (result.passed, result.score) == (True, pytest.approx(0.8))  # 0.8 >= 0.75
    assert embed.calls == [("emb", ["猫", "cat"])]
    result = await run_one("猫", ctx, type="similar", expected="dog", provider="emb")
    assert (result.passed, result.score) == (False, 0.0)  # orthogonal
    result = await run_one("猫", ctx, type="not-similar", expected="dog", provider="emb")
    assert (result.passed, result.score) == (True, 1.0)


async def test_similar_without_embedder_or_with_bad_answer_is_an_error(run_one, make_ctx):
    result = await run_one("a", make_ctx(), type="similar", expected="b", provider="emb")
    assert "needs an embedding provider" in result.error

    async def one_vector(provider_id, texts):
        return [[1.0]]

    result = await run_one("a", make_ctx(embed=one_vector), type="similar", value="b", provider="e")
    assert result.error == "embedder returned 1 vectors for 2 texts"
