"""promptkit.lock and the store check."""

from __future__ import annotations

import codecs
import json
import shutil
from pathlib import Path

import pytest

from promptkit import TemplateStore
from promptkit.errors import TemplateLockError
from promptkit.templates.lockfile import DATA_SUFFIXES, check, lock, read_lock


def test_lock_records_every_version_partial_and_data_file(project_templates: Path) -> None:
    (project_templates / "promptkit.lock").unlink()
    store = TemplateStore(project_templates)
    result = lock(store)
    assert "summarize/v1.jinja" in result.added
    locked = read_lock(store)
    assert set(locked) == {
        p.relative_to(project_templates).as_posix() for p in project_templates.rglob("*")
        if p.suffix == ".jinja" or (p.suffix in DATA_SUFFIXES and p.name != "labels.yaml")}
    assert lock(store).added == []


def test_shipped_lock_is_current_and_store_is_clean() -> None:
    store = TemplateStore(Path(__file__).parents[2] / "templates")
    assert [str(p) for p in check(store)] == []


def test_changed_locked_version_fails_check_and_lock(project_templates: Path) -> None:
    store = TemplateStore(project_templates)
    path = project_templates / "summarize" / "v1.jinja"
    original = path.read_bytes()
    path.write_bytes(original.replace(b"one sentence", b"two sentences"))
    problems = [str(p) for p in check(store)]
    assert any("summarize/v1.jinja: changed since it was locked" in p for p in problems)
    lock_before = (project_templates / "promptkit.lock").read_bytes()
    with pytest.raises(TemplateLockError, match=r"summarize/v1\.jinja"):
        lock(store)
    assert (project_templates / "promptkit.lock").read_bytes() == lock_before
    path.write_bytes(original)
    assert check(TemplateStore(project_templates)) == []


def test_new_version_is_reported_until_locked(project_templates: Path) -> None:
    new = project_templates / "summarize" / "v3.jinja"
    new.write_text("---\ninputs: {article: string}\n---\nTL;DR: {{ article }}\n")
    store = TemplateStore(project_templates)
    assert [p.message for p in check(store)] == [
        "not locked yet: run `promptkit templates lock`"
    ]
    assert lock(store).added == ["summarize/v3.jinja"]
    assert check(TemplateStore(project_templates)) == []


def test_deleted_version_is_reported_then_dropped(project_templates: Path) -> None:
    shutil.rmtree(project_templates / "summarize_zh")
    store = TemplateStore(project_templates)
    assert [p.message for p in check(store)] == ["locked but missing"] * 2
    assert lock(store).removed == ["summarize_zh/v1.jinja", "summarize_zh/v2.jinja"]


def test_check_finds_undeclared_and_unused_inputs(project_templates: Path) -> None:
    folder = project_templates / "odd"
    folder.mkdir()
    (folder / "v1.jinja").write_text("---\ninputs:\n  a: string\n  b: string\n---\n"
                                     "{{ a }}\n{{ c }}\n")
    store = TemplateStore(project_templates)
    lock(store)
    problems = [str(p) for p in check(store)]
    assert problems == [
        f"{store.loader.display_root}/odd/v1.jinja:7: 'c' is used but not declared in the "
        "front matter inputs",
        f"{store.loader.display_root}/odd/v1.jinja: input 'b' is declared but never used",
    ]


def test_check_reports_syntax_errors_with_lines(project_templates: Path) -> None:
    folder = project_templates / "broken"
    folder.mkdir()
    (folder / "v1.jinja").write_text("line1\n{% for x in %}\n")
    store = TemplateStore(project_templates)
    lock(store)
    (problem,) = check(store)
    assert problem.lineno == 2 and problem.filename.endswith("broken/v1.jinja")


def test_corrupt_lock_is_reported(project_templates: Path) -> None:
    (project_templates / "promptkit.lock").write_text("{not json")
    (problem,) = check(TemplateStore(project_templates))
    assert problem.filename.endswith("promptkit.lock") and "not valid JSON" in problem.message


def test_lock_file_is_sorted_json(project_templates: Path) -> None:
    data = json.loads((project_templates / "promptkit.lock").read_text())
    assert data["format"] == 1
    assert list(data["files"]) == sorted(data["files"])


def test_a_lock_with_a_byte_order_mark_is_read(project_templates: Path) -> None:
    path = project_templates / "promptkit.lock"
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    store = TemplateStore(project_templates)
    assert check(store) == []
    assert lock(store).added == []


def test_a_lock_that_is_not_utf8_is_one_problem(project_templates: Path) -> None:
    path = project_templates / "promptkit.lock"
    path.write_bytes(path.read_bytes().replace(b'"format"', b'"f\xf6rmat"'))
    store = TemplateStore(project_templates)
    assert [str(p) for p in check(store)] == [
        f"{store.loader.display_root}/promptkit.lock:2: not UTF-8 text "
        "(byte 0xf6 cannot be decoded)"
    ]
    with pytest.raises(TemplateLockError, match=r"promptkit\.lock:2: not UTF-8"):
        lock(store)


def test_check_reports_files_that_are_not_utf8_and_broken_partials(
        project_templates: Path) -> None:
    (project_templates / "broken").mkdir()
    (project_templates / "broken" / "v1.jinja").write_bytes(b"caf\xe9 {{ x }}\n")
    (project_templates / "shared").mkdir()
    (project_templates / "shared" / "footer.jinja").write_bytes(b"ok\n\xff\n")
    (project_templates / "shared" / "header.jinja").write_text("line1\n{% if %}\n")
    labels = project_templates / "summarize" / "labels.yaml"
    labels.write_bytes(labels.read_bytes() + b"# caf\xe9\n")
    store = TemplateStore(project_templates)
    assert lock(store).added == ["broken/v1.jinja", "shared/footer.jinja",
                                 "shared/header.jinja"]
    root = store.loader.display_root
    problems = [str(p) for p in check(store)]
    assert problems[:2] == [
        f"{root}/broken/v1.jinja:1: not UTF-8 text (byte 0xe9 cannot be decoded)",
        f"{root}/summarize/labels.yaml:3: not UTF-8 text (byte 0xe9 cannot be decoded)",
    ]
    assert problems[2].startswith(f"{root}/shared/footer.jinja:2: not UTF-8 text")
    assert problems[3].startswith(f"{root}/shared/header.jinja:2: ")
    assert len(problems) == 4
