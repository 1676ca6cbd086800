"""Tests for promptkit.builders.pools: reading pools and checking names against them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptkit.builders.fewshot import few_shot
from promptkit.builders.pools import load_pool
from promptkit.errors import ConfigError

POOL = [
    {"id": "f1", "input": "Is an apple a fruit?", "output": "Yes.", "topic": "fruit"},
    {"id": "c1", "input": "How many wheels does a car have?", "output": "Four.",
     "topic": "cars"},
]

CHINESE_POOL = [
    {"id": "z1", "input": "苹果是水果吗？", "output": "是的。"},
    {"id": "z4", "input": "明天北京会下雨吗？", "output": "可能会。"},
]


def ids(examples: list[dict]) -> list[str]:
    return [example["id"] for example in examples]


def test_load_pool_from_a_list_copies_rows() -> None:
    rows = load_pool(POOL)
    assert rows == POOL and rows[0] is not POOL[0]
    with pytest.raises(ConfigError, match=r"pool\[1\]"):
        load_pool([{"input": "ok"}, "not a row"])  # type: ignore[list-item]


def test_load_pool_from_jsonl_and_csv(tmp_path: Path) -> None:
    (tmp_path / "pool.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in CHINESE_POOL),
        encoding="utf-8")
    assert load_pool("pool.jsonl", base_dir=tmp_path) == CHINESE_POOL
    (tmp_path / "pool.csv").write_text("id,input,output\na,Is it?,Yes\nb,\"x, y\",No\n",
                                       encoding="utf-8")
    assert load_pool(tmp_path / "pool.csv") == [
        {"id": "a", "input": "Is it?", "output": "Yes"},
        {"id": "b", "input": "x, y", "output": "No"},
    ]
    shots = few_shot(tmp_path / "pool.jsonl", k=1)
    assert ids(shots({"input": "北京下雨"})) == ["z4"]


def test_load_pool_names_file_and_line_of_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"input": "fine"}\n{"input": oops}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_pool(path)
    assert str(info.value).startswith(f"{path}:2: invalid JSON")
    with pytest.raises(ConfigError, match="not found"):
        load_pool("missing.jsonl", base_dir=tmp_path)


def test_fields_and_label_must_occur_in_the_pool_file(tmp_path: Path) -> None:
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in POOL), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        few_shot(path, fields=["input", "question"])
    assert str(info.value).startswith(f"{path}: fields: 'question' is in none of the pool's "
                                      "2 examples (their fields: id, input, output, topic)")
    with pytest.raises(ConfigError, match="label: 'lable' is in none") as info:
        few_shot("pool.jsonl", select="balanced", label="lable", base_dir=tmp_path)
    assert info.value.filename == str(path)
    with pytest.raises(ConfigError, match=r"^fields: 'question' is in none"):  # no file
        few_shot(POOL, fields=["question"])
