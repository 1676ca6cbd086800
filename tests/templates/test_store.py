"""TemplateStore and PromptTemplate: references, labels, front matter, rendering."""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path

import pytest

from promptkit import (
    TemplateNotFoundError,
    TemplateRenderError,
    TemplateStore,
    TemplateSyntaxError,
)
from promptkit.errors import ConfigError

REPO = Path(__file__).parents[2]


def test_references_resolve_to_versions(store: TemplateStore) -> None:
    assert store.get("greet").version == 2
    assert store.get("greet@1").version == 1
    assert store.get("greet@v1").version == 1
    assert store.get("greet@latest").version == 2
    assert store.get("greet@stable").version == 1
    assert store.get("greet@production").version == 2


def test_unknown_references_name_what_exists(store: TemplateStore) -> None:
    with pytest.raises(TemplateNotFoundError, match="has no version 9 \\(versions: 1, 2\\)"):
        store.get("greet@9")
    with pytest.raises(TemplateNotFoundError, match="no label 'prod' \\(labels: production, "):
        store.get("greet@prod")
    with pytest.raises(TemplateNotFoundError, match="unknown template 'nope'"):
        store.get("nope")


def test_moving_a_label_edits_no_version_file(store_dir: Path) -> None:
    before = {p: p.read_bytes() for p in (store_dir / "greet").glob("v*.jinja")}
    (store_dir / "greet" / "labels.yaml").write_text("production: 1\n")
    assert TemplateStore(store_dir).get("greet@production").version == 1
    assert {p: p.read_bytes() for p in (store_dir / "greet").glob("v*.jinja")} == before


def test_label_pointing_nowhere_is_an_error(store_dir: Path) -> None:
    (store_dir / "greet" / "labels.yaml").write_text("stable: 1\nproduction: 7\n")
    with pytest.raises(ConfigError) as info:
        TemplateStore(store_dir).get("greet@stable")
    assert str(info.value).endswith("labels.yaml:2: production: points to version 7, "
                                    "which does not exist")


def test_template_metadata(store: TemplateStore) -> None:
    template = store.get("greet@2")
    assert template.name == "greet"
    assert template.ref == "greet@2"
    assert len(template.sha256) == 64
    assert template.params == {"temperature": 0.2}
    assert template.tags == ["demo"]
    assert set(template.inputs) == {"name", "times"}
    assert template.inputs["name"].is_required
    assert not template.inputs["times"].is_required
    assert template.variables == {"name", "times"}


def test_plain_body_renders_as_one_user_message_and_as_text(store: TemplateStore) -> None:
    template = store.get("greet@2")
    assert template.render(name="Ada", times=2) == [
        {"role": "user", "content": "Hello Ada! Hello Ada!"}
    ]
    assert template.render_text({"name": "Ada"}) == "Hello Ada! "


def test_declared_types_are_checked_and_strings_coerced(store: TemplateStore) -> None:
    template = store.get("greet@2")
    assert template.render_text(name="A", times="3").count("Hello") == 3
    with pytest.raises(TemplateRenderError, match="input 'times' must be integer, got str"):
        template.render(name="A", times="three")


def test_role_blocks_work_inside_loops(store: TemplateStore) -> None:
    history = [{"q": "2+2?", "a": "4"}, {"q": "Capital of France?", "a": "Paris"}]
    messages = store.get("chat").render(question="Colour of snow?", history=history)
    assert [m["role"] for m in messages] == [
        "system", "user", "assistant", "user", "assistant", "user"
    ]
    assert messages[0]["content"] == "You answer in one word."
    assert messages[-1] == {"role": "user", "content": "Colour of snow?"}
    assert store.get("chat").render_text(question="Q?") == "You answer in one word.\n\nQ?"


def test_missing_variable_names_it_file_and_line(store: TemplateStore) -> None:
    with pytest.raises(TemplateRenderError) as info:
        store.get("missing").render(x="1")
    assert str(info.value) == f"{store.loader.display_root}/missing/v1.jinja:6: 'y' is undefined"


def test_missing_required_input_names_it_and_its_first_line(store: TemplateStore) -> None:
    with pytest.raises(TemplateRenderError) as info:
        store.get("greet@1").render()
    assert info.value.lineno == 6
    assert "'name' is undefined" in str(info.value)
    assert str(info.value).startswith(f"{store.loader.display_root}/greet/v1.jinja:6:")


def test_syntax_error_carries_its_line(store_dir: Path) -> None:
    (store_dir / "syntax" / "v1.jinja").write_text("---\ninputs: {x: string}\n---\nok\n"
                                                   "{{ x + }}\n")
    with pytest.raises(TemplateSyntaxError) as info:
        TemplateStore(store_dir).get("syntax").render(x="1")
    assert info.value.lineno == 5
    assert info.value.filename.endswith("syntax/v1.jinja")


def test_unclosed_block_is_a_syntax_error(store: TemplateStore) -> None:
    with pytest.raises(TemplateSyntaxError, match="Unexpected end of template"):
        store.get("syntax").render(x="1")


def test_front_matter_errors_point_at_the_key(store: TemplateStore) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        store.get("unknownkey")
    assert info.value.lineno == 5
    assert "colour: unknown key" in str(info.value)
    with pytest.raises(TemplateSyntaxError, match="invalid YAML"):
        store.get("badfront")


def test_unclosed_front_matter(store_dir: Path) -> None:
    (store_dir / "greet" / "v3.jinja").write_text("---\ndescription: x\nHello\n")
    with pytest.raises(TemplateSyntaxError, match="never closed"):
        TemplateStore(store_dir).get("greet@3")


def test_text_outside_message_blocks_is_an_error(store: TemplateStore) -> None:
    with pytest.raises(TemplateRenderError, match="text outside"):
        store.get("outside_text").render()


def test_role_must_be_a_literal_and_blocks_cannot_nest(store: TemplateStore) -> None:
    with pytest.raises(TemplateSyntaxError, match="quoted string literal"):
        store.get("var_role").render(role="system")
    with pytest.raises(TemplateSyntaxError, match="cannot be nested") as info:
        store.get("nested_message").render()
    assert info.value.lineno == 2


def test_includes_resolve_inside_the_store(store: TemplateStore) -> None:
    assert store.get("include_ok").render_text(name="Ada") == "Signed: Ada"


def test_store_list(store: TemplateStore) -> None:
    infos = {info.name: info for info in store.list()}
    assert infos["greet"].versions == [1, 2]
    assert infos["greet"].labels == {"stable": 1, "production": 2}
    assert infos["greet"].latest == 2


def test_missing_store_folder(tmp_path: Path) -> None:
    with pytest.raises(TemplateNotFoundError, match="template store folder not found"):
        TemplateStore(tmp_path / "nope")


def test_a_relative_store_path_is_relative_to_the_working_directory(
        tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(store_dir.parent)
    assert TemplateStore("store").get("greet@1").version == 1
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(TemplateNotFoundError, match=r"^store: template store folder not found"
                       ) as info:
        TemplateStore("store")
    assert str(info.value).endswith(f"(looked for {tmp_path / 'elsewhere' / 'store'})")


def test_from_package_opens_a_store_inside_a_package(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "myapp"
    (package / "prompts" / "hello").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "prompts" / "hello" / "v1.jinja").write_text("Hi")
    monkeypatch.syspath_prepend(str(tmp_path))
    store = TemplateStore.from_package("myapp", "prompts")
    assert store.get("hello").render_text() == "Hi"


def test_render_string_is_sandboxed(store: TemplateStore) -> None:
    assert store.render_string("{{ summary }}!", {"summary": "{{ 7*7 }}"}) == "{{ 7*7 }}!"
    with pytest.raises(TemplateRenderError):
        store.render_string("{{ nope }}", {})


# -- files saved with a byte-order mark, or with bytes that are not UTF-8 -------------


def test_a_byte_order_mark_does_not_hide_the_front_matter(store: TemplateStore,
                                                          store_dir: Path) -> None:
    template = store.get("bom@production")  # labels.yaml starts with a mark too
    assert template.version == 1
    assert set(template.inputs) == {"name"}
    assert template.description == "Saved by an editor that writes a byte-order mark."
    assert template.render(name="Ada") == [{"role": "user", "content": "Hello Ada"}]
    raw = (store_dir / "bom" / "v1.jinja").read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    assert template.sha256 == hashlib.sha256(raw).hexdigest()  # what the lock records


def test_an_included_partial_with_a_byte_order_mark(store: TemplateStore) -> None:
    assert store.get("include_bom").render_text(name="Ada") == "Signed: Ada"


def test_a_version_that_is_not_utf8_names_file_and_line(store_dir: Path) -> None:
    (store_dir / "latin1").mkdir()
    (store_dir / "latin1" / "v1.jinja").write_bytes(b"---\ndescription: x\n---\n"
                                                    b"line four\ncaf\xe9\n")
    store = TemplateStore(store_dir)
    with pytest.raises(TemplateSyntaxError) as info:
        store.get("latin1")
    assert str(info.value) == (f"{store.loader.display_root}/latin1/v1.jinja:5: "
                               "not UTF-8 text (byte 0xe9 cannot be decoded)")


def test_an_included_partial_that_is_not_utf8(store_dir: Path) -> None:
    (store_dir / "partials" / "sign.jinja").write_bytes(b"\nSign\xffed:")
    with pytest.raises(TemplateSyntaxError, match="not UTF-8") as info:
        TemplateStore(store_dir).get("include_ok").render(name="Ada")
    assert info.value.filename.endswith("partials/sign.jinja")
    assert info.value.lineno == 2


def test_labels_that_are_not_utf8(store_dir: Path) -> None:
    (store_dir / "greet" / "labels.yaml").write_bytes(b"stable: 1\n# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        TemplateStore(store_dir).get("greet@stable")
    assert str(info.value).endswith("greet/labels.yaml:2: not UTF-8 text "
                                    "(byte 0xe9 cannot be decoded)")


# -- the project's own templates ------------------------------------------------


def test_project_templates_render() -> None:
    store = TemplateStore(REPO / "templates")
    zero = store.get("summarize@1").render(article="The dam opened on Monday.")
    assert zero[0]["role"] == "user"
    assert zero[0]["content"].endswith("Article: The dam opened on Monday.\n\nSummary:")
    few = store.get("summarize@production")
    assert few.version == 2
    text = few.render_text(article="The dam opened on Monday.")
    assert text.count("Article:") == 3 and text.endswith("Summary:")
    custom = few.render_text(article="Z", examples=[{"article": "A", "summary": "B"}])
    assert "Article: A\nSummary: B" in custom and custom.count("Article:") == 2
    zh = store.get("summarize_zh@1").render(article="北京今天下雨。")
    assert [m["role"] for m in zh] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert zh[-1]["content"] == "新闻：北京今天下雨。"
