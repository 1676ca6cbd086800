"""Strict YAML and text reading: alias bombs, duplicate keys, encodings, line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from promptkit import config
from promptkit.config import YamlDocument, read_text
from promptkit.errors import ConfigError
from promptkit.running.spec import load_spec

HOSTILE = Path(__file__).parent / "data" / "hostile_data"


def load(name: str) -> YamlDocument:
    path = HOSTILE / name
    return YamlDocument(read_text(path, "eval spec"), str(path))


# --- aliases ----------------------------------------------------------------------------


def test_alias_bomb_is_refused_with_the_line_of_the_alias() -> None:
    with pytest.raises(ConfigError) as info:
        load("alias_bomb.yaml")
    error = info.value
    # Line 17 is `cases: *i`: the alias that repeats the most nodes.
    assert (error.filename, error.lineno) == (str(HOSTILE / "alias_bomb.yaml"), 17)
    assert "alias *i" in error.message and "100,000 allowed" in error.message
    assert "\n" not in str(error)


def test_alias_bomb_spec_fails_in_load_spec() -> None:
    with pytest.raises(ConfigError, match=r"alias_bomb\.yaml:17: YAML aliases expand"):
        load_spec(HOSTILE / "alias_bomb.yaml")


def test_alias_expansion_limit_is_counted_in_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "ALIAS_EXPANSION_LIMIT", 10)
    # `&a [1, 2]` is 3 nodes (the list and two scalars); each *a adds 3 more.
    three = YamlDocument("a: &a [1, 2]\nb: [*a, *a, *a]\n", "ok.yaml")  # adds 9
    assert three.data == {"a": [1, 2], "b": [[1, 2]] * 3}
    with pytest.raises(ConfigError, match=r"^over\.yaml:2: .* by 12 nodes, more than the 10 "):
        YamlDocument("a: &a [1, 2]\nb: [*a, *a, *a, *a]\n", "over.yaml")  # adds 12


def test_everyday_aliases_still_load() -> None:
    doc = load("merge_keys.yaml")
    first, second = doc.data["providers"]
    assert first == {"base_url": "http://127.0.0.1:9/v1", "concurrency": 4,
                     "params": {"temperature": 0}, "id": "a", "model": "m1"}
    assert (second["id"], second["concurrency"]) == ("b", 16)  # overrides the merged 4


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load("recursive_alias.yaml")
    assert info.value.lineno == 5
    assert info.value.message == "alias *case refers to a value that contains it"


# --- duplicate keys ---------------------------------------------------------------------


def test_duplicate_top_level_key_names_both_lines() -> None:
    with pytest.raises(ConfigError) as info:
        load("duplicate_key.yaml")
    assert str(info.value) == (f"{HOSTILE / 'duplicate_key.yaml'}:7: "
                               "duplicate key 'threshold' (first on line 3)")


def test_duplicate_nested_key_names_lines_and_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        load("duplicate_nested_key.yaml")
    assert str(info.value).endswith(
        "duplicate_nested_key.yaml:9: assert[1]: duplicate key 'threshold' (first on line 7)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: {x: 1, x: 2}\n", "f.yaml:2: b: duplicate key 'x' (first on line 2)"),
        # `yes` and `true` both mean True in YAML 1.1: the dict would keep one.
        ("yes: 1\ntrue: 2\n", "f.yaml:2: duplicate key 'true' (first on line 1)"),
        ("- {a: 1}\n- a: 1\n  a: 2\n", "f.yaml:3: [1]: duplicate key 'a' (first on line 2)"),
    ],
)
def test_duplicate_keys_anywhere(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        YamlDocument(text, "f.yaml")
    assert str(info.value) == message


def test_front_matter_lines_are_offset() -> None:
    with pytest.raises(ConfigError, match=r"^t\.jinja:4: duplicate key 'a' \(first on line 2\)"):
        YamlDocument("a: 1\nb: 2\na: 3\n", "t.jinja", first_line=2)


def test_distinct_keys_that_look_alike_are_not_duplicates() -> None:
    doc = YamlDocument("1: int\n'1': str\n", "f.yaml")
    assert doc.data == {1: "int", "1": "str"}


# --- the data and the lines are those of one parse ---------------------------------------


def test_data_equals_safe_load_and_line_of_still_works() -> None:
    text = (HOSTILE / "merge_keys.yaml").read_text()
    doc = YamlDocument(text, "m.yaml")
    assert doc.data == yaml.safe_load(text)
    assert doc.line_of(["providers", 1, "concurrency"]) == 13
    assert doc.line_of(["providers", 1, "model"]) == 12
    # A merged key that the mapping does not write itself: its nearest parent.
    assert doc.line_of(["providers", 0, "base_url"]) == 7
    assert doc.line_of(["defaults", "params", "temperature"]) == 5


def test_merge_does_not_rewrite_the_node_tree() -> None:
    # PyYAML's own merge handling edits the composed nodes in place; line_of reads them
    # after construction, so the override on line 4 must still be the one found.
    doc = YamlDocument("base: &b {x: 1}\nd:\n  <<: *b\n  x: 2\n", "f.yaml")
    assert doc.data["d"] == {"x": 2}
    assert doc.line_of(["d", "x"]) == 4


def test_deep_nesting_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("a: 1\nb: " + "[" * 1_000 + "\n")
    with pytest.raises(ConfigError) as info:
        YamlDocument(read_text(path), str(path))
    assert (info.value.lineno, info.value.message) == (2, "invalid YAML: nested too deeply")


def test_empty_document_has_no_data() -> None:
    doc = YamlDocument("# nothing\n", "f.yaml")
    assert (doc.data, doc.line_of(["a"])) == (None, None)


# --- read_text --------------------------------------------------------------------------


def test_read_text_strips_a_bom_and_translates_newlines(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"\xef\xbb\xbfdescription: x\r\nthreshold: 1\r")
    assert read_text(path) == "description: x\nthreshold: 1\n"
    assert YamlDocument(read_text(path), str(path)).data == {"description": "x",
                                                            "threshold": 1}


def test_read_text_names_line_and_column_of_a_non_utf8_byte(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes("description: 中文\r\nname: caf".encode() + b"\xe9\nnext: 1\n")  # Latin-1 é
    with pytest.raises(ConfigError) as info:
        read_text(path, "eval spec")
    assert str(info.value) == (f"{path}:2: eval spec is not UTF-8 text: invalid byte 0xe9 "
                               "at column 10")


def test_read_text_refuses_utf16(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("a: 1\n", encoding="utf-16")
    with pytest.raises(ConfigError, match=r"spec\.yaml:1: eval spec is UTF-16 text; save it"):
        read_text(path, "eval spec")


@pytest.mark.parametrize("make_dir", [False, True])
def test_read_text_unreadable_file(tmp_path: Path, make_dir: bool) -> None:
    path = tmp_path / "spec.yaml"
    if make_dir:
        path.mkdir()
    with pytest.raises(ConfigError) as info:
        read_text(path, "eval spec")
    reason = "Is a directory" if make_dir else "No such file or directory"
    assert str(info.value) == f"{path}: cannot read eval spec: {reason}"
