"""Tests for promptkit.builders.fewshot: pools, selectors, leakage, token budgets, rendering."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest

from promptkit.builders.fewshot import (
    DEFAULT_EXAMPLE_FORMAT,
    ExampleFormat,
    FewShot,
    FewShotSettings,
    few_shot,
)
from promptkit.errors import ConfigError, PromptkitWarning
from promptkit.tokens import count_tokens

POOL = [
    {"id": "f1", "input": "Is an apple a fruit?", "output": "Yes, an apple is a fruit.",
     "topic": "fruit"},
    {"id": "f2", "input": "What colour is a ripe banana?", "output": "Yellow.",
     "topic": "fruit"},
    {"id": "c1", "input": "How many wheels does a car have?", "output": "Four.",
     "topic": "cars"},
    {"id": "c2", "input": "What fuel does a diesel car use?", "output": "Diesel.",
     "topic": "cars"},
    {"id": "w1", "input": "Will it rain in London tomorrow?", "output": "Probably.",
     "topic": "weather"},
    {"id": "w2", "input": "Is the weather sunny in Madrid?", "output": "Usually.",
     "topic": "weather"},
]

CHINESE_POOL = [
    {"id": "z1", "input": "苹果是水果吗？", "output": "是的。"},
    {"id": "z2", "input": "香蕉是什么颜色？", "output": "黄色。"},
    {"id": "z3", "input": "汽车有几个轮子？", "output": "四个。"},
    {"id": "z4", "input": "明天北京会下雨吗？", "output": "可能会。"},
]

# Just input and output (and ids): the default writes them as "Input: ...\nOutput: ...".
PLAIN_POOL = [{key: value for key, value in row.items() if key != "topic"} for row in POOL]

DIESEL = {"input": "Which car uses diesel fuel?"}


def ids(examples: list[dict]) -> list[str]:
    return [example["id"] for example in examples]


def cost(example: dict) -> int:
    """Tokens of an example of POOL written with the default format: POOL's examples have
    a topic too, so every field but id as `name: value`."""
    return count_tokens("\n".join(f"{name}: {value}" for name, value in example.items()
                                  if name != "id"))


# -- selectors ---------------------------------------------------------------------------


def test_first_takes_the_pool_head() -> None:
    assert ids(few_shot(POOL, k=2, select="first")(DIESEL)) == ["f1", "f2"]


def test_k_at_call_time_overrides_and_zero_gives_nothing() -> None:
    shots = few_shot(POOL, k=2, select="first")
    assert ids(shots(DIESEL, k=4)) == ["f1", "f2", "c1", "c2"]
    assert shots(DIESEL, k=0) == []
    assert few_shot([], k=3)(DIESEL) == []


def test_random_is_reproducible_per_seed_and_query() -> None:
    draw = few_shot(POOL, k=3, select="random", seed=1)
    assert ids(draw(DIESEL)) == ids(few_shot(POOL, k=3, select="random", seed=1)(DIESEL))
    # Another seed, or another query with the same seed, gives another draw.
    other_seed = few_shot(POOL, k=3, select="random", seed=2)(DIESEL)
    assert ids(other_seed) != ids(draw(DIESEL))
    assert ids(draw({"input": "other"})) != ids(draw(DIESEL))
    assert len(set(ids(draw(DIESEL)))) == 3


def test_similar_picks_the_rows_sharing_the_most_words() -> None:
    # c2 shares "car", "diesel" and "fuel" with the query; c1 only "car"; the others
    # share nothing, so they follow in pool order.
    assert ids(few_shot(POOL, k=2)(DIESEL)) == ["c2", "c1"]
    assert ids(few_shot(POOL, k=6)(DIESEL)) == ["c2", "c1", "f1", "f2", "w1", "w2"]


def test_similar_works_on_a_two_row_pool() -> None:
    # rank_bm25's BM25Okapi scores both rows 0 here (idf of a term in 1 of 2 rows is 0).
    pool = [{"id": "a", "input": "hello there"}, {"id": "b", "input": "windy in london"}]
    assert ids(few_shot(pool, k=1)({"input": "windy london"})) == ["b"]


def test_similar_on_chinese_compares_characters() -> None:
    # 苹, 果 and 吗 are shared with z1; z4 shares only 吗.
    assert ids(few_shot(CHINESE_POOL, k=2)({"input": "苹果好吃吗"})) == ["z1", "z4"]
    # 北京 and 下雨 are in z4 only.
    assert ids(few_shot(CHINESE_POOL, k=1)({"input": "北京下雨"})) == ["z4"]


def test_explicit_fields_choose_what_is_compared() -> None:
    # Compared on the answers, "diesel" points at c2 even though the query has no input.
    shots = few_shot(POOL, k=1, fields=["output"])
    assert ids(shots({"output": "diesel"})) == ["c2"]


def test_default_fields_are_the_query_strings_except_id_and_label() -> None:
    query = {"id": "q1", "input": "Tell me more", "topic": "weather", "year": 2024}
    # "topic" is a string field of the query, so the weather rows win on it (w2 first:
    # it says "weather" in its input too)...
    assert ids(few_shot(POOL, k=2)(query)) == ["w2", "w1"]
    # ...unless it is the label, which is never compared ("year" is not a string either),
    # leaving nothing in common: pool order.
    assert ids(few_shot(POOL, k=2, label="topic")(query)) == ["f1", "f2"]


def test_mmr_with_lambda_one_is_similar() -> None:
    for query in (DIESEL, {"input": "Is the weather rainy in London?"}, {"input": "apple"}):
        similar = few_shot(POOL, k=4, select="similar")(query)
        assert few_shot(POOL, k=4, select="mmr", mmr_lambda=1.0)(query) == similar


def test_mmr_with_low_lambda_skips_a_near_duplicate() -> None:
    pool = [
        {"id": "d1", "input": "How do I bake sourdough bread at home?"},
        {"id": "d2", "input": "How do I bake sourdough bread at home quickly?"},
        {"id": "d3", "input": "Which flour is best for bread?"},
        {"id": "x1", "input": "How fast is a cheetah?"},
    ]
    query = {"input": "bake sourdough bread"}
    # d1 and d2 both match every word, so "similar" takes both.
    assert ids(few_shot(pool, k=2)(query)) == ["d1", "d2"]
    # MMR takes d1, then prefers d3 (still about bread) to the near-copy d2.
    assert ids(few_shot(pool, k=2, select="mmr", mmr_lambda=0.3)(query)) == ["d1", "d3"]


def test_balanced_takes_labels_in_turn() -> None:
    # Labels in first-seen order (fruit, cars, weather); inside a label the most similar
    # row comes first (c2 before c1), rows that tie keep pool order (f1 before f2).
    shots = few_shot(POOL, k=6, select="balanced", label="topic")
    assert ids(shots(DIESEL)) == ["f1", "c2", "w1", "f2", "c1", "w2"]
    assert Counter(e["topic"] for e in shots(DIESEL, k=3)) == {"fruit": 1, "cars": 1,
                                                              "weather": 1}
    assert Counter(e["topic"] for e in shots(DIESEL, k=4)) == {"fruit": 2, "cars": 1,
                                                              "weather": 1}


def test_balanced_skips_rows_without_the_label_and_fills_from_others() -> None:
    pool = [*POOL[:2], {"id": "n1", "input": "no label here"}, POOL[2]]
    shots = few_shot(pool, k=4, select="balanced", label="topic")
    # cars has one row; fruit keeps taking turns after it runs out. n1 is never picked.
    assert ids(shots(DIESEL)) == ["f1", "c1", "f2"]


def test_balanced_needs_a_label() -> None:
    with pytest.raises(ConfigError, match="label"):
        few_shot(POOL, select="balanced")


def test_few_shot_returns_a_callable_selector() -> None:
    selector = few_shot(POOL, select="first")
    assert isinstance(selector, FewShot)
    assert ids(selector(DIESEL, 1)) == ["f1"]


def test_returns_copies_of_pool_rows() -> None:
    pool = [dict(row) for row in POOL]
    shots = few_shot(pool, k=1, select="first")
    shots(DIESEL)[0]["input"] = "changed"
    pool[0]["input"] = "changed too"
    assert shots(DIESEL)[0]["input"] == "Is an apple a fruit?"


# -- leakage -----------------------------------------------------------------------------


def test_query_row_is_never_selected_by_id() -> None:
    # The query is c2 under another wording: same id, so it is left out.
    query = {"id": "c2", "input": "Which car uses diesel fuel?"}
    assert "c2" not in ids(few_shot(POOL, k=6)(query))
    assert "c2" not in ids(few_shot(POOL, k=6, select="first")(query))


def test_query_row_is_never_selected_by_content() -> None:
    query = {"input": POOL[3]["input"]}  # no id: matched on the compared field
    for select in ("first", "random", "similar", "mmr"):
        assert "c2" not in ids(few_shot(POOL, k=6, select=select)(query))
    chosen = few_shot(POOL, k=6, select="balanced", label="topic")(query)
    assert "c2" not in ids(chosen)
    # Another id does not make a copy of the query safe either.
    assert "c2" not in ids(few_shot(POOL, k=6)({"id": "t9", **query}))


# -- token budget ------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:few-shot budget of 1 tokens fits no example")
def test_budget_is_never_exceeded() -> None:
    for budget in (1, 17, 20, 30, 45, 100):
        for select in ("first", "random", "similar", "mmr"):
            chosen = few_shot(POOL, k=6, select=select, budget=budget)(DIESEL)
            assert sum(cost(e) for e in chosen) <= budget


def test_budget_skips_a_long_best_example_for_the_next_that_fits() -> None:
    long_answer = "Diesel, " + "which is a heavier fuel than petrol, " * 20
    pool = [{**row, "output": long_answer} if row["id"] == "c2" else row for row in POOL]
    assert cost(pool[3]) > 100 and cost(pool[2]) + cost(pool[0]) <= 40
    chosen = few_shot(pool, k=2, budget=40)(DIESEL)
    # c2 is the best match but does not fit; c1 comes next, then f1 in pool order.
    assert ids(chosen) == ["c1", "f1"]
    assert sum(cost(e) for e in chosen) <= 40


@pytest.mark.parametrize("select", ["first", "random", "similar", "mmr", "balanced"])
def test_a_budget_no_example_fits_warns_once(select: str) -> None:
    smallest = min(cost(row) for row in POOL)
    shots = few_shot(POOL, k=2, select=select, label="topic", budget=smallest - 1)
    with pytest.warns(PromptkitWarning) as record:
        assert shots(DIESEL) == [] and shots.text(DIESEL) == ""
        assert shots.messages({"input": "Another question?"}) == []
    assert [str(w.message) for w in record] == [
        f"few-shot budget of {smallest - 1} tokens fits no example (pool of 6 examples, "
        f"k=2, select={select!r}, label='topic', budget={smallest - 1}; the smallest takes "
        f"{smallest}, written with the default format, every field as 'name: value'); "
        "prompts get no examples"]
    assert record[0].filename == __file__  # the warning points at the caller
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert few_shot(POOL, k=2, budget=smallest)(DIESEL) != []
        assert few_shot(POOL, k=0, budget=1)(DIESEL) == []  # none asked for: no warning


def test_budget_keeps_balanced_labels_in_turn() -> None:
    budget = cost(POOL[0]) + cost(POOL[3]) + cost(POOL[4])
    chosen = few_shot(POOL, k=6, select="balanced", label="topic", budget=budget)(DIESEL)
    assert ids(chosen) == ["f1", "c2", "w1"]


# -- embeddings --------------------------------------------------------------------------


class FakeEmbed:
    """Vectors counting fruit, vehicle and weather words; records each call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        groups = (("apple", "banana", "fruit"), ("car", "diesel", "wheels", "vehicle"),
                  ("rain", "sunny", "weather"))
        return [[float(sum(text.lower().count(word) for word in group)) for group in groups]
                for text in texts]


def test_embeddings_replace_bm25_and_the_pool_is_embedded_once() -> None:
    embed = FakeEmbed()
    shots = few_shot(POOL, k=2, embed=embed)
    # "vehicle" is in no row, but its vector points the same way as both car rows
    # (cosine 1, a tie kept in pool order).
    assert ids(shots({"input": "vehicle"})) == ["c1", "c2"]
    # BM25 would put f2 ("banana") first; both fruit rows have cosine 1 here.
    assert ids(few_shot(POOL, k=1)({"input": "banana"})) == ["f2"]
    assert ids(shots({"input": "banana"})) == ["f1", "f2"]
    assert embed.calls == [[row["input"] for row in POOL], ["vehicle"], ["banana"]]


def test_mmr_with_embeddings_spreads_over_topics() -> None:
    query = {"input": "diesel car"}
    assert ids(few_shot(POOL, k=2, embed=FakeEmbed())(query)) == ["c1", "c2"]
    shots = few_shot(POOL, k=2, select="mmr", mmr_lambda=0.2, embed=FakeEmbed())
    # After c1, c2 scores 0.2·1 − 0.8·1 < 0 while the orthogonal rows score 0: f1 is the
    # first of those in pool order.
    assert ids(shots(query)) == ["c1", "f1"]


# -- rendering ---------------------------------------------------------------------------


def test_text_renders_examples_best_first() -> None:
    shots = few_shot(PLAIN_POOL, k=2)
    assert shots.text(DIESEL) == (
        "Input: What fuel does a diesel car use?\nOutput: Diesel.\n\n"
        "Input: How many wheels does a car have?\nOutput: Four."
    )
    assert few_shot(POOL, k=1).text(DIESEL) == (
        "input: What fuel does a diesel car use?\noutput: Diesel.\ntopic: cars")
    assert shots.text(DIESEL, format="Q: {input} A: {output}", separator="\n", k=1) == (
        "Q: What fuel does a diesel car use? A: Diesel."
    )


def test_messages_render_chat_turns() -> None:
    shots = few_shot(POOL, k=2)
    assert shots.messages(DIESEL) == [
        {"role": "user", "content": "What fuel does a diesel car use?"},
        {"role": "assistant", "content": "Diesel."},
        {"role": "user", "content": "How many wheels does a car have?"},
        {"role": "assistant", "content": "Four."},
    ]
    assert shots.messages(DIESEL, input_field="input", output_field="topic", k=1) == [
        {"role": "user", "content": "What fuel does a diesel car use?"},
        {"role": "assistant", "content": "cars"},
    ]


def test_missing_field_errors_name_the_key() -> None:
    shots = few_shot(POOL, k=1, format="{input} -> {answer}")
    with pytest.raises(ConfigError, match="'answer'") as info:
        shots.text(DIESEL)
    assert str(info.value) == (
        "format: few-shot example 'c2' has no field 'answer' (its fields: id, input, output, "
        "topic), which the given format '{input} -> {answer}' uses")
    with pytest.raises(ConfigError, match="'label'") as info:
        few_shot(POOL, k=1).messages(DIESEL, output_field="label")
    assert str(info.value) == ("label: few-shot example 'c2' has no field 'label' (its "
                               "fields: id, input, output, topic) for the assistant turn")
    with pytest.raises(ConfigError, match="'answer'"):  # the budget renders them too
        few_shot(POOL, format="{answer}", budget=50)(DIESEL)


@pytest.mark.parametrize("pattern", ["{input.__class__}", "{input[0]}", "{}", "{input"])
def test_format_must_use_plain_field_names(pattern: str) -> None:
    with pytest.raises(ConfigError, match="format") as info:
        few_shot(POOL, format=pattern)
    assert info.value.key_path == "format"
    with pytest.raises(ConfigError, match="format"):
        few_shot(POOL).text(DIESEL, format=pattern)


@pytest.mark.parametrize(("options", "key", "message"), [
    ({"select": "nearest"}, "select", "Input should be 'first', 'random'"),
    ({"k": -1}, "k", "greater than or equal to 0"),
    ({"k": 101}, "k", "less than or equal to 100"),
    ({"mmr_lambda": 1.5}, "mmr_lambda", "less than or equal to 1"),
    ({"budget": 0}, "budget", "greater than or equal to 1"),
    ({"select": "balanced"}, "label", "the balanced selector needs a label field"),
])
def test_bad_options_are_config_errors_naming_the_key(options: dict, key: str,
                                                     message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        few_shot(POOL, **options)
    assert info.value.key_path == key


def test_a_bad_row_in_a_list_pool_is_named() -> None:
    with pytest.raises(ConfigError, match=r"pool\[1\]: each example must be a mapping"):
        few_shot([{"input": "ok"}, "not a row"])  # type: ignore[list-item]


# -- settings ----------------------------------------------------------------------------


def test_the_selector_keeps_its_validated_settings() -> None:
    shots = few_shot(POOL, k=2, select="mmr", mmr_lambda=0.3, budget=80, fields=("input",))
    assert type(shots.settings) is FewShotSettings
    assert (shots.settings.k, shots.settings.select, shots.settings.mmr_lambda,
            shots.settings.budget, shots.settings.fields) == (2, "mmr", 0.3, 80, ["input"])
    assert shots.format is None  # the pool has topics: every field as `name: value`
    assert shots.example_format == ExampleFormat(None, "default")


def test_few_shot_takes_a_whole_settings_model() -> None:
    settings = FewShotSettings(pool=POOL, k=2, select="balanced", label="topic",
                               format=DEFAULT_EXAMPLE_FORMAT)
    assert few_shot(settings)(DIESEL) == few_shot(POOL, k=2, select="balanced",
                                                  label="topic")(DIESEL)
    with pytest.raises(TypeError, match=r"no other options \(k\)"):
        few_shot(settings, k=4)


def test_settings_without_a_format_write_every_field_but_id() -> None:
    shots = few_shot(FewShotSettings(pool=POOL[:1]), budget=None)
    assert shots.format is None
    assert shots.example_format.write(POOL[0]) == (
        "input: Is an apple a fruit?\noutput: Yes, an apple is a fruit.\ntopic: fruit")


# -- the default format ------------------------------------------------------------------

QA_POOL = [
    {"question": "What is 2 + 2?", "answer": "4"},
    {"question": "What is 3 + 5?", "answer": "8"},
    {"question": "Is 7 prime?", "answer": "Yes"},
]


def test_the_default_is_input_output_only_for_examples_with_just_those_fields() -> None:
    assert few_shot(PLAIN_POOL).format == DEFAULT_EXAMPLE_FORMAT  # ids aside
    assert few_shot([{"input": "a", "output": "b"}]).format == DEFAULT_EXAMPLE_FORMAT
    assert few_shot(POOL).format is None  # a topic too
    assert few_shot(QA_POOL).format is None
    assert few_shot([*PLAIN_POOL, {"input": "no output"}]).format is None
    # The same as settings without a format (an eval spec's default).
    assert few_shot(FewShotSettings(pool=PLAIN_POOL)).format == DEFAULT_EXAMPLE_FORMAT
    assert few_shot(FewShotSettings(pool=QA_POOL)).format is None


def test_a_budget_on_a_pool_without_input_and_output_works_by_default() -> None:
    # The old default of few_shot() ("Input: {input}...") named fields these examples
    # lack, so the first call raised an error about a format nobody had given.
    written = ["question: What is 2 + 2?\nanswer: 4", "question: What is 3 + 5?\nanswer: 8"]
    budget = sum(count_tokens(text) for text in written)
    shots = few_shot(QA_POOL, k=3, select="first", budget=budget)
    assert shots({"question": "What is 2 + 3?"}) == QA_POOL[:2]
    assert shots.text({"question": "What is 2 + 3?"}) == "\n\n".join(written)


def test_the_default_writes_each_example_with_its_own_fields() -> None:
    # Field names that could not be a format's, and examples with different fields.
    pool = [{"id": "a", "first-name": "Ada", "role.title": "engineer"},
            {"id": "b", "first-name": "Linus", "note": "{not a field}"}]
    shots = few_shot(pool, k=2, select="first", budget=100)
    assert [row["id"] for row in shots({"first-name": "Grace"})] == ["a", "b"]
    assert shots.text({"first-name": "Grace"}) == (
        "first-name: Ada\nrole.title: engineer\n\nfirst-name: Linus\nnote: {not a field}")


@pytest.mark.parametrize(("build", "format_named"), [
    (lambda: few_shot(QA_POOL, k=1, format="Input: {input}").text({"question": "q"}),
     "the given format 'Input: {input}'"),
    (lambda: few_shot(QA_POOL, k=1, format="Input: {input}", budget=50)({"question": "q"}),
     "the given format 'Input: {input}'"),
    (lambda: few_shot(QA_POOL, k=1).text({"question": "q"}, format="Input: {input}"),
     "the format 'Input: {input}' given to text()"),
])
def test_a_format_error_names_the_format_in_use_and_where_it_came_from(
        build, format_named: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.key_path == "format"
    assert info.value.message == (
        "a few-shot example has no field 'input' (its fields: question, answer), which "
        f"{format_named} uses")


def test_a_bad_format_spec_names_the_example_and_the_format() -> None:
    with pytest.raises(ConfigError) as info:
        few_shot(POOL, k=1, format="{input:d}").text(DIESEL)
    assert info.value.message.startswith(
        "cannot write few-shot example 'c2' with the given format '{input:d}': ")


# -- which selector a warning is about ---------------------------------------------------


def test_the_budget_warning_names_the_selector(tmp_path) -> None:
    pool_file = tmp_path / "pool.jsonl"
    pool_file.write_text("".join(f'{{"input": "{row["input"]}", "output": "{row["output"]}"}}\n'
                                 for row in POOL), encoding="utf-8")
    with pytest.warns(PromptkitWarning) as record:
        few_shot("pool.jsonl", k=2, fields=["input"], budget=3, base_dir=tmp_path)(DIESEL)
        few_shot(POOL, k=1, select="first", budget=2, format="{input}", seed=4,
                 name="prompt 'short'")(DIESEL)
    assert [str(w.message) for w in record] == [
        "few-shot budget of 3 tokens fits no example (pool 'pool.jsonl', k=2, "
        "select='similar', fields=['input'], budget=3; the smallest takes 13, written with "
        "the default format 'Input: {input}\\nOutput: {output}'); prompts get no examples",
        "few-shot budget of 2 tokens fits no example (prompt 'short': pool of 6 examples, "
        "k=1, select='first', seed=4, budget=2, format='{input}'; the smallest takes "
        f"{min(count_tokens(row['input']) for row in POOL)}, written with the given format "
        "'{input}'); prompts get no examples",
    ]
