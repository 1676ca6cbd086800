"""Tests for promptkit.store: migrations, the response cache, the run store, kill -9 safety."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promptkit.errors import PromptkitError
from promptkit.results import RESULT_FORMAT, CaseResult
from promptkit.running.cache import ResponseCache
from promptkit.running.storage import RUN_MIGRATIONS, RunStore, default_paths

REPO = Path(__file__).parents[2]


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def full_result(**changes) -> CaseResult:
    """A result with every field set to a non-default value."""
    result = CaseResult(
        prompt_id="zero-shot", provider_id="local", case_id="c-1", case_index=7, repeat=2,
        vars={"article": "Grüße — 日本", "nested": {"n": [1, 2.5, None, True]}},
        output="An answer\nwith lines", error=None, error_kind=None, passed=True,
        score=0.8125, metrics={"accuracy": 1.0, "latency": 0.123456789},
        assertions=[{"type": "contains", "passed": True, "score": 1.0, "reason": "ok"}],
        latency_s=1.25, ttft_s=0.0625, input_tokens=123, output_tokens=45, cost=0.000123,
        cached=True, attempts=3, requests=2, template_sha256="ab" * 32)
    for name, value in changes.items():
        setattr(result, name, value)
    return result


@pytest.fixture
def runs(tmp_path: Path):
    with RunStore(tmp_path / "runs.db") as store:
        yield store


# --- migrations -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [RunStore, ResponseCache])
def test_migrations_create_schema_and_set_user_version(tmp_path: Path, cls) -> None:
    path = tmp_path / "deep" / "er" / "x.db"
    cls(path).close()
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(cls.migrations) >= 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == ({"runs", "results", "batches"} if cls is RunStore else {"responses"})


def test_reopening_does_not_rerun_migrations(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        run = store.create_run("e.yaml", "h", {})
        store.add_result(run.run_id, full_result())
    # Every migration is already applied: broken replacements are never executed.
    monkeypatch.setattr(RunStore, "migrations", [("THIS IS NOT SQL",)] * len(RUN_MIGRATIONS))
    with RunStore(path) as store:
        assert store.count_results(run.run_id) == 1


def test_a_new_migration_is_applied_once_on_top(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        run_id = store.create_run("e.yaml", "h", {}).run_id
    monkeypatch.setattr(RunStore, "migrations",
                        [*RUN_MIGRATIONS, ("CREATE TABLE notes (run_id TEXT, text TEXT)",)])
    RunStore(path).close()
    RunStore(path).close()  # would fail with "table notes already exists" if re-run
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(RUN_MIGRATIONS) + 1
        assert conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 0
    with RunStore(path) as store:
        assert store.get_run(run_id).run_id == run_id


@pytest.mark.parametrize("cls", [RunStore, ResponseCache])
def test_database_from_a_newer_promptkit_is_a_clear_error(tmp_path: Path, cls) -> None:
    path = tmp_path / "x.db"
    with raw(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(PromptkitError, match=r"schema version 99 is newer.*upgrade promptkit"):
        cls(path)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"definitely not sqlite\n" * 100)
    with pytest.raises(PromptkitError, match=r"runs\.db: cannot open the database"):
        RunStore(path)


def test_default_paths() -> None:
    assert default_paths(Path("evals/summarize.yaml")) == (
        Path("evals/.promptkit/runs.db"), Path("evals/.promptkit/cache.db"))


# --- response cache ---------------------------------------------------------------------

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def test_cache_key_is_stable_sha256_hex() -> None:
    key = ResponseCache.key("http://h/v1", "m", "chat", BODY)
    assert key == ResponseCache.key("http://h/v1", "m", "chat", dict(BODY))
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize("change", [
    {"base_url": "http://other/v1"}, {"model": "m2"}, {"api": "completions"},
    {"body": {**BODY, "temperature": 0.1}}, {"sample_index": 0}, {"sample_index": 1},
])
def test_cache_key_changes_with_every_part(change: dict) -> None:
    args = {"base_url": "http://h/v1", "model": "m", "api": "chat", "body": BODY,
            "sample_index": None}
    assert ResponseCache.key(**args) != ResponseCache.key(**{**args, **change})


def test_cache_key_ignores_dict_order_and_trailing_slash() -> None:
    reordered = {"temperature": 0, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert ResponseCache.key("http://h/v1/", "m", "chat", reordered, 3) == \
        ResponseCache.key("http://h/v1", "m", "chat", BODY, 3)
    assert ResponseCache.key("http://h/v1", "m", "chat", BODY, 0) != \
        ResponseCache.key("http://h/v1", "m", "chat", BODY, 1)


def test_cache_get_put_len_clear(tmp_path: Path) -> None:
    path = tmp_path / ".promptkit" / "cache.db"
    record = {"text": "Grüße", "input_tokens": 3, "output_tokens": 1, "finish_reason": "stop"}
    with ResponseCache(path) as cache:
        assert cache.get("k1") is None and len(cache) == 0
        cache.put("k1", record)
        cache.put("k2", {"text": "other"})
        cache.put("k2", {"text": "replaced"})
        assert len(cache) == 2
    with ResponseCache(path) as cache:  # committed and reopened
        assert cache.get("k1") == record
        assert cache.get("k2") == {"text": "replaced"}
        with raw(path) as conn:
            created = conn.execute("SELECT created_at FROM responses WHERE key='k1'").fetchone()
        assert abs(created[0] - time.time()) < 60
        assert cache.clear() == 2
        assert len(cache) == 0 and cache.get("k1") is None


def test_cache_corrupt_entry_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with ResponseCache(path) as cache:
        cache.put("k1", {"text": "x"})
        with raw(path) as conn:
            conn.execute("UPDATE responses SET record = '{broken'")
        with pytest.raises(PromptkitError, match="cache entry k1 is not valid JSON"):
            cache.get("k1")


# --- run store --------------------------------------------------------------------------


def test_create_get_and_list_runs(runs: RunStore) -> None:
    first = runs.create_run("a.yaml", "h1", {"prompts": [{"id": "p"}]}, planned=4)
    second = runs.create_run("b.yaml", "h2", {})
    third = runs.create_run("a.yaml", "h1", {}, planned=None)
    assert first.status == "running" and first.finished_at is None
    assert first.format == RESULT_FORMAT and first.planned == 4
    assert first.run_id[8] == "T" and first.run_id[15] == "-" and len(first.run_id) == 20
    assert runs.get_run(first.run_id) == first
    assert [r.run_id for r in runs.list_runs()] == [third.run_id, second.run_id, first.run_id]
    assert [r.run_id for r in runs.list_runs("a.yaml")] == [third.run_id, first.run_id]
    assert [r.run_id for r in runs.list_runs(limit=1)] == [third.run_id]
    assert runs.get_run("last") == runs.get_run("latest") == third

    ids = [first.run_id, second.run_id, third.run_id]
    for run_id in ids:  # the shortest prefix no other id shares finds the run
        others = [o for o in ids if o != run_id]
        n = next(n for n in range(1, 21) if not any(o.startswith(run_id[:n]) for o in others))
        assert runs.get_run(run_id[:n]).run_id == run_id

    with pytest.raises(PromptkitError, match=r"'20' is ambiguous.*type more"):
        runs.get_run("20")
    with pytest.raises(PromptkitError, match=f"no run 'nope'.*recent runs: {third.run_id}"):
        runs.get_run("nope")


def test_get_run_in_an_empty_store(runs: RunStore) -> None:
    with pytest.raises(PromptkitError, match="no runs yet"):
        runs.get_run("last")


def test_finish_planned_and_last_unfinished(runs: RunStore) -> None:
    done = runs.create_run("a.yaml", "h", {})
    runs.finish_run(done.run_id, "finished")
    assert runs.last_unfinished("a.yaml") is None
    broken = runs.create_run("a.yaml", "h", {})
    runs.finish_run(broken.run_id, "interrupted")
    runs.create_run("b.yaml", "h", {})
    found = runs.last_unfinished("a.yaml")
    assert found is not None and found.run_id == broken.run_id
    assert found.status == "interrupted" and found.finished_at is not None
    running = runs.create_run("a.yaml", "h", {}, planned=12)
    assert runs.last_unfinished("a.yaml").run_id == running.run_id
    runs.finish_run(running.run_id, "failed")
    info = runs.get_run(running.run_id)
    assert (info.status, info.planned) == ("failed", 12)
    assert info.finished_at >= info.started_at
    assert runs.get_run(done.run_id).status == "finished"
    with pytest.raises(PromptkitError, match="unknown run status"):
        runs.finish_run(done.run_id, "done")  # type: ignore[arg-type]
    with pytest.raises(PromptkitError, match="no run 'missing'"):
        runs.finish_run("missing", "finished")


def test_add_result_round_trips_every_field(runs: RunStore, tmp_path: Path) -> None:
    run = runs.create_run("a.yaml", "h", {})
    ok = full_result()
    failed = full_result(case_id="c-2", case_index=8, output=None, error="HTTP 500: boom",
                         error_kind="server", passed=False, score=0.0, cached=False)
    runs.add_result(run.run_id, ok)
    runs.add_result(run.run_id, failed)
    assert list(runs.results(run.run_id)) == [ok, failed]
    with raw(tmp_path / "runs.db") as conn:
        row = conn.execute(
            "SELECT passed, score, error, error_kind, latency_s, ttft_s, input_tokens, "
            "output_tokens, cost, cached, case_index, format FROM results "
            "WHERE case_id = 'c-1'").fetchone()
    assert row == (1, 0.8125, None, None, 1.25, 0.0625, 123, 45, 0.000123, 1, 7, RESULT_FORMAT)


def test_nan_score_is_kept_in_the_record(runs: RunStore) -> None:
    run = runs.create_run("a.yaml", "h", {})
    runs.add_result(run.run_id, full_result(score=float("nan")))
    (back,) = runs.results(run.run_id)
    assert math.isnan(back.score)


def test_a_second_add_replaces_and_done_keys_skip_errors(runs: RunStore) -> None:
    run = runs.create_run("a.yaml", "h", {})
    runs.add_result(run.run_id, full_result(case_id="a"))
    runs.add_result(run.run_id, full_result(case_id="b", error="timeout", error_kind="timeout"))
    assert runs.done_keys(run.run_id) == {("zero-shot", "local", "a", 2)}
    runs.add_result(run.run_id, full_result(case_id="b", output="retried"))
    assert runs.count_results(run.run_id) == 2
    assert runs.done_keys(run.run_id) == {("zero-shot", "local", "a", 2),
                                          ("zero-shot", "local", "b", 2)}
    assert [r.output for r in runs.results(run.run_id)][-1] == "retried"
    assert runs.done_keys("other") == set()


def test_add_result_to_an_unknown_run_is_an_error(runs: RunStore) -> None:
    with pytest.raises(PromptkitError, match="run nope"):
        runs.add_result("nope", full_result())


def test_results_are_ordered_and_filtered(runs: RunStore) -> None:
    run = runs.create_run("a.yaml", "h", {})
    other = runs.create_run("a.yaml", "h", {})
    keys = [(p, m, c, r) for p in ("p2", "p1") for m in ("m2", "m1")
            for c in (1, 0) for r in (1, 0)]
    for prompt, provider, index, repeat in keys:
        result = CaseResult(prompt, provider, f"case-{'zy'[index]}", index, repeat)
        runs.add_result(run.run_id, result)
    runs.add_result(other.run_id, CaseResult("p1", "m1", "x", 0))
    got = [(r.prompt_id, r.provider_id, r.case_index, r.repeat) for r in runs.results(run.run_id)]
    assert got == sorted(keys)  # by case_index, not by case_id ("z" < "y" is false)
    only = list(runs.results(run.run_id, prompt_id="p1", provider_id="m2"))
    assert [(r.prompt_id, r.provider_id) for r in only] == [("p1", "m2")] * 4
    assert len(list(runs.results(run.run_id, provider_id="m1"))) == 8
    assert runs.count_results(run.run_id) == 16 and runs.count_results(other.run_id) == 1


def test_corrupt_records_name_the_run_and_key(runs: RunStore, tmp_path: Path) -> None:
    run = runs.create_run("a.yaml", "h", {})
    runs.add_result(run.run_id, full_result())
    with raw(tmp_path / "runs.db") as conn:
        conn.execute("UPDATE results SET record = '{not json'")
        conn.execute("UPDATE runs SET config = '[broken'")
    with pytest.raises(PromptkitError, match=rf"run {run.run_id}, result .*'c-1'.*unreadable"):
        list(runs.results(run.run_id))
    with pytest.raises(PromptkitError, match=rf"run {run.run_id}: the stored config"):
        runs.get_run(run.run_id)


def test_records_from_a_newer_format_are_refused(runs: RunStore, tmp_path: Path) -> None:
    run = runs.create_run("a.yaml", "h", {})
    runs.add_result(run.run_id, full_result())
    with raw(tmp_path / "runs.db") as conn:
        conn.execute("UPDATE results SET format = ?", (RESULT_FORMAT + 1,))
    with pytest.raises(PromptkitError, match="newer than this promptkit"):
        list(runs.results(run.run_id))


def test_two_stores_on_one_file(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.db") as writer, RunStore(tmp_path / "runs.db") as reader:
        run = writer.create_run("a.yaml", "h", {})
        writer.add_result(run.run_id, full_result())
        streamed = reader.results(run.run_id)
        assert next(streamed).case_id == "c-1"  # a read cursor stays open while writing
        writer.add_result(run.run_id, full_result(case_id="c-2"))
        streamed.close()
        assert reader.count_results(run.run_id) == 2
        assert reader.get_run("last").run_id == run.run_id


def test_two_thousand_results(runs: RunStore) -> None:
    run = runs.create_run("a.yaml", "h", {})
    for i in range(2000):
        runs.add_result(run.run_id, CaseResult("p", "m", f"c{i}", i, output="x" * 200))
    assert runs.count_results(run.run_id) == 2000
    assert sum(1 for _ in runs.results(run.run_id)) == 2000


CHILD = """
import sys
from promptkit.results import CaseResult
from promptkit.running.storage import RunStore

store = RunStore(sys.argv[1])
run = store.create_run("kill.yaml", "h", {"note": "kill test"})
print(run.run_id, flush=True)
i = 0
while True:
    store.add_result(run.run_id, CaseResult("p", "m", f"c{i}", i, output="y" * 500,
                                            vars={"i": i}, score=i / 7))
    i += 1
    print(i, flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_loses_no_committed_result(tmp_path: Path) -> None:
    path = tmp_path / ".promptkit" / "runs.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        assert run_id, "the child died before creating its run"
        with RunStore(path) as reader:  # another process has the file open and is writing
            assert reader.get_run("last").status == "running"
            reported = 0
            while reported < 150:
                line = child.stdout.readline()
                assert line, "the child died early"
                reported = int(line)
                if reported == 50:
                    assert reader.count_results(run_id) >= 50
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with raw(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with RunStore(path) as store:
        assert store.get_run(run_id).status == "running"
        assert store.last_unfinished("kill.yaml").run_id == run_id
        done = store.done_keys(run_id)
        assert {("p", "m", f"c{i}", 0) for i in range(reported)} <= done
        results = list(store.results(run_id))
        assert len(results) == len(done) >= reported
        assert all(r.vars == {"i": r.case_index} and r.score == r.case_index / 7
                   for r in results)


def test_a_result_holding_a_lone_surrogate_is_stored_escaped(tmp_path) -> None:
    from promptkit.results import CaseResult
    from promptkit.running.storage import RunStore

    with RunStore(tmp_path / "runs.db") as store:
        run = store.create_run("e.yaml", "h", {})
        store.add_result(run.run_id, CaseResult("p", "m", "c", 0, vars={"q": "a\ud800b"},
                                                error="bad \udcff byte"))
        (stored,) = store.results(run.run_id)
    # the record keeps them as JSON escapes, so the values come back as they were
    assert stored.vars == {"q": "a\ud800b"} and stored.error == "bad \udcff byte"
