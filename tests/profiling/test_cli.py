"""``promptkit profile`` from the command line: its tables, its files, its one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptkit.cli import cli
from promptkit.testing import FakeEndpoint, Reply

QUICK = ("--concurrency", "1,2", "--requests", "2", "--warmup", "0")


def invoke(*args: str, columns: int = 200):
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, ["profile", *args],
                                                           catch_exceptions=False)


def test_an_endpoint_profile_prints_a_table_and_writes_every_format(
        endpoint: FakeEndpoint, tmp_path: Path) -> None:
    endpoint.default = Reply.text("a b c d", latency=0.01)
    outputs = [tmp_path / f"profile.{suffix}" for suffix in ("json", "csv", "html")]
    result = invoke("--base-url", endpoint.base_url, "--model", "<b>m</b>", "--input-tokens",
                    "16,32", "--slo", "ttft=1s,e2el=2s", *QUICK,
                    *(arg for out in outputs for arg in ("-o", str(out))))
    assert result.exit_code == 0, result.output
    assert "<b>m</b> · 16 tokens · http://127.0.0.1:" in result.stdout
    assert "tokens: usage" in result.stdout and "SLO ttft≤1s, e2el≤2s" in result.stdout
    assert "<b>m</b> · 32 tokens · concurrency 2: 2 completed, 0 failed" in result.stderr
    assert "side by side" not in result.stdout  # one provider

    data = json.loads(outputs[0].read_text())
    assert data["slo_ms"] == {"ttft": 1000.0, "e2el": 2000.0}
    assert [(run["workload"], run["input_tokens"]) for run in data["runs"]] == [
        ("16 tokens", 16), ("32 tokens", 32)]
    level = data["runs"][0]["levels"][1]
    assert level["max_concurrency"] == 2 and level["completed"] == 2
    assert level["slo_attainment"] == 1.0 and level["p99_itl_ms"] >= 0
    assert data["runs"][0]["max_concurrency_meeting_slo"] == 2

    rows = list(csv.DictReader(outputs[1].open()))
    assert len(rows) == 4  # 1 provider × 2 input sizes × 2 levels
    assert set(rows[0]) >= set(level) | {"provider", "workload", "input_tokens", "tokens"}
    assert rows[3]["input_tokens"] == "32" and rows[3]["max_concurrency"] == "2"
    assert float(rows[0]["median_ttft_ms"]) >= 10 and rows[0]["tokens"] == "usage"

    page = outputs[2].read_text()
    assert page.count("<svg role=\"img\"") == 8  # 4 charts × 2 input sizes
    assert "&lt;b&gt;m&lt;/b&gt;" in page and "<b>m</b>" not in page
    assert "Content-Security-Policy" in page and "<script" not in page
    assert "http" not in page.split("<body>")[1].replace(endpoint.base_url, "") \
        .replace("http://www.w3.org/2000/svg", "")  # nothing loaded from anywhere


def test_an_eval_profiles_its_providers_side_by_side(endpoint: FakeEndpoint,
                                                      make_eval) -> None:
    spec = make_eval(endpoint.base_url)
    result = invoke(str(spec), "--limit", "1", *QUICK)
    assert result.exit_code == 0, result.output
    assert "first · eval (2 prompts)" in result.stdout
    assert "second · eval (2 prompts)" in result.stdout
    assert "side by side · eval (2 prompts)" in result.stdout
    prompts = [r.body.get("prompt") or r.body["messages"][-1]["content"]
               for r in endpoint.requests if r.path.endswith("completions")]
    # the first case through both prompts; a chat message is sent without its trailing space
    assert set(prompts) == {"Hello Ann!", "Hello Ann! Hello Ann! ", "Hello Ann! Hello Ann!"}


@pytest.mark.parametrize(("args", "says"), [
    (("--slo", "ttft=500"), "--slo 'ttft=500': ttft=500 is not a duration in ms or s"),
    (("--slo", "speed=5ms"), "metric among ttft, tpot, e2el"),
    (("--concurrency", "0,2"), "--concurrency '0,2': '0' is not a whole number"),
    (("--input-tokens", "256,abc"), "--input-tokens '256,abc': 'abc' is not"),
    (("--input-tokens", "8", "--prompt-text", "hi"), "give one or the other"),
    (("--requests", "many"), "'many' is not a valid integer"),
    (("--api", "rest"), "'rest' is not one of 'chat', 'completions'"),
    (("--bogus",), "No such option '--bogus'"),
    (("-o", "profile.txt"), "unsupported output format '.txt'"),
    (("--model", "m"), "--base-url and --model go together"),
    (("--requests", "2", "--concurrency", "1,64"), "--requests 2 is fewer than the "
                                                   "concurrency level 64"),
    (("--prompt-text", "  "), "--prompt-text is empty"),
    (("-o", "/tmp/x.json/"), "a folder, not a file name"),
])
def test_bad_flags_are_one_line_and_exit_2(args: tuple[str, ...], says: str) -> None:
    base = () if "--model" in args else ("--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    result = invoke(*base, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("promptkit: error: ")
    assert says in result.stderr


def test_nothing_to_profile_is_one_line() -> None:
    result = invoke()
    assert result.exit_code == 2
    assert result.stderr == ("promptkit: error: nothing to profile: give an eval spec, local "
                             "(or local:MODEL.gguf), or --base-url with --model\n")


def test_an_unreachable_endpoint_exits_3(tmp_path: Path) -> None:
    result = invoke("--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--input-tokens",
                    "8", "--concurrency", "1", "-o", str(tmp_path / "p.json"))
    assert result.exit_code == 3
    assert "warm-up request failed: connection failed" in result.stdout
    assert json.loads((tmp_path / "p.json").read_text())["runs"][0]["error"]


def test_help_is_the_docstring() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "Measure endpoints" in result.stdout


@pytest.mark.parametrize("kind", ["a baseline", "a dataset"])
def test_an_output_never_overwrites_a_file_that_is_not_a_profile(
        tmp_path: Path, kind: str) -> None:
    taken = tmp_path / ("base.json" if kind == "a baseline" else "data.csv")
    taken.write_text('{\n  "promptkit_baseline": 2\n}\n' if kind == "a baseline"
                     else "id,question\na,hi\n")
    before = taken.read_bytes()
    result = invoke("--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--input-tokens",
                    "8", "--concurrency", "1", "-o", str(taken))
    assert result.exit_code == 2 and "is not a profile written by promptkit profile" in \
        result.stderr
    assert taken.read_bytes() == before
