"""Import paths of releases before the rooms keep working for one release, with a warning."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

import promptkit.builders.answers
import promptkit.builders.cot
import promptkit.builders.fewshot
import promptkit.testing.fake
import promptkit.testing.payloads
import promptkit.testing.reply

# old path -> (the new path its warning names, the modules its names come from)
MOVED = {
    "promptkit.fewshot": ("promptkit.builders.fewshot", [promptkit.builders.fewshot]),
    "promptkit.cot": ("promptkit.builders.cot",
                      [promptkit.builders.cot, promptkit.builders.answers]),
}
# what the old README and examples imported from each
USED = {
    "promptkit.fewshot": ["few_shot", "load_pool"],
    "promptkit.cot": ["chain_of_thought", "majority_vote"],
}


def _fresh_import(name: str) -> tuple[object, list[warnings.WarningMessage]]:
    sys.modules.pop(name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        __import__(name)  # as an import statement does, so the warning names this file
    return sys.modules[name], [w for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("old", MOVED)
def test_an_old_path_warns_once_with_the_new_path(old: str) -> None:
    new, _ = MOVED[old]
    module, caught = _fresh_import(old)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"{old} is now {new}")
    assert "next release" in message
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        assert importlib.import_module(old) is module
    assert again == []


@pytest.mark.parametrize("old", MOVED)
def test_the_warning_points_at_the_users_import_line(old: str, tmp_path) -> None:
    """In a user's script (no import hook between it and promptkit, unlike under pytest),
    shown by Python's default filters."""
    import subprocess

    script = tmp_path / "app.py"
    script.write_text(f"print('start')\nimport {old}\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"{script}:2: PromptkitDeprecationWarning: {old} is now" in proc.stderr


@pytest.mark.parametrize("old", MOVED)
def test_an_old_path_gives_the_same_objects(old: str) -> None:
    _, sources = MOVED[old]
    module, _ = _fresh_import(old)
    assert set(USED[old]) <= set(module.__all__)
    for name in module.__all__:
        found = [source for source in sources if name in source.__all__]
        assert len(found) == 1, name
        assert getattr(module, name) is getattr(found[0], name), name


def test_the_old_examples_run_from_the_old_paths() -> None:
    with pytest.warns(DeprecationWarning, match="promptkit.builders.fewshot"):
        sys.modules.pop("promptkit.fewshot", None)
        from promptkit.fewshot import few_shot, load_pool
    with pytest.warns(DeprecationWarning, match="promptkit.builders.cot"):
        sys.modules.pop("promptkit.cot", None)
        from promptkit.cot import chain_of_thought, majority_vote
    pool = load_pool([{"input": "2+2", "output": "4"}, {"input": "3+3", "output": "6"}])
    assert few_shot(pool, k=1, select="first")({"input": "1+1"}) == [pool[0]]
    cot = chain_of_thought("zero-shot", extract={"method": "last-number"})
    assert majority_vote([cot.extract("so 54"), cot.extract("54"), "56"]).answer == "54"


def test_testing_still_exports_its_types_and_paths() -> None:
    import promptkit.testing as testing

    assert testing.__all__ == sorted(testing.__all__)
    assert testing.Usage is promptkit.testing.reply.Usage
    assert testing.ReplyKind is promptkit.testing.reply.ReplyKind
    assert testing.Responder is promptkit.testing.fake.Responder
    assert testing.EMBEDDING_DIMENSIONS == promptkit.testing.payloads.EMBEDDING_DIMENSIONS
    assert (testing.CHAT_PATH, testing.COMPLETIONS_PATH, testing.EMBEDDINGS_PATH) == (
        "/v1/chat/completions", "/v1/completions", "/v1/embeddings")
    for name in testing.__all__:
        assert getattr(testing, name) is not None
