"""Secrets stay secret: redaction itself, and a canary key on every path of a real run."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from promptkit.redact import MASK, add_secret, forget_secrets, redact, shorten, strip_userinfo
from promptkit.testing import FakeEndpoint, Reply

REPO = Path(__file__).parent.parent
KEY = "sk-canary-Zx9/Qe+7=Wv3Lk5Mn8Pb2Rt6"  # '/', '+' and '=' change under URL-encoding
PASSWORD = "pw-canary-Hs4Jd8Ku2"
HEADER = "hdr-canary-Gt5Yb7Nc1"


@pytest.fixture(autouse=True)
def _fresh_registry():
    forget_secrets()
    yield
    forget_secrets()


def forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote_plus(secret), secret.upper(), secret.lower()]


def test_every_form_of_a_secret_is_masked() -> None:
    add_secret(KEY)
    for form in forms(KEY):
        assert redact(f"error: {form}!") == f"error: {MASK}!"
    assert redact("nothing secret here") == "nothing secret here"


def test_short_values_are_not_treated_as_secrets() -> None:
    add_secret("abc")
    add_secret("unused")  # what a keyless provider passes
    assert redact("abc unused") == "abc unused"


def test_userinfo_is_stripped_and_its_password_becomes_a_secret() -> None:
    assert strip_userinfo(f"http://user:{PASSWORD}@127.0.0.1:8080/v1") == \
        "http://127.0.0.1:8080/v1"
    assert strip_userinfo("https://api.example.com/v1") == "https://api.example.com/v1"
    assert redact(f"refused: {PASSWORD}") == f"refused: {MASK}"
    basic = base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    assert redact(f"Authorization: Basic {basic}") == f"Authorization: Basic {MASK}"


def test_shorten_redacts_before_it_cuts() -> None:
    add_secret(KEY)
    assert shorten(f"error:\n  {KEY} refused", 22) == f"error: {MASK} ref…"
    # cut first, the key's first half would have survived
    assert shorten(f"{'x' * 10} {KEY}", 30) == f"{'x' * 10} {MASK}"
    assert shorten("short") == "short"


# -- the canary: one key on every path of a run, then every file and stream is searched --

SPEC = """\
templates: ../templates
prompts:
  - id: chat
    template: summarize@1
  - id: shots
    template: summarize@2
    fewshot: {{pool: pool.jsonl, k: 1, select: similar, fields: [article], var: examples,
              embeddings: embedder}}
providers:
  - id: chat-model
    base_url: http://user:{password}@127.0.0.1:{port}/v1
    model: m
    headers: {{X-Api-Secret: {header}}}
    retries: 0
  - id: text-model
    base_url: http://127.0.0.1:{port}/v1
    model: m
    api: completions
    api_key_env: PROMPTKIT_CANARY_KEY
    retries: 0
graders:
  - id: judge
    base_url: http://127.0.0.1:{port}/v1
    model: judge
    api_key_env: PROMPTKIT_CANARY_KEY
    retries: 0
  - id: embedder
    base_url: http://127.0.0.1:{port}/v1
    model: embed
    api_key_env: PROMPTKIT_CANARY_KEY
    retries: 0
dataset: data.jsonl
assert:
  - type: llm-judge
    provider: judge
    value: Is this a good summary?
  - type: similar
    provider: embedder
    expected: "{{{{ summary }}}}"
    threshold: 0.1
"""


def echo_the_key(request) -> Reply:
    """Every kind of request gets an answer that repeats what it was sent with."""
    auth = request.headers.get("authorization", "") + " " + request.headers.get(
        "x-api-secret", "")
    echoed = f"{auth} {quote(KEY, safe='')} {KEY.upper()}"
    text = request.prompt_text
    if request.body.get("model") == "judge":
        if "the third" in text:  # the judge is down when it grades the third case
            return Reply.status(503, body=f"judge down for {echoed}")
        return Reply.text(f'{{"pass": true, "score": 1, "reason": "key {echoed}"}}')
    if "first" in text:
        return Reply.status(401, body="x" * 280 + f" invalid key {echoed}")  # past the cut
    if "second" in text:
        return Reply.status(500, body=f"server error for {echoed}")
    case = "the third" if "third" in text else "a case"
    return Reply.text(f"A summary of {case} that leaks {echoed}")


def promptkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROMPTKIT_CANARY_KEY": KEY, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "promptkit.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def secrets_in(text: str) -> list[str]:
    found = []
    for secret in (KEY, PASSWORD, HEADER):
        for form in forms(secret):
            if form in text:
                found.append(form)
    basic = base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    return found + ([basic] if basic in text else [])


def test_a_canary_key_reaches_no_file_and_no_stream(tmp_path: Path,
                                                    endpoint: FakeEndpoint) -> None:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    evals = tmp_path / "evals"
    evals.mkdir()
    rows = [{"id": name, "article": f"The {name} article.", "summary": f"The {name}."}
            for name in ("first", "second", "third", "fourth")]
    (evals / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool = [{"article": f"Pool article {i}.", "summary": f"Pool {i}."} for i in range(3)]
    (evals / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    (evals / "eval.yaml").write_text(SPEC.format(port=endpoint.port, password=PASSWORD,
                                                 header=HEADER))
    endpoint.respond_with(echo_the_key)
    outputs = [str(tmp_path / f"report.{ext}") for ext in ("json", "jsonl", "csv", "xml",
                                                           "html")]
    streams = []
    dry = promptkit("eval", "evals/eval.yaml", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert endpoint.count == 0 and not endpoint.requests  # a dry run sends nothing at all
    streams.append(dry)

    # First, embeddings fail: the few-shot selection and the `similar` assertion both see
    # an error that echoes the key.
    endpoint.embeddings_reply = Reply.status(401, body=f"bad embeddings key {KEY} "
                                                       f"{quote(KEY, safe='')}")
    failing = promptkit("eval", "evals/eval.yaml", "--no-cache", "-o", outputs[0],
                        cwd=tmp_path)
    streams.append(failing)
    assert "Traceback" not in failing.stderr
    assert failing.returncode in (0, 1, 2, 3), failing.stderr
    endpoint.embeddings_reply = None

    run = promptkit("eval", "evals/eval.yaml", *(a for o in outputs for a in ("-o", o)),
                    cwd=tmp_path)
    streams.append(run)
    assert run.returncode in (0, 1), run.stderr
    assert "Traceback" not in run.stderr
    baseline = str(tmp_path / "baseline.json")
    streams.append(promptkit("baseline", "save", "--allow-unfinished", "-o", baseline,
                             cwd=tmp_path))
    streams.append(promptkit("compare", baseline, "last", "-o", str(tmp_path / "cmp.html"),
                             "-o", str(tmp_path / "cmp.json"), cwd=tmp_path))
    streams.append(promptkit("runs", "show", "last", cwd=tmp_path))
    streams.append(promptkit("runs", "list", cwd=tmp_path))
    # a key pasted where the variable name belongs is refused without being repeated
    streams.append(promptkit("eval", "evals/eval.yaml", "--base-url", endpoint.base_url,
                             "--model", "m", "--api-key-env", KEY, cwd=tmp_path))
    assert streams[-1].returncode == 2 and "looks like an API key" in streams[-1].stderr

    # The requests did carry the secrets (so their absence below means something) ...
    sent = " ".join(json.dumps(r.headers) for r in endpoint.requests)
    assert KEY in sent and HEADER in sent
    # ... the errors and outputs did hold them, redacted ...
    data = json.loads(Path(outputs[0]).read_text())
    errors = [r["error"] for r in data["results"] if r["error"]]
    assert any("[redacted]" in e for e in errors)
    assert any(r["error_kind"] == "grader" for r in data["results"])  # the judge outage
    # ... and no file or stream holds any form of any of them.
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "templates" not in p.parts
               and p.name != "eval.yaml"]  # the spec is the user's own file
    assert {p.name for p in written} >= {"runs.db", "cache.db", "baseline.json",
                                          "report.html", "report.csv", "cmp.html"}
    for path in written:
        assert not secrets_in(path.read_bytes().decode("utf-8", "replace")), path
    for proc in streams:
        assert not secrets_in(proc.stdout + proc.stderr), proc.args
