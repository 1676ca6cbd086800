"""Datasets: JSONL, CSV, inline; streamed; stable ids; errors with file and line."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from promptkit.datasets import content_id, count_cases, iter_cases
from promptkit.errors import ConfigError


def test_jsonl_cases_with_and_without_ids(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "x": 1}\n\n{"x": 2}\n{"x": 2}\n')
    cases = list(iter_cases(path))
    assert [c.index for c in cases] == [0, 1, 2]
    assert cases[0].id == "a" and cases[0].vars == {"id": "a", "x": 1}
    assert cases[1].id == content_id({"x": 2})
    assert cases[2].id == f"{content_id({'x': 2})}-2"  # identical rows stay distinct
    assert count_cases(path) == 3 and count_cases(path, limit=2) == 2
    assert [c.id for c in iter_cases(path, limit=1)] == ["a"]


def test_content_ids_are_stable_and_order_independent() -> None:
    assert content_id({"a": 1, "b": "中"}) == content_id({"b": "中", "a": 1})
    assert len(content_id({"a": 1})) == 12


def test_csv_cases(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('id,article\nc1,"Hello, ""world""\nline two"\nc2,新闻\n',
                    encoding="utf-8")
    cases = list(iter_cases(path))
    assert cases[0].vars["article"] == 'Hello, "world"\nline two'
    assert cases[1].vars == {"id": "c2", "article": "新闻"}
    assert count_cases(path) == 2


def test_inline_cases() -> None:
    cases = list(iter_cases(inline=[{"q": "a"}, {"q": "b"}]))
    assert [c.vars["q"] for c in cases] == ["a", "b"]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.jsonl", '{"x": 1}\n{"x": \n', "bad.jsonl:2: invalid JSON"),
        ("list.jsonl", '[1, 2]\n', "list.jsonl:1: each line must be a JSON object"),
        ("dup.jsonl", '{"id": 1}\n{"id": 1}\n', "dup.jsonl:2: duplicate case id '1'"),
        ("wide.csv", "a,b\n1,2,3\n", "wide.csv:2: more values than header columns"),
        ("data.txt", "x", "unsupported dataset format '.txt'"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, name: str, text: str,
                                     expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        list(iter_cases(path))
    assert expected in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dataset file not found"):
        list(iter_cases(tmp_path / "none.jsonl"))


def test_large_jsonl_is_streamed(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w") as handle:
        for i in range(200_000):
            handle.write(f'{{"id": "c{i}", "text": "{"x" * 40}"}}\n')
    tracemalloc.start()
    first = next(iter_cases(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert first.id == "c0"
    assert peak < 2_000_000, f"reading one case allocated {peak} bytes"
