"""Shards (``eval --shard I/N``) and ``promptkit merge``, against a real scripted endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from helpers import promptkit
from promptkit.api import evaluate, load_report, merge_runs
from promptkit.errors import ConfigError, PromptkitError
from promptkit.running.plan import plan_eval
from promptkit.running.runner import RunOptions, run_eval
from promptkit.running.shards import parse_shard, shard_of
from promptkit.running.spec import load_spec
from promptkit.running.storage import RunStore, run_shard
from promptkit.testing import FakeEndpoint, Reply

REPO = Path(__file__).parents[2]

SPEC = """\
description: shards
templates: templates
prompts:
  - summarize@1
  - id: few
    template: summarize@2
providers:
  - id: fake
    base_url: {base_url}
    model: m
    stream: false
    concurrency: 4
    retries: 0
dataset: data.jsonl
assert:
  - type: icontains
    value: "{{{{ keyword }}}}"
threshold: 0.1
"""


def make_eval(tmp_path: Path, endpoint: FakeEndpoint, cases: int = 12) -> Path:
    shutil.copytree(REPO / "templates", tmp_path / "templates", dirs_exist_ok=True)
    with (tmp_path / "data.jsonl").open("w") as handle:
        for i in range(cases):
            handle.write(json.dumps({"id": f"case-{i}", "article": f"Article {i} on kw{i}.",
                                     "keyword": f"kw{i}"}) + "\n")
    path = tmp_path / "eval.yaml"
    path.write_text(SPEC.format(base_url=endpoint.base_url))

    def answer(request) -> Reply:  # even cases pass, odd ones fail
        number = int(request.prompt_text.rsplit("Article ", 1)[1].split(" ")[0])
        return Reply.text(f"About kw{number}." if number % 2 == 0 else "About nothing.")

    endpoint.respond_with(answer)
    return path


def run(path: Path, **options):
    return asyncio.run(run_eval(plan_eval(load_spec(path)), RunOptions(**options)))


def case_ids(finished) -> set[str]:
    return {result.case_id for result in finished.results()}


def outcomes(report) -> dict[tuple[str, str, str, int], tuple[bool, float, str | None]]:
    return {r.key: (r.passed, r.score, r.output) for r in report.results()}


# -- which shard a case is in --


def test_the_shard_formula_matches_an_independent_computation() -> None:
    for case_id in ("case-0", "c1", "中文-案例", "", "a" * 300):
        digest = hashlib.sha256(case_id.encode("utf-8")).digest()
        for count in (1, 2, 3, 7, 10_000):
            assert shard_of(case_id, count) == int.from_bytes(digest, "big") % count + 1
    # pinned, so a change of formula (which would reshuffle every CI's shards) shows
    assert [shard_of(f"case-{i}", 4) for i in range(6)] == [
        int(hashlib.sha256(f"case-{i}".encode()).hexdigest(), 16) % 4 + 1 for i in range(6)]


def test_shards_partition_the_cases(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    plan = plan_eval(load_spec(make_eval(tmp_path, endpoint, cases=40)))
    ids = [case.id for case in plan.cases()]
    for count in range(1, 8):
        shards = [{case.id for case in plan.cases()
                   if RunOptions(shard=(index, count)).runs_case(case)}
                  for index in range(1, count + 1)]
        assert sum(map(len, shards)) == len(ids) == 40  # no case in two shards
        assert set().union(*shards) == set(ids)  # none in no shard


def test_a_shard_run_runs_its_cases_and_records_its_shard(tmp_path: Path,
                                                          endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    finished = run(path, shard=(2, 3))
    expected = {f"case-{i}" for i in range(12) if shard_of(f"case-{i}", 3) == 2}
    assert case_ids(finished) == expected and endpoint.count == 2 * len(expected)
    assert finished.run.planned == 2 * len(expected)
    assert run_shard(finished.run) == (2, 3)
    assert finished.run.config["shard"] == {"index": 2, "count": 3}
    whole = run(path)
    assert whole.run.spec_hash == finished.run.spec_hash  # the tag is not part of the spec
    assert run_shard(whole.run) is None and "shard" not in whole.run.config


def test_limit_applies_before_sharding(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    runs = [run(path, limit=5, shard=(i, 3)) for i in (1, 2, 3)]
    assert set().union(*map(case_ids, runs)) == {f"case-{i}" for i in range(5)}
    assert sum(r.run.planned for r in runs) == 2 * 5
    assert runs[0].run.config["shard"] == {"index": 1, "count": 3, "limit": 5}


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "x", "1/10001", "2", "1/2/3", "-1/4"])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(PromptkitError, match=r"--shard .*give I/N"):
        parse_shard(text)


def test_a_shard_reads_i_of_n(tmp_path: Path) -> None:
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 10000/10000 ") == (10_000, 10_000)
    with pytest.raises(PromptkitError, match=r"shard \(0, 4\): give \(I, N\)"):
        evaluate(tmp_path / "unread.yaml", shard=(0, 4))


# -- merging --


def test_two_shards_merged_equal_one_unsharded_run(tmp_path: Path,
                                                   endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    stores = []
    for index in (1, 2):
        store = tmp_path / f"shard{index}"
        run(path, shard=(index, 2), store_dir=store, cache_dir=tmp_path / "cache")
        stores.append(store)
    asked = endpoint.count
    assert asked == 2 * 12
    merged = merge_runs(stores, store_dir=tmp_path / "merged")
    assert merged.run.status == "finished" and merged.exit_code == 0
    assert merged.run.planned == 2 * 12
    assert merged.run.config["merged"]["shards"] == [1, 2]
    assert run_shard(merged.run) is None
    whole = run(path, store_dir=tmp_path / "whole", cache_dir=tmp_path / "cache")
    assert endpoint.count == asked  # answered from the cache, case by case
    with RunStore(whole.store_path) as store:
        expected = {r.key: (r.passed, r.score, r.output)
                    for r in store.results(whole.run.run_id)}
    assert outcomes(merged) == expected and len(expected) == 2 * 12
    assert {key[2] for key, (passed, _, _) in expected.items() if passed} == {
        f"case-{i}" for i in range(0, 12, 2)}
    assert [row.pass_rate for row in merged.rows] == [0.5, 0.5]
    assert merged.run.spec_hash == whole.run.spec_hash


def test_merge_refuses_mixed_specs(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    first = tmp_path / "a"
    run(path, shard=(1, 2), store_dir=first)
    path.write_text(path.read_text().replace("threshold: 0.1", "threshold: 0.2"))
    run(path, shard=(2, 2), store_dir=tmp_path / "b")
    with pytest.raises(PromptkitError,
                       match=r"cannot merge runs of different specs: \S*/a \(run "):
        merge_runs([first, tmp_path / "b"])
    with RunStore(first / "runs.db") as store:
        assert len(store.list_runs()) == 1  # nothing was written


def test_merge_refuses_overlaps_and_gaps(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    stores = {name: tmp_path / name for name in ("one", "again", "two", "three", "other_n")}
    one = run(path, shard=(1, 3), store_dir=stores["one"]).run
    run(path, shard=(1, 3), store_dir=stores["again"])
    two = run(path, shard=(2, 3), store_dir=stores["two"]).run
    run(path, shard=(3, 4), store_dir=stores["other_n"])
    with pytest.raises(PromptkitError, match=r"shard 1/3 twice: \S*/one \(run .*\) and \S*/again"):
        merge_runs([stores["one"], stores["two"], stores["again"]])
    with pytest.raises(PromptkitError, match=r"shard 3/3 missing from \S*/one, \S*/two; "
                                             r"merge every shard, or pass --allow-partial"):
        merge_runs([stores["one"], stores["two"]])
    with pytest.raises(PromptkitError, match="cannot merge shards of different counts"):
        merge_runs([stores["one"], stores["two"], stores["other_n"]])
    for store in ("one", "two"):
        with RunStore(stores[store] / "runs.db") as runs:
            assert len(runs.list_runs()) == 1  # nothing was written
    partial = merge_runs([stores["one"], stores["two"]], allow_partial=True)
    assert partial.run.status == "interrupted" and partial.exit_code == 3
    assert partial.run.config["merged"] == {"count": 3, "shards": [1, 2], "runs": [
        {"shard": 1, "run_id": one.run_id, "store": str(stores["one"] / "runs.db")},
        {"shard": 2, "run_id": two.run_id, "store": str(stores["two"] / "runs.db")}]}
    assert partial.store_path == stores["one"] / "runs.db"  # the first store by default
    assert {r.case_id for r in partial.results()} == {
        f"case-{i}" for i in range(12) if shard_of(f"case-{i}", 3) in (1, 2)}
    # the merged run is not a shard run: merging again takes the shard run again
    again = merge_runs([stores["one"], stores["two"]], allow_partial=True)
    assert again.run.run_id != partial.run.run_id


def test_merge_refuses_an_unfinished_shard_unless_partial(tmp_path: Path,
                                                          endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    stopped = evaluate(path, shard=(1, 2), store_dir=tmp_path / "a", max_requests=2)
    assert stopped.run.status == "interrupted"
    evaluate(path, shard=(2, 2), store_dir=tmp_path / "b")
    with pytest.raises(PromptkitError, match=r"a \(run .*, shard 1/2\) is interrupted; finish "
                                             r"it \(`promptkit eval SPEC --resume --shard 1/2`\)"):
        merge_runs([tmp_path / "a", tmp_path / "b"])
    partial = merge_runs([tmp_path / "a", tmp_path / "b"], allow_partial=True)
    assert partial.run.status == "interrupted"
    assert len(list(partial.results())) == 2 + len(list(load_report(
        "last", store_dir=tmp_path / "b").results()))


def test_merge_refuses_stores_without_shard_runs(tmp_path: Path,
                                                 endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=2)
    run(path, store_dir=tmp_path / "whole")
    with pytest.raises(PromptkitError, match=r"whole: no shard run in .*--shard I/N"):
        merge_runs([tmp_path / "whole"])
    with pytest.raises(PromptkitError, match=r"nowhere: no run store"):
        merge_runs([tmp_path / "nowhere"])
    assert not (tmp_path / "nowhere").exists()


# -- resuming a shard --


def test_resume_with_a_shard_resumes_only_that_shards_run(tmp_path: Path,
                                                          endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    first = evaluate(path, shard=(1, 2), max_requests=2)
    second = evaluate(path, shard=(2, 2), max_requests=2)  # newer, also unfinished
    assert first.run.status == second.run.status == "interrupted"
    resumed = evaluate(path, shard=(1, 2), resume=True)
    assert resumed.run.run_id == first.run.run_id and resumed.run.status == "finished"
    assert {r.case_id for r in resumed.results()} == {
        f"case-{i}" for i in range(12) if shard_of(f"case-{i}", 2) == 1}
    with pytest.raises(PromptkitError, match=r"nothing to resume: the last run of .* for "
                                             r"shard 1/2 \(.*\) finished"):
        evaluate(path, shard=(1, 2), resume=True)
    with pytest.raises(PromptkitError, match=r"nothing to resume: .* has no runs in "):
        evaluate(path, resume=True)  # no unsharded run: a shard's is not one
    with pytest.raises(PromptkitError, match=r"has no runs for shard 1/3"):
        evaluate(path, shard=(1, 3), resume=True)
    assert evaluate(path, shard=(2, 2), resume=True).run.run_id == second.run.run_id


def test_a_shard_resumes_only_with_the_limit_it_ran_with(tmp_path: Path,
                                                        endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    first = evaluate(path, shard=(1, 2), limit=10, max_requests=2)
    with pytest.raises(ConfigError, match="shard 1/2 run with --limit 10: resume it with"):
        evaluate(path, shard=(1, 2), limit=30, resume=True)
    resumed = evaluate(path, shard=(1, 2), limit=10, resume=True)
    assert resumed.run.run_id == first.run.run_id and resumed.run.status == "finished"


# -- the command line --


def test_the_merged_run_works_with_runs_show_baseline_save_compare_and_outputs(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    for index in (1, 2):
        proc = promptkit("eval", str(path), "--shard", f"{index}/2", "--store-dir",
                         f"shard-{index}", "-q", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    listed = promptkit("runs", "list", "--store-dir", "shard-1", cwd=tmp_path)
    assert "shards" in listed.stdout and "shard 1/2" in listed.stdout
    merged = promptkit("merge", "shard-1", "shard-2/runs.db", "--store-dir", "merged",
                       "-o", "merged.json", "-o", "report.html", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert "into run " in merged.stderr and "(merged 1-2/2)" in merged.stderr
    assert "wrote merged.json" in merged.stderr and "few" in merged.stdout
    document = json.loads((tmp_path / "merged.json").read_text())
    assert len(document["results"]) == 24
    assert "<html" in (tmp_path / "report.html").read_text()
    shown = promptkit("runs", "show", "last", "--store-dir", "merged", cwd=tmp_path)
    assert shown.returncode == 0 and "(merged 1-2/2): finished" in shown.stdout
    listed = promptkit("runs", "list", "--store-dir", "merged", cwd=tmp_path)
    assert "merged 1-2/2" in listed.stdout and "24/24" in listed.stdout
    saved = promptkit("baseline", "save", "-o", "baseline.json", "--store-dir", "merged",
                      cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    assert "2 prompt × provider, 24 cases" in saved.stdout
    compared = promptkit("compare", "baseline.json", "last", "--store-dir", "merged",
                         "--fail-on-regression", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "no significant change" in compared.stdout
    exported = promptkit("export", "sft", "-o", "sft.jsonl", "--store-dir", "merged",
                         cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "sft.jsonl").read_text().splitlines()) == 12  # the passing ones
    gated = promptkit("merge", "shard-1", "shard-2", "--store-dir", "merged", "--baseline",
                      "baseline.json", "--fail-on-regression", "-o", "summary.md",
                      cwd=tmp_path)
    assert gated.returncode == 0, gated.stderr
    assert "no significant change" in gated.stdout
    assert (tmp_path / "summary.md").read_text().strip()


@pytest.mark.parametrize(("args", "message"), [
    (["--shard", "0/4"], "--shard '0/4': give I/N, shard I of N (1 <= I <= N <= 10,000)"),
    (["--shard", "5/4"], "--shard '5/4': give I/N"),
    (["--shard", "two"], "--shard 'two': give I/N"),
    (["--shard", "1/2", "--dry-run"], "--dry-run counts the whole eval; leave out --shard"),
])
def test_bad_shard_options_are_one_line_and_exit_2(tmp_path: Path, endpoint: FakeEndpoint,
                                                    args: list[str], message: str) -> None:
    path = make_eval(tmp_path, endpoint, cases=2)
    proc = promptkit("eval", str(path), *args, cwd=tmp_path)
    assert proc.returncode == 2 and endpoint.count == 0
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"promptkit: error: {message}")


def test_merge_errors_are_one_line_and_exit_2(tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint, cases=4)
    for index in (1, 3):
        assert promptkit("eval", str(path), "--shard", f"{index}/3", "--store-dir", f"s{index}",
                         "-q", cwd=tmp_path).returncode == 0
    for args, message in (
            (["s1", "s3"], "shard 2/3 missing from s1, s3"),
            (["s1", "s1"], "shard 1/3 twice"),
            (["s1", "nowhere"], "nowhere: no run store"),
            (["s1", "--fail-on-regression"], "--fail-on-regression and --max-drop need "
                                             "--baseline"),
            (["s1", "--bogus"], "No such option '--bogus'")):
        proc = promptkit("merge", *args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
    partial = promptkit("merge", "s1", "s3", "--allow-partial", cwd=tmp_path)
    assert partial.returncode == 3, partial.stderr
    assert "merged 1,3/3" in partial.stderr


def test_merge_refuses_shards_that_ran_another_template_file(
        tmp_path: Path, endpoint: FakeEndpoint) -> None:
    path = make_eval(tmp_path, endpoint)
    run(path, shard=(1, 2), store_dir=tmp_path / "a")
    version = next((tmp_path / "templates" / "summarize").glob("v1.jinja"))
    version.write_text(version.read_text().replace("Summarize", "Please summarize"))
    run(path, shard=(2, 2), store_dir=tmp_path / "b")
    with pytest.raises(PromptkitError, match="the template changed between shards"):
        merge_runs([tmp_path / "a", tmp_path / "b"])
