"""promptkit as an app's dependency: the README's "Use promptkit in your project" commands,
run as written in a separate app folder with a fresh virtualenv and a wheel (not editable,
without the [local] extra), then the app's own templates, an eval against the app's own
stand-in model, reports, and the app's pytest suite run from a subfolder."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
SECTION = "## Use promptkit in your project"

APP_MODULE = '''\
"""The app's stand-in model for its tests: a keyword classifier."""


def classify(request):
    review = request.prompt_text.rsplit("Review:", 1)[-1].lower()
    bad = ("cannot", "terrible", "ads", "lost", "freezes", "crash")
    return "negative" if any(word in review for word in bad) else "positive"
'''

APP_TESTS = '''\
def test_the_production_prompt_ends_with_the_review(prompt_templates):
    template = prompt_templates.get("classify@production")
    assert template.render_text(review="Nice").endswith("Review: Nice\\nSentiment:")
    assert prompt_templates.get("greet@1").render_text(name="Ada") == "Hello Ada!"


def test_the_classifier_eval_passes(promptkit_eval):
    result = promptkit_eval("evals/classify.yaml")
    result.assert_thresholds()
    result.assert_pass_rate(0.75, prompt="classify")
'''


def readme_commands() -> list[str]:
    """The runnable block of the README section: its second bash block, one command a line."""
    text = (REPO / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the section shows the install forms, then the wheel commands"
    # never the unrelated PyPI package: only promptkit-evals, paths and wheels
    assert not re.search(r'pip install (-\S+ )*"?promptkit(\[|"|\s|$)', "".join(blocks))
    return [line.split("  #")[0].strip() for line in blocks[1].splitlines() if line.strip()]


def checkout(target: Path) -> None:
    """The repository's files as a clean checkout has them (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to list the checkout")
def test_the_readme_install_section_in_a_fresh_venv_and_app(tmp_path: Path) -> None:
    checkout(tmp_path / "promptkit")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:/usr/bin:/bin", VIRTUAL_ENV=str(venv), COLUMNS="160")
    app = tmp_path / "app"
    app.mkdir()

    def run(command: str, cwd: Path = app, timeout: float = 600) -> str:
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    outputs = [run(command) for command in readme_commands()]
    assert "created templates/promptkit.lock" in "".join(outputs)
    assert outputs[-1].rstrip().endswith("Review: Works great\nSentiment:")

    # a real wheel, with what runs need, installed as files rather than a link to the source
    (wheel,) = (app / "dist").glob("promptkit_evals-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("promptkit/py.typed", "promptkit/reporting/templates/report.html",
                   "promptkit/scaffold/files/prompt-evals.yml"):
        assert needed in names
    where = run("python -c 'import promptkit; print(promptkit.__file__)'").strip()
    assert where.startswith(str(venv)), where
    assert "llama_cpp" not in run("pip list --format=freeze")  # no [local] extra

    # the app's own template: lock, check, render
    (app / "templates" / "greet").mkdir()
    (app / "templates" / "greet" / "v1.jinja").write_text(
        "---\ninputs:\n  name: {type: string}\n---\nHello {{ name }}!")
    assert "locked templates/greet/v1.jinja" in run("promptkit templates lock")
    run("promptkit templates check")
    assert run("promptkit render greet@1 --var name=Ada --format text").strip() == "Hello Ada!"

    # the eval (its prompt has its own assertion) against the app's stand-in model
    (app / "app_module.py").write_text(APP_MODULE)
    port = free_port()
    server = subprocess.Popen(
        [str(venv / "bin" / "python"), "-m", "promptkit.testing", "--port", str(port),
         "--responder", "app_module:classify"], cwd=app, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            assert time.monotonic() < deadline and server.poll() is None, server.stderr.read()
            time.sleep(0.1)
        base = f"--base-url http://127.0.0.1:{port}/v1 --model fake"
        shown = run(f"promptkit eval evals/classify.yaml {base} -o report.html -o summary.md "
                    "-o results.json")
        assert "threshold 75% met by every row" in shown
        results = json.loads((app / "results.json").read_text())["results"]
        assert len(results) == 8 and all(r["passed"] for r in results)
        assert "max-words" in [a["type"] for a in results[0]["assertions"]]  # the prompt's own
        assert "<html" in (app / "report.html").read_text()[:500].lower()
        assert "| classify | fake |" in (app / "summary.md").read_text()

        # the app's pytest suite, run from a subfolder
        run("pip install -q pytest", timeout=300)
        (app / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
        (app / "tests").mkdir()
        (app / "tests" / "test_prompts.py").write_text(APP_TESTS)
        suite = run(f"python -m pytest -q -p no:cacheprovider --promptkit-base-url "
                    f"http://127.0.0.1:{port}/v1 --promptkit-model fake", cwd=app / "tests")
        assert "2 passed" in suite
    finally:
        server.terminate()
        server.wait(timeout=10)
