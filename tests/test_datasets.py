"""Datasets: JSONL, CSV, inline; streamed; stable ids; errors with file and line."""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path

import pytest

from promptkit.builders.pools import load_pool
from promptkit.datasets import CSV_FIELD_SIZE_LIMIT, content_id, count_cases, iter_cases
from promptkit.errors import ConfigError

HOSTILE = Path(__file__).parent / "data" / "hostile_data"


def test_jsonl_cases_with_and_without_ids(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "x": 1}\n\n{"x": 2}\n{"x": 2}\n')
    cases = list(iter_cases(path))
    assert [c.index for c in cases] == [0, 1, 2]
    assert cases[0].id == "a" and cases[0].vars == {"x": 1}
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
    assert cases[1].vars == {"article": "新闻"}
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
        ("wide.csv", "a,b\n1,2,3\n", "wide.csv:2: row has 3 values, the header has 2 columns"),
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


# --- hostile files: every problem is a ConfigError naming the file and line -------------


def error_of(path: Path) -> ConfigError:
    """The error iter_cases raises; count_cases must raise the same one."""
    with pytest.raises(ConfigError) as from_iter:
        list(iter_cases(path))
    with pytest.raises(ConfigError) as from_count:
        count_cases(path)
    assert str(from_count.value) == str(from_iter.value)
    assert "\n" not in str(from_iter.value)
    return from_iter.value


@pytest.mark.parametrize("name", ["bom.csv", "bom.jsonl"])
def test_utf8_bom_does_not_rename_the_id_column(name: str) -> None:
    cases = list(iter_cases(HOSTILE / name))
    assert [case.id for case in cases] == ["q1", "q2"]
    assert cases[0].vars == {"question": "What is 2+2?"}
    assert count_cases(HOSTILE / name) == 2


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_non_utf8_bytes_name_the_line_while_streaming(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"latin1{suffix}"
    good = "id,text\n" if suffix == ".csv" else ""
    for i in range(1_000):
        good += f"c{i},ok\n" if suffix == ".csv" else f'{{"id": "c{i}"}}\n'
    bad = "c-bad,caf\xe9\n" if suffix == ".csv" else '{"id": "caf\xe9"}\n'
    path.write_bytes(good.encode() + bad.encode("latin-1"))
    bad_line = good.count("\n") + 1
    cases = iter_cases(path)
    assert len([next(cases) for _ in range(1_000)]) == 1_000  # streamed up to the bad line
    error = error_of(path)
    assert (error.filename, error.lineno) == (str(path), bad_line)
    column = 10 if suffix == ".csv" else 12  # the é of caf\xe9
    assert error.message == f"not UTF-8 text: invalid byte 0xe9 at column {column}"


def test_deeply_nested_json_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"id": "ok"}\n{"x": ' + "[" * 100_000 + "\n")
    error = error_of(path)
    assert (error.lineno, error.message) == (2, "invalid JSON: nested too deeply")


def test_csv_field_over_the_csv_module_default_is_read(tmp_path: Path) -> None:
    # The csv module stops at 131,072 characters per field unless told otherwise.
    article = "新闻" * 100_000  # 200,000 characters
    path = tmp_path / "long.csv"
    path.write_text(f"id,article\nc1,{article}\nc2,short\n", encoding="utf-8")
    cases = list(iter_cases(path))
    assert [len(case.vars["article"]) for case in cases] == [200_000, 5]
    assert count_cases(path) == 2
    assert csv.field_size_limit() >= CSV_FIELD_SIZE_LIMIT


def test_csv_field_over_the_cap_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write('id,article\nc1,short\nc2,"')
        handle.write("x" * (CSV_FIELD_SIZE_LIMIT + 1))
        handle.write('"\n')
    error = error_of(path)
    assert error.lineno == 3
    assert error.message.startswith("a field is longer than 16,777,216 characters")


def test_short_csv_row_is_an_error_not_none(tmp_path: Path) -> None:
    error = error_of(HOSTILE / "short_row.csv")
    assert error.lineno == 3
    assert error.message == "row has 2 values, the header has 3 columns"


def test_csv_blank_lines_are_skipped_and_counted_alike() -> None:
    path = HOSTILE / "blank_lines.csv"
    cases = list(iter_cases(path))
    assert [case.vars for case in cases] == [
        {"question": "first line\nsecond line"},
        {"question": "plain"},
    ]
    assert count_cases(path) == 2  # the blank lines were once counted as cases


def test_csv_row_line_is_where_a_multiline_row_starts(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text('id,text\nq1,"one\ntwo\nthree"\nq1,again\n')
    assert error_of(path).lineno == 5
    path.write_text('id,text,extra\nq1,"one\ntwo",x\nq2,"three\nfour"\n')
    assert error_of(path).lineno == 4


def test_duplicate_csv_column_is_an_error() -> None:
    error = error_of(HOSTILE / "duplicate_column.csv")
    assert (error.lineno, error.message) == (1, "column 'id' appears twice in the header")


@pytest.mark.parametrize(
    ("name", "line", "kind"),
    [("id_list.jsonl", 2, "list"), ("id_object.jsonl", 3, "dict"), ("id_bool.jsonl", 1, "bool")],
)
def test_jsonl_id_must_be_a_string_or_number(name: str, line: int, kind: str) -> None:
    error = error_of(HOSTILE / name)
    assert (error.lineno, error.key_path) == (line, "id")
    assert error.message == f"a case id must be a string or a number, not {kind}"


def test_inline_id_must_be_a_string_or_number() -> None:
    with pytest.raises(ConfigError) as info:
        list(iter_cases(inline=[{"id": 1}, {"id": [1, 2]}]))
    assert str(info.value) == "cases: cases[1].id: a case id must be a string or a number, not list"


def test_number_ids_still_work(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text('{"id": 7}\n{"id": 2.5}\n{"id": null, "x": 1}\n')
    assert [case.id for case in iter_cases(path)] == ["7", "2.5", content_id({"id": None, "x": 1})]


def test_fewshot_pools_get_the_same_checks() -> None:
    # load_pool reads through iter_rows: the BOM and the short row behave as for datasets.
    assert [row["id"] for row in load_pool(HOSTILE / "bom.csv")] == ["q1", "q2"]
    with pytest.raises(ConfigError, match=r"short_row\.csv:3: row has 2 values"):
        load_pool(HOSTILE / "short_row.csv")


@pytest.mark.parametrize("limit", [None, 0, 1, 5])
def test_count_agrees_with_iteration(tmp_path: Path, limit: int | None) -> None:
    jsonl = tmp_path / "spaces.jsonl"
    # A line of ideographic spaces is blank to iter_cases; a byte-level count saw a row.
    jsonl.write_text('{"a": 1}\n\u3000\u3000\n\r\n{"a": 2}\n', encoding="utf-8")
    for path in (jsonl, HOSTILE / "blank_lines.csv", HOSTILE / "bom.csv",
                 HOSTILE / "bom.jsonl"):
        assert count_cases(path, limit=limit) == len(list(iter_cases(path, limit=limit)))


def test_lone_surrogates_huge_numbers_and_duplicate_keys_are_input_errors(tmp_path) -> None:
    from promptkit.datasets import iter_cases
    from promptkit.errors import ConfigError

    for name, line, message in (
            ("surrogate", '{"id": "a", "q": "\\ud800"}', "unpaired surrogate"),
            ("digits", '{"id": "a", "q": ' + "1" * 5000 + "}", "more than 4,300 digits"),
            ("duplicate", '{"id": "a", "q": 1, "q": 2}', "duplicate key 'q'")):
        path = tmp_path / f"{name}.jsonl"
        path.write_text('{"id": "ok"}\n' + line + "\n")
        with pytest.raises(ConfigError, match=message) as info:
            list(iter_cases(path))
        assert str(info.value).startswith(f"{path}:2: ")
    with pytest.raises(ConfigError, match="unpaired surrogate"):
        list(iter_cases(inline=[{"q": "\ud800"}]))
