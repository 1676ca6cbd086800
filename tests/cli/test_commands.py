"""The command line, run as a user runs it (a subprocess) and through click's runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from promptkit import __version__
from promptkit.cli import cli

REPO = Path(__file__).parents[2]


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promptkit.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def invoke(*args: str, templates: Path | None = None):
    extra = ["--templates", str(templates)] if templates else ["--templates",
                                                                str(REPO / "templates")]
    return CliRunner().invoke(cli, [*args, *extra], catch_exceptions=False)


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_render_prints_messages() -> None:
    proc = run_cli("render", "summarize@1", "--var", "article=The bridge reopened today.")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("[user]\nSummarize the news article")
    assert "Article: The bridge reopened today." in proc.stdout


def test_render_text_and_json_formats() -> None:
    text = invoke("render", "summarize@1", "--var", "article=X", "--format", "text")
    assert text.exit_code == 0
    assert text.output.endswith("Article: X\n\nSummary:\n")
    assert not text.output.startswith("[user]")
    as_json = invoke("render", "summarize_zh@1", "--var", "article=新闻", "--format", "json")
    messages = json.loads(as_json.output)
    assert messages[0]["role"] == "system" and messages[-1]["content"] == "新闻：新闻"


def test_render_through_a_label() -> None:
    labelled = invoke("render", "summarize@production", "--var", "article=X")
    exact = invoke("render", "summarize@2", "--var", "article=X")
    assert labelled.exit_code == 0 and labelled.output == exact.output
    assert labelled.output.count("Article:") == 3


def test_missing_variable_is_one_line_exit_2() -> None:
    proc = run_cli("render", "summarize@1")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "templates/summarize/v1.jinja:10:" in lines[0] and "'article'" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["render", "nope"], "unknown template 'nope'"),
        (["render", "summarize@9"], "has no version 9"),
        (["render", "summarize@staging"], "has no label 'staging'"),
        (["render", "summarize@1", "--var", "article"], "expected NAME=VALUE"),
    ],
)
def test_bad_references_exit_2(args: list[str], needle: str) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_vars_file_and_json_values(tmp_path: Path) -> None:
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_text("article: From a file.\n")
    result = invoke("render", "summarize@2", "--vars-file", str(vars_file), "--var",
                    'examples=[{"article": "A1", "summary": "S1"}]', "--format", "text")
    assert result.exit_code == 0
    assert "Article: A1\nSummary: S1\n\nArticle: From a file.\nSummary:" in result.output
    bad = invoke("render", "summarize@2", "--var", "article=x", "--var", "examples=[oops")
    assert bad.exit_code == 2 and "list input needs JSON" in bad.output


def test_templates_list_show_diff() -> None:
    listed = invoke("templates", "list")
    assert "summarize" in listed.output and "production→v2" in listed.output
    assert "summarization, en, few-shot" in listed.output  # the latest version's tags
    chinese = invoke("templates", "list", "--tag", "zh")
    assert "summarize_zh" in chinese.output and "summarize " not in chinese.output
    assert "math" in chinese.output
    shown = invoke("templates", "show", "summarize@production")
    assert shown.output.startswith("summarize@2  (")
    assert "sha256: " in shown.output and "input article: string, required" in shown.output
    diff = invoke("templates", "diff", "summarize@1", "summarize@2")
    assert diff.output.startswith("--- summarize@1")
    assert "+{% for example in examples %}" in diff.output
    tools = invoke("templates", "show", "assistant@1").output
    assert "tools: get_weather, create_event, web_search (from _tools/assistant.yaml)" in tools
    assert "output:" not in tools.split("\n\n")[0]
    output = invoke("templates", "show", "extract@2").output
    assert "output: a JSON Schema the answer must fit (OpenAI strict mode: yes)" in output


def test_check_fails_on_edited_locked_version_and_passes_when_restored(
    project_templates: Path,
) -> None:
    assert run_cli("templates", "check", "-t", str(project_templates)).returncode == 0
    path = project_templates / "summarize" / "v2.jinja"
    original = path.read_text()
    path.write_text(original.replace("at most 30 words", "at most 25 words"))
    proc = run_cli("templates", "check", "-t", str(project_templates))
    assert proc.returncode == 1
    assert "summarize/v2.jinja: changed since it was locked" in proc.stderr
    locked = run_cli("templates", "lock", "-t", str(project_templates))
    assert locked.returncode == 2 and "refusing to re-hash" in locked.stderr
    path.write_text(original)
    assert run_cli("templates", "check", "-t", str(project_templates)).returncode == 0


def test_lock_adds_new_versions(project_templates: Path) -> None:
    (project_templates / "summarize" / "v3.jinja").write_text(
        "---\ninputs: {article: string}\n---\nTL;DR {{ article }}\n")
    assert invoke("templates", "check", templates=project_templates).exit_code == 1
    locked = invoke("templates", "lock", templates=project_templates)
    assert "locked" in locked.output and "summarize/v3.jinja" in locked.output
    assert invoke("templates", "check", templates=project_templates).exit_code == 0


def test_help_is_the_docstring() -> None:
    result = CliRunner().invoke(cli, ["render", "--help"])
    assert "Render a template with variables and print it." in result.output
