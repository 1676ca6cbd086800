"""The CI gate end to end: the shipped summarize eval and its committed baseline, against
the test endpoint scripted to give the baseline's answers, or worse ones for one template
version. Also ``runs``, ``baseline save`` and ``compare`` as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import WORSE, baseline_answers, promptkit
from promptkit.comparing.baseline import load_baseline, save_baseline
from promptkit.comparing.stats import min_detectable_drop
from promptkit.testing import FakeEndpoint

REPO = Path(__file__).parents[2]
BASELINE = REPO / "evals" / "baselines" / "summarize.json"





def gate(project: Path, endpoint: FakeEndpoint, *extra: str):
    return promptkit("eval", "evals/summarize.yaml", "--base-url", endpoint.base_url,
                     "--model", "m", "--api", "completions", "--baseline",
                     "evals/baselines/summarize.json", "--fail-on-regression", *extra,
                     cwd=project)


def test_committed_baseline_is_a_baseline_of_the_summarize_eval() -> None:
    side = load_baseline(BASELINE)
    assert [row.prompt_id for row in side.rows] == ["zero-shot", "few-shot"]
    assert all(len(row.cases) == 24 and row.template_sha256 for row in side.rows)
    # a real run: few-shot beats zero-shot on the bundled model
    passed = {row.prompt_id: sum(c.passed for c in row.cases.values()) for row in side.rows}
    assert passed["few-shot"] > passed["zero-shot"]


def test_same_answers_pass_the_gate(project: Path, endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(baseline_answers())
    proc = gate(project, endpoint)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: no significant change" in proc.stdout
    assert "pass → FAIL" not in proc.stdout
    # the baseline came from another model: said, not hidden
    assert "model changed (gemma-3-270m → m)" in proc.stdout
    assert "provider 'm' compared with the baseline's provider 'local'" in proc.stdout


def test_noise_passes_the_gate_and_is_still_listed(project: Path,
                                                  endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(baseline_answers(worse_cases=("en-01", "en-02")))
    proc = gate(project, endpoint)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: no significant change" in proc.stdout
    assert "pass → FAIL  en-01  (few-shot × m)" in proc.stdout
    assert "pass → FAIL  en-02  (few-shot × m)" in proc.stdout


def test_worse_template_version_fails_the_gate_naming_flipped_cases(
        project: Path, endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(baseline_answers(worse_template="summarize@2"))
    proc = gate(project, endpoint, "-o", str(project / "report.html"),
                "-o", str(project / "report.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("verdict: WORSE at alpha 0.05 (one-sided, Holm over 2 gated row(s)): "
            "few-shot × m") in proc.stdout
    baseline = load_baseline(BASELINE)
    regressed = [c.case_id for c in baseline.row("few-shot", "local").cases.values()
                 if c.passed]
    for case_id in regressed:
        assert f"pass → FAIL  {case_id}  (few-shot × m)" in proc.stdout
    assert WORSE in proc.stdout  # both outputs are shown
    report = json.loads((project / "report.json").read_text())
    assert report["comparison"]["regressed"] is True
    worse = {row["prompt_id"]: row["verdict"] for row in report["comparison"]["rows"]}
    assert worse == {"zero-shot": "no significant change", "few-shot": "worse"}
    html = (project / "report.html").read_text()
    assert "few-shot" in html and regressed[0] in html


def test_without_fail_on_regression_a_regression_is_reported_not_gated(
        project: Path, endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(baseline_answers(worse_template="summarize@2"))
    proc = promptkit("eval", "evals/summarize.yaml", "--base-url", endpoint.base_url,
                     "--model", "m", "--api", "completions", "--baseline",
                     "evals/baselines/summarize.json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "verdict: WORSE" in proc.stdout


def test_bad_baseline_is_invalid_input_before_any_request(
        project: Path, endpoint: FakeEndpoint) -> None:
    (project / "broken.json").write_text('{"promptkit_baseline": 1, "rows": [{"prompt": 3}]}')
    cases = {
        "missing.json": "missing.json: baseline file not found",
        "broken.json": "broken.json:1: rows[0].prompt: Input should be a valid string",
        "no-such-run": "--baseline no-such-run: no such file, and no runs in",
    }
    for ref, message in cases.items():
        proc = promptkit("eval", "evals/summarize.yaml", "--base-url", endpoint.base_url,
                         "--model", "m", "--baseline", ref, cwd=project)
        assert proc.returncode == 2, (ref, proc.stderr)
        assert message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert endpoint.count == 0
    proc = promptkit("eval", "evals/summarize.yaml", "--fail-on-regression", cwd=project)
    assert proc.returncode == 2
    assert "--fail-on-regression and --max-drop need --baseline" in proc.stderr


def test_runs_baseline_and_compare_commands(project: Path, endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(baseline_answers())
    args = ("eval", "evals/summarize.yaml", "--base-url", endpoint.base_url, "--model", "m",
            "--api", "completions", "-q")
    assert promptkit(*args, cwd=project).returncode == 0
    endpoint.respond_with(baseline_answers(worse_template="summarize@2"))
    assert promptkit(*args, "--no-cache", cwd=project).returncode == 0

    listing = promptkit("runs", "list", cwd=project)
    assert listing.returncode == 0, listing.stderr
    run_ids = [line.split()[0] for line in listing.stdout.splitlines()[1:] if line.strip()]
    assert len(run_ids) == 2 and all("finished" in line
                                     for line in listing.stdout.splitlines()[1:])
    newer, older = run_ids

    shown = promptkit("runs", "show", older[:10] if older[:10] != newer[:10] else older,
                      cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert f"run {older}: finished" in shown.stdout and "few-shot" in shown.stdout

    saved = promptkit("baseline", "save", older, "-o", "base.json", cwd=project)
    assert saved.returncode == 0, saved.stderr
    assert "2 prompt × provider, 48 cases" in saved.stdout
    text = (project / "base.json").read_text()
    assert len(text.splitlines()) < 80  # one line per case: diff-friendly
    assert load_baseline(project / "base.json").run_id == older

    same = promptkit("compare", "base.json", older, "--fail-on-regression", cwd=project)
    assert same.returncode == 0, same.stdout + same.stderr
    worse = promptkit("compare", "base.json", "last", "--fail-on-regression",
                      "-o", "cmp.html", "-o", "cmp.md", cwd=project)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert "verdict: WORSE" in worse.stdout and (project / "cmp.html").is_file()
    summary = (project / "cmp.md").read_text()  # a pull request comment
    assert "WORSE" in summary and "pass → FAIL" in summary
    runs_only = promptkit("compare", older, newer, cwd=project)
    assert runs_only.returncode == 0 and "verdict: WORSE" in runs_only.stdout
    # the other way round, the same flips are fixes
    better = promptkit("compare", newer, older, "--fail-on-regression", cwd=project)
    assert better.returncode == 0 and "verdict: better" in better.stdout
    assert better.stdout.index("fail → pass") > 0 and "pass → FAIL" not in better.stdout


def test_run_commands_explain_missing_things(tmp_path: Path) -> None:
    proc = promptkit("runs", "list", cwd=tmp_path)
    assert proc.returncode == 2 and "no runs found" in proc.stderr
    proc = promptkit("runs", "show", "last", cwd=tmp_path)
    assert proc.returncode == 2 and "no run store found" in proc.stderr
    proc = promptkit("compare", "a.json", "b.json", cwd=tmp_path)
    assert proc.returncode == 2 and "a.json: baseline file not found" in proc.stderr
    proc = promptkit("baseline", "save", "-o", "x.json", cwd=tmp_path)
    assert proc.returncode == 2 and "no run store found" in proc.stderr


def test_baseline_save_refuses_an_unfinished_run_unless_asked(tmp_path: Path) -> None:
    from promptkit.results import CaseResult
    from promptkit.running.storage import RunStore

    with RunStore(tmp_path / ".promptkit" / "runs.db") as store:
        run = store.create_run(str(tmp_path / "e.yaml"), "h", {}, planned=10)
        store.add_result(run.run_id, CaseResult("p", "m", "c1", 0, passed=True, score=1.0))
    proc = promptkit("baseline", "save", "-o", "b.json", cwd=tmp_path)
    assert proc.returncode == 2
    assert f"run {run.run_id} is running; finish it" in proc.stderr
    assert not (tmp_path / "b.json").exists()
    proc = promptkit("baseline", "save", "-o", "b.json", "--allow-unfinished", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 prompt × provider, 1 cases" in proc.stdout


def test_ab_compares_two_variants_of_one_run(project: Path, endpoint: FakeEndpoint) -> None:
    endpoint.respond_with(baseline_answers())
    run = promptkit("eval", "evals/summarize.yaml", "--base-url", endpoint.base_url,
                    "--model", "m", "--api", "completions", "-q", cwd=project)
    assert run.returncode in (0, 1), run.stderr
    proc = promptkit("ab", "zero-shot", "few-shot", "-o", str(project / "ab.json"),
                     cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "few-shot vs zero-shot × m" in proc.stdout
    data = json.loads((project / "ab.json").read_text())["comparison"]
    (row,) = data["rows"]
    side = load_baseline(BASELINE)
    before, after = (sum(c.passed for c in r.cases.values()) for r in side.rows)
    assert round(row["before_rate"] * 24) == before and round(row["after_rate"] * 24) == after
    assert row["verdict"] == ("better" if row["p_better"] <= 0.05 else "no significant change")
    assert not row["warnings"]  # the templates differ on purpose: no warning about it
    assert row["min_detectable_drop"] == pytest.approx(100 * min_detectable_drop(24, 0.05))
    md = promptkit("ab", "zero-shot", "few-shot", "-o", "ab.md", cwd=project)
    assert md.returncode == 0 and "few-shot" in (project / "ab.md").read_text()
    unknown = promptkit("ab", "zero-shot", "nope", cwd=project)
    assert unknown.returncode == 2 and "has no prompt 'nope'" in unknown.stderr


def test_gate_in_the_spec_picks_the_rows_that_gate(project: Path,
                                                   endpoint: FakeEndpoint) -> None:
    spec = project / "evals" / "summarize.yaml"
    spec.write_text(spec.read_text() + "gate: {prompts: [zero-shot]}\n")
    endpoint.respond_with(baseline_answers(worse_template="summarize@2"))
    proc = gate(project, endpoint)
    assert proc.returncode == 0, proc.stdout  # few-shot got worse, but it does not gate
    assert "worse (not gated)" in proc.stdout
    assert "not gated (gate: in the spec): few-shot × m" in proc.stdout
    spec.write_text(spec.read_text().replace("[zero-shot]", "[zero-shat]"))
    bad = gate(project, endpoint)
    assert bad.returncode == 2 and "gate.prompts: 'zero-shat' is not one of" in bad.stderr


def one_line(text: str) -> str:
    """Terminal output with the lines a narrow console wrapped joined again."""
    return " ".join(text.split())


def test_the_gate_says_what_it_could_detect_or_that_it_cannot_vouch(tmp_path: Path) -> None:
    """``compare --fail-on-regression``: on 24 cases a row, "no significant change" comes
    with the drop the gate could have caught; on 4 it cannot vouch (exit 1) unless
    --max-drop guards the rows. The terminal, summary.md and report.html agree."""
    same = promptkit("compare", str(BASELINE), str(BASELINE), "--fail-on-regression",
                     "-o", "summary.md", "-o", "report.html", cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    verdict = ("verdict: no significant change at alpha 0.05 (the gate could have detected "
               f"a drop of {100 * min_detectable_drop(24, 0.05 / 2):.0f} points or more in "
               "each gated row)")
    assert verdict in one_line(same.stdout)
    assert f"**{verdict}**" in (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert f">{verdict}</p>" in (tmp_path / "report.html").read_text(encoding="utf-8")

    tiny = load_baseline(BASELINE)
    tiny.rows = tiny.rows[:1]
    tiny.rows[0].cases = dict(list(tiny.rows[0].cases.items())[:4])
    save_baseline(tiny, tmp_path / "tiny.json")
    blind = promptkit("compare", "tiny.json", "tiny.json", "--fail-on-regression",
                      "-o", "summary.md", "-o", "report.html", cwd=tmp_path)
    assert blind.returncode == 1, blind.stdout + blind.stderr
    reason = ("too few paired cases to detect a drop: with 4 cases of zero-shot × local no "
              "drop can be significant at one-sided alpha 0.05 (add cases, or gate with "
              "--max-drop)")
    assert f"FAILED comparison: {reason}; the gate cannot vouch for it" in one_line(
        blind.stderr)
    assert f"cannot vouch: {reason}" in one_line(blind.stdout)
    assert f"**cannot vouch: {reason}**" in (tmp_path / "summary.md").read_text(
        encoding="utf-8")
    assert f">cannot vouch: {reason}</p>" in (tmp_path / "report.html").read_text(
        encoding="utf-8")
    guarded = promptkit("compare", "tiny.json", "tiny.json", "--fail-on-regression",
                        "--max-drop", "10", cwd=tmp_path)
    assert guarded.returncode == 0, guarded.stdout + guarded.stderr
    assert ("verdict: too few paired cases for the test to detect any drop in zero-shot × "
            "local (4 cases); no gated row fell more than 10 points") in one_line(guarded.stdout)
