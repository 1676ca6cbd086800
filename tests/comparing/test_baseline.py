"""Sides from runs and baseline files: folding repeats, the file format, its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptkit.comparing.baseline import (
    Side,
    baseline_text,
    load_baseline,
    resolve_side,
    save_baseline,
    side_from_run,
)
from promptkit.errors import ConfigError, PromptkitError
from promptkit.results import CaseResult
from promptkit.running.storage import RunStore, find_run, find_run_stores

CONFIG = {
    "prompts": [{"id": "zero", "template": "t@1", "params": {"temperature": 0}},
                {"id": "few", "template": "t@2"}],
    "providers": [{"id": "p", "model": "m-1", "api": "chat", "params": {"max_tokens": 9}}],
}


def result(prompt: str, case: str, index: int, repeat: int = 0, passed: bool = True,
           **fields) -> CaseResult:
    return CaseResult(prompt, "p", case, index, repeat, passed=passed,
                      score=fields.pop("score", float(passed)),
                      output=fields.pop("output", f"{prompt}/{case}/{repeat}"),
                      template_sha256=f"sha-{prompt}", **fields)


@pytest.fixture
def stored_run(tmp_path: Path):
    store = RunStore(tmp_path / ".promptkit" / "runs.db")
    run = store.create_run(str(tmp_path / "e.yaml"), "h", CONFIG)
    for r in [
        result("few", "a", 0, metrics={"rouge-l": 0.5}),
        result("zero", "a", 0, 0, True, metrics={"rouge-l": 0.123456}),
        result("zero", "a", 0, 1, False, metrics={"rouge-l": 0.2}),
        result("zero", "a", 0, 2, True, metrics={"rouge-l": 0.3}),
        result("zero", "b", 1, 0, True, error="timeout", output=None),
        result("zero", "b", 1, 1, False),
        result("few", "b", 1, passed=False, output="多语言 \"quoted\"\nline"),
    ]:
        store.add_result(run.run_id, r)
    store.finish_run(run.run_id, "finished")
    yield store, store.get_run(run.run_id)
    store.close()


def test_side_from_run_folds_repeats_in_spec_order(stored_run) -> None:
    store, run = stored_run
    side = side_from_run(store, run)
    assert side.label == f"run {run.run_id}" and side.store_path == store.path
    assert [row.prompt_id for row in side.rows] == ["zero", "few"]  # spec order, not a-z
    zero = side.rows[0]
    assert (zero.model, zero.template, zero.template_sha256) == ("m-1", "t@1", ["sha-zero"])
    assert zero.params == {"api": "chat", "max_tokens": 9, "temperature": 0}
    a = zero.cases["a"]
    assert a.passes == [True, False, True] and a.samples == 3  # every repeat is kept
    assert a.pass_rate == pytest.approx(2 / 3) and a.flaky and not a.passed
    assert a.metrics == {"rouge-l": round((0.123456 + 0.2 + 0.3) / 3, 4)}
    b = zero.cases["b"]  # an error is a failure, even when its record says passed
    assert (b.passes, b.pass_rate, b.error) == ([False, False], 0.0, "timeout")
    assert b.is_answered  # its error has no kind: the prompt's problem, not an outage
    assert side.rows[1].params == {"api": "chat", "max_tokens": 9}


def test_baseline_round_trip_and_one_line_per_case(stored_run, tmp_path: Path) -> None:
    store, run = stored_run
    side = side_from_run(store, run)
    path = tmp_path / "base.json"
    save_baseline(side, path, "evals/e.yaml")
    text = path.read_text()
    assert text.count('{"id": ') == 4
    assert all(line.startswith('        {"id": ')
               for line in text.splitlines() if '"id": ' in line)
    loaded = load_baseline(path)
    assert loaded.run_id == run.run_id and loaded.eval_path == "evals/e.yaml"
    assert loaded.label == str(path) and loaded.store_path is None
    for old, new in zip(side.rows, loaded.rows, strict=True):
        assert (old.prompt_id, old.model, old.template_sha256, old.params) == (
            new.prompt_id, new.model, new.template_sha256, new.params)
        assert old.cases == new.cases
    data = json.loads(text)
    assert data["promptkit_baseline"] == 2
    assert '"passes": [true, false, true]' in text  # per-repeat outcomes
    # Saving the same run again changes only the time stamp: quiet diffs.
    save_baseline(side, path, "evals/e.yaml")
    changed = [(a, b) for a, b in zip(text.splitlines(), path.read_text().splitlines(),
                                      strict=True) if a != b]
    assert all('"saved_at"' in a for a, _ in changed)


def test_a_case_lost_to_an_outage_is_not_answered(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.db") as store:
        run = store.create_run("e.yaml", "h", CONFIG)
        for kind, case in (("timeout", "t"), ("server", "s"), ("render", "r"),
                           ("bad_response", "b")):
            store.add_result(run.run_id, result("zero", case, 0, error=f"{kind}!",
                                                error_kind=kind, passed=False))
        side = side_from_run(store, run)
    answered = {cid: c.is_answered for cid, c in side.rows[0].cases.items()}
    assert answered == {"t": False, "s": False, "r": True, "b": True}  # a prompt's fault
    save_baseline(side, tmp_path / "b.json")
    assert '"passed": null' in (tmp_path / "b.json").read_text()
    loaded = load_baseline(tmp_path / "b.json").rows[0].cases
    assert {cid: c.is_answered for cid, c in loaded.items()} == answered


def test_format_1_baselines_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"promptkit_baseline": 1, "rows": [{
        "prompt": "a", "provider": "p", "cases": [
            {"id": "one", "passed": True, "score": 1},
            {"id": "rep", "passed": True, "pass_rate": 0.6667, "samples": 3, "score": 0.6},
            {"id": "out", "passed": False, "score": 0, "answered": False}]}]}))
    cases = load_baseline(path).rows[0].cases
    assert cases["one"].passes == [True]
    assert cases["rep"].passes == [True, True, False]
    assert cases["out"].passes == [None] and not cases["out"].is_answered


def test_long_outputs_are_cut(stored_run, tmp_path: Path) -> None:
    store, run = stored_run
    side = side_from_run(store, run)
    side.rows[0].cases["a"].output = "x" * 10_000
    save_baseline(side, tmp_path / "b.json")
    assert len(load_baseline(tmp_path / "b.json").rows[0].cases["a"].output) == 2000


def test_an_empty_side_is_not_saved(tmp_path: Path) -> None:
    with pytest.raises(PromptkitError, match="no results"):
        save_baseline(Side("run x", []), tmp_path / "b.json")
    assert not (tmp_path / "b.json").exists()


def test_a_failed_write_keeps_what_was_there(stored_run, tmp_path: Path) -> None:
    store, run = stored_run
    side = side_from_run(store, run)
    path = tmp_path / "b.json"
    path.mkdir()  # the rename onto it fails (root ignores read-only modes)
    (path / "keep").write_text("old")
    with pytest.raises(PromptkitError, match="cannot write"):
        save_baseline(side, path)
    assert (path / "keep").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".promptkit", "b.json"]
    assert baseline_text(side).startswith("{\n")


@pytest.mark.parametrize(("text", "message"), [
    ("{", "bad.json:1: invalid JSON: Expecting property name enclosed in double quotes"),
    ('{"rows": []}', "bad.json:1: not a baseline file (no 'promptkit_baseline' key)"),
    ('[1]', "bad.json:1: not a baseline file"),
    ('{"promptkit_baseline": 9, "rows": []}', "bad.json:1: promptkit_baseline: baseline "
                                              "format 9 is newer"),
    ('{"promptkit_baseline": 1,\n "rows": [\n {"prompt": "a", "provider": "p",\n'
     '  "cases": [{"id": "c", "passed": "maybe", "score": 1}]}]}',
     "bad.json:4: rows[0].cases[0].passed: Input should be a valid boolean"),
    ('{"promptkit_baseline": 1, "rows": [{"prompt": "a", "provider": "p", "cases": ['
     '{"id": "c", "passed": true, "score": 1}]}], "extra": 1}', "bad.json:1: extra: unknown key"),
    ('{"promptkit_baseline": 2, "rows": []}', "bad.json:1: rows: List should have at least 1"),
    ('{"promptkit_baseline": 2, "rows": [{"prompt": "a", "provider": "p", "cases": []}]}',
     "bad.json:1: rows[0].cases: List should have at least 1"),
    ('{"promptkit_baseline": 0, "rows": []}', "bad.json:1: promptkit_baseline: unknown "
                                              "baseline format 0"),
    ('{"promptkit_baseline": "2", "rows": []}', "bad.json:1: promptkit_baseline: unknown "
                                                "baseline format '2'"),
    ('{"promptkit_baseline": 2, "rows": [{"prompt": "a", "provider": "p", "cases": ['
     '{"id": "c", "passed": true, "score": NaN}]}]}', "bad.json: invalid baseline: NaN is not"),
    ('{"promptkit_baseline": 2, "rows": [{"prompt": "a", "provider": "p", "cases": ['
     '{"id": "c", "passed": true, "score": 1.5}]}]}',
     "bad.json:1: rows[0].cases[0].score: Input should be less than or equal to 1"),
    ('{"promptkit_baseline": 2, "rows": [{"prompt": "a", "provider": "p", "cases": ['
     '{"id": "c", "passed": true, "score": 1, "metrics": {"m": -2}}]}]}',
     "bad.json:1: rows[0].cases[0].metrics: metric 'm' is -2.0, not a number in [0, 1]"),
    ('{"promptkit_baseline": 1, "rows": [{"prompt": "a", "provider": "p", "cases": ['
     '{"id": "c", "passed": true, "score": 1}, {"id": "c", "passed": true, "score": 1}]}]}',
     "bad.json: duplicate case id 'c' in row a × p"),
])
def test_invalid_baseline_files_name_the_file_and_line_or_key(tmp_path: Path, text: str,
                                                              message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_baseline(path)
    assert str(info.value).removeprefix(str(tmp_path) + "/").startswith(message), info.value


def test_unreadable_baselines(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="baseline file not found"):
        load_baseline(tmp_path / "none.json")
    (tmp_path / "bin.json").write_bytes(b"{\xff\x00")
    with pytest.raises(ConfigError, match="baseline is not UTF-8 text"):
        load_baseline(tmp_path / "bin.json")


def test_resolve_side_takes_files_and_runs(stored_run, tmp_path: Path, monkeypatch) -> None:
    store, run = stored_run
    save_baseline(side_from_run(store, run), tmp_path / "b.json")
    monkeypatch.chdir(tmp_path)
    paths = find_run_stores()
    assert paths == [Path(".promptkit/runs.db")]
    assert resolve_side("b.json", paths).run_id == run.run_id
    assert resolve_side("last", paths).store_path == paths[0]
    assert resolve_side(run.run_id[:8], paths).run_id == run.run_id
    with pytest.raises(ConfigError, match=r"missing\.json: baseline file not found"):
        resolve_side("missing.json", paths)
    with pytest.raises(PromptkitError, match="no run 'nope'"):
        resolve_side("nope", paths)


def test_find_run_across_stores(tmp_path: Path) -> None:
    first = RunStore(tmp_path / ".promptkit" / "runs.db")
    second = RunStore(tmp_path / "evals" / ".promptkit" / "runs.db")
    old = first.create_run("a.yaml", "h", {})
    new = second.create_run("b.yaml", "h", {})
    first.close()
    second.close()
    paths = find_run_stores(root=tmp_path)
    assert paths == [tmp_path / ".promptkit/runs.db", tmp_path / "evals/.promptkit/runs.db"]
    assert find_run_stores("somewhere") == [Path("somewhere/runs.db")]
    store, run = find_run("last", paths)
    with store:
        assert run.run_id == new.run_id and store.path == paths[1]
    store, run = find_run(old.run_id, paths)
    with store:
        assert store.path == paths[0]
    with pytest.raises(PromptkitError, match="no run store found"):
        find_run("last", [])


def test_a_case_that_only_calls_tools_shows_its_calls_as_its_output() -> None:
    from promptkit.comparing.baseline import _fold
    from promptkit.results import CaseResult

    called = CaseResult("p", "m", "c0", 0, output="", passed=True, tool_calls=[
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "call_2", "name": "now", "arguments": None, "raw_arguments": "{x"}])
    assert _fold("c0", [called]).output == (
        '→ get_weather({"city": "Paris"}); → now(invalid JSON: {x)')
    said = CaseResult("p", "m", "c1", 1, output="Sunny.", passed=True,
                      tool_calls=[{"id": "a", "name": "get_weather", "arguments": {}}])
    assert _fold("c1", [said]).output == "Sunny."  # text, when there is some


def test_categories_are_kept_in_format_3_and_without_them_the_file_stays_format_2(
        tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.db") as store:
        run = store.create_run("e.yaml", "h", CONFIG)
        for index, (case_id, category) in enumerate([("w", "天气"), ("m", "math"),
                                                     ("n", None)]):
            store.add_result(run.run_id, result("zero", case_id, index, category=category))
        side = side_from_run(store, run)
    assert [c.category for c in side.rows[0].cases.values()] == ["天气", "math", None]
    save_baseline(side, tmp_path / "cat.json")
    text = (tmp_path / "cat.json").read_text(encoding="utf-8")
    assert json.loads(text)["promptkit_baseline"] == 3
    assert '{"id": "w", "category": "天气", "passed": true' in text  # readable, one line
    assert '{"id": "n", "passed": true' in text
    assert load_baseline(tmp_path / "cat.json").rows[0].cases == side.rows[0].cases
    for case in side.rows[0].cases.values():
        case.category = None
    save_baseline(side, tmp_path / "plain.json")
    assert json.loads((tmp_path / "plain.json").read_text())["promptkit_baseline"] == 2


def test_a_category_in_an_older_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"promptkit_baseline": 2, "rows": [{
        "prompt": "a", "provider": "p", "cases": [
            {"id": "one", "category": "天气", "passed": True, "score": 1}]}]}))
    with pytest.raises(ConfigError, match="case 'one' of row a × p has a category, which "
                                          "baseline format 2 does not keep"):
        load_baseline(path)
    newer = tmp_path / "newer.json"
    newer.write_text('{"promptkit_baseline": 4, "rows": []}')
    with pytest.raises(ConfigError, match="baseline format 4 is newer than this promptkit "
                                          r"supports \(3\)"):
        load_baseline(newer)
