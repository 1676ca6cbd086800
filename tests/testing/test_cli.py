"""Tests for promptkit.testing.cli: ``python -m promptkit.testing`` in its own process."""

from __future__ import annotations

import errno
import importlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

import promptkit.testing
from promptkit.testing import FakeEndpoint
from promptkit.testing.cli import main

USER = [{"role": "user", "content": "What is the capital of France?"}]
README = Path(__file__).parent.parent.parent / "README.md"
PROG = "python -m promptkit.testing"

# A user's responder module, one answer of each type of the contract.
RESPONDER_MODULE = '''
from promptkit.testing import Reply

TOOL_CALL = {
    "id": "chatcmpl-tool", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}],
    }}],
}


def answer(request):
    prompt = request.prompt_text
    if prompt.startswith("text"):
        return f"you said {prompt} to {request.path}"
    if prompt.startswith("dict"):
        return TOOL_CALL
    if prompt.startswith("tools"):
        return {"tool_calls": [{"name": "weather", "arguments": {"city": prompt.split()[-1]}}]}
    if prompt.startswith("reply"):
        return Reply.status(503, body="scripted outage")
    if prompt.startswith("number"):
        return 42
    return None
'''


@contextmanager
def serving(
    *args: str, cwd: Path | None = None, stderr: list[str] | None = None, api_key: str = "test"
) -> Iterator[openai.OpenAI]:
    """Run the command line server; yield an SDK client for it; stop it with SIGTERM.

    Given a list, ``stderr`` gets the lines the server printed there, once it has stopped.
    """
    command = [sys.executable, "-m", "promptkit.testing", "--port", "0", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=cwd,
                          stderr=None if stderr is None else subprocess.PIPE) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            with openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0) as sdk:
                yield sdk
        finally:
            process.terminate()  # SIGTERM: the server stops cleanly and exits 0
            if stderr is not None:
                assert process.stderr is not None
                stderr.extend(process.stderr.read().splitlines())
        assert process.wait(timeout=5) == 0


def ask(sdk: openai.OpenAI, content: str, **kwargs):
    messages = [{"role": "user", "content": content}]
    return sdk.chat.completions.create(model="m", messages=messages, **kwargs)


def text_of(sdk: openai.OpenAI, content: str) -> str | None:
    return ask(sdk, content).choices[0].message.content


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a module into tmp_path; return a function importing it in this process too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    written: list[str] = []

    def write(name: str, source: str):
        (tmp_path / f"{name}.py").write_text(source)
        written.append(name)
        return lambda: importlib.import_module(name)

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_command_line_server() -> None:
    with serving("--reply", "pong") as sdk:
        assert text_of(sdk, "ping") == "pong"


def test_command_line_latency_and_model() -> None:
    with serving("--latency", "0.3", "--model", "tiny") as sdk:
        assert [model.id for model in sdk.models.list()] == ["tiny"]
        started = time.monotonic()
        result = sdk.chat.completions.create(model="m", messages=USER)
        assert time.monotonic() - started >= 0.3
        assert result.choices[0].message.content == USER[0]["content"]  # echo by default


def test_main_is_exported_by_the_package() -> None:
    assert promptkit.testing.main is main


def test_help_shows_script_and_responder_with_the_contract(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "--script FILE.jsonl" in shown and "--responder MODULE:FUNCTION" in shown
    assert ("returns a str (the answer text), a dict (the response body, sent as given; "
            "streamed requests get a chat completion as its chunks), a dict "
            '{"tool_calls": [...]} (a tool-call reply, as a --script line), a '
            "promptkit.testing.Reply, or None (the default answer)") in shown
    assert (".messages, .last_user_message, .tool_results keyed by tool_call_id and by "
            "function name, .turn = assistant messages so far + 1") in shown
    assert '{"kind": "status", "code": 429, "retry_after": 1} or {"content": "Paris"}' in shown
    assert ('{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]} '
            '(kind "tool_calls" when omitted; arguments given as a string are sent as is; '
            'ids call_1, call_2...) or {"kind": "json", "value": {"city": "Paris"}}') in shown


def test_the_responder_is_imported_from_the_current_directory(user_module) -> None:
    user_module("replies_app", RESPONDER_MODULE)
    with serving("--responder", "replies_app:answer", "--reply", "default",
                 cwd=Path.cwd()) as sdk:
        assert text_of(sdk, "text hi") == "you said text hi to /v1/chat/completions"
        call = ask(sdk, "dict").choices[0].message.tool_calls[0]  # the dict, as given
        assert (call.id, call.function.name) == ("call_1", "weather")
        dict_prompt = [{"role": "user", "content": "dict"}]
        with sdk.chat.completions.stream(model="m", messages=dict_prompt) as stream:
            streamed = stream.get_final_completion()  # the dict, as its chunks
        assert streamed.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'
        with pytest.raises(openai.InternalServerError, match="scripted outage"):
            ask(sdk, "reply")
        with pytest.raises(openai.InternalServerError, match="returned int: return a str"):
            ask(sdk, "number")
        assert text_of(sdk, "anything else") == "default"  # None


@pytest.mark.parametrize("define", ["def", "async def"])
def test_latency_delays_the_responders_text_answers(user_module, define: str) -> None:
    user_module("slow_app", f"{define} answer(request):\n    return 'late'\n")
    with serving("--responder", "slow_app:answer", "--latency", "0.3", cwd=Path.cwd()) as sdk:
        started = time.monotonic()
        assert text_of(sdk, "hi") == "late"
        assert time.monotonic() - started >= 0.3


def test_with_latency_a_dict_json_cannot_encode_is_still_a_500_saying_why(user_module) -> None:
    user_module("set_app", "def answer(request):\n    return {'answer': {'a set'}}\n")
    with serving("--responder", "set_app:answer", "--latency", "0.1", cwd=Path.cwd()) as sdk, \
            pytest.raises(openai.InternalServerError) as caught:
        ask(sdk, "hi")
    assert caught.value.body["message"] == ("the responder's answer cannot be sent: "
                                            "Object of type set is not JSON serializable")


def test_one_responder_function_answers_alike_from_the_command_line_and_respond_with(
    user_module,
) -> None:
    module = user_module("replies_app", RESPONDER_MODULE)()
    prompts = ["text a", "dict", "tools Rome", "anything else"]
    with FakeEndpoint(default=promptkit.testing.Reply.text("default")) as endpoint, \
            openai.OpenAI(base_url=endpoint.base_url, api_key="t", max_retries=0) as sdk:
        endpoint.respond_with(module.answer)  # the very function the command line imports
        in_process = [ask(sdk, prompt).choices[0].message.model_dump() for prompt in prompts]
    with serving("--responder", "replies_app:answer", "--reply", "default",
                 cwd=Path.cwd()) as sdk:
        from_shell = [ask(sdk, prompt).choices[0].message.model_dump() for prompt in prompts]
    assert in_process == from_shell
    assert in_process[0]["content"] == "you said text a to /v1/chat/completions"
    assert in_process[2]["tool_calls"][0]["function"] == {"name": "weather",
                                                         "arguments": '{"city": "Rome"}'}


def test_the_readme_classifier_answers_alike_from_the_command_line_and_respond_with(
    user_module,
) -> None:
    source = re.search(r"```python\n(# app_module\.py.*?)```", README.read_text(), re.S)
    assert source, "README.md's classifier example"
    classify = user_module("app_module", source.group(1))().classify
    reviews = ["I love it, great value", "Awful: it came broken", "It is a chair"]
    with FakeEndpoint() as endpoint, \
            openai.OpenAI(base_url=endpoint.base_url, api_key="t", max_retries=0) as sdk:
        endpoint.respond_with(classify)
        in_process = [text_of(sdk, review) for review in reviews]
    with serving("--responder", "app_module:classify", cwd=Path.cwd()) as sdk:
        from_shell = [text_of(sdk, review) for review in reviews]
    assert in_process == from_shell == ["positive", "negative", "neutral"]


# An async responder (awaited, with no "never awaited" warning) that fails three ways.
FAILING_MODULE = '''
import asyncio


async def answer(request):
    await asyncio.sleep(0)
    prompt = request.last_user_message
    if prompt == "raise":
        raise KeyError("x")
    if prompt == "number":
        return 42
    if prompt == "nan":
        message = {"role": "assistant", "content": "x"}
        return {"choices": [{"index": 0, "message": message}], "score": float("nan")}
    return f"async {prompt}"
'''


def test_each_responder_failure_is_one_line_on_stderr_without_headers(user_module) -> None:
    user_module("failing_app", FAILING_MODULE)
    printed: list[str] = []
    sent: list[str] = []
    with serving("--responder", "failing_app:answer", cwd=Path.cwd(), stderr=printed,
                 api_key="sk-secret-1234") as sdk:
        assert text_of(sdk, "hi") == "async hi"
        for prompt, stream in [("raise", False), ("number", True), ("nan", False), ("nan", True)]:
            with pytest.raises(openai.InternalServerError) as caught:
                ask(sdk, prompt, stream=stream)
            sent.append(caught.value.body["message"])
        assert text_of(sdk, "still serving") == "async still serving"
    assert sent[:2] == ["the responder raised KeyError('x')",
                        "the responder returned int: return a str, a dict, a Reply or None"]
    assert all(message.startswith("the responder's answer cannot be sent: Out of range float "
                                  "values are not JSON compliant") for message in sent[2:])
    assert printed == [f"responder error on POST /v1/chat/completions: {message}"
                       for message in sent]  # one line each: no traceback, no warning
    assert "sk-secret-1234" not in "\n".join(printed)


SCRIPT = [
    {"kind": "status", "code": 429, "retry_after": 1},
    {"content": "Paris"},
    {"kind": "text", "content": ["42", "41"], "finish_reason": "length"},
    {"kind": "raw", "body": {"choices": [{"index": 0, "message": {"content": "raw body"}}]}},
    {"kind": "events", "events": [{"choices": [{"index": 0, "delta": {"content": "ev"}}]}]},
    {"kind": "html", "status": 502},
    {"kind": "malformed_json"},
]


def test_script_lines_are_replayed_in_order_then_the_responder_then_the_default(
    user_module,
) -> None:
    (Path.cwd() / "replies.jsonl").write_text("\n".join(map(json.dumps, SCRIPT)) + "\n\n")
    user_module("replies_app", RESPONDER_MODULE)
    with serving("--script", "replies.jsonl", "--responder", "replies_app:answer",
                 "--reply", "default", cwd=Path.cwd()) as sdk:
        with pytest.raises(openai.RateLimitError) as limited:
            ask(sdk, "text 1")
        assert limited.value.response.headers["retry-after"] == "1"
        assert text_of(sdk, "text 2") == "Paris"
        voted = ask(sdk, "text 3", n=2)
        assert [c.message.content for c in voted.choices] == ["42", "41"]
        assert voted.choices[0].finish_reason == "length"
        assert text_of(sdk, "text 4") == "raw body"
        assert [c.choices[0].delta.content for c in ask(sdk, "text 5", stream=True)] == ["ev"]
        with pytest.raises(openai.InternalServerError):
            ask(sdk, "text 6")
        with pytest.raises(json.JSONDecodeError):
            ask(sdk, "text 7")
        assert text_of(sdk, "text 8") == "you said text 8 to /v1/chat/completions"
        assert text_of(sdk, "anything else") == "default"


TOOL_SCRIPT = [
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                    {"name": "get_time", "arguments": {"zone": "Europe/Paris"}}]},
    {"tool_calls": [{"name": "get_weather", "arguments": '{"city": '}], "text": "Checking."},
    {"kind": "json", "value": {"city": "Paris", "sunny": True}},
    {"kind": "tool_calls", "tool_calls": [{"name": "get_time", "id": "call_mine"}]},
]


def test_script_lines_can_call_tools_and_answer_json(tmp_path: Path) -> None:
    script = tmp_path / "tools.jsonl"
    script.write_text("\n".join(map(json.dumps, TOOL_SCRIPT)) + "\n")
    with serving("--script", str(script)) as sdk:
        choice = ask(sdk, "weather and time?").choices[0]
        assert choice.finish_reason == "tool_calls"
        assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls] \
            == [("call_1", "get_weather", '{"city": "Paris"}'),
                ("call_2", "get_time", '{"zone": "Europe/Paris"}')]
        with sdk.chat.completions.stream(model="m", messages=USER) as stream:
            streamed = stream.get_final_completion().choices[0].message
        assert streamed.content == "Checking."
        assert streamed.tool_calls[0].function.arguments == '{"city": '  # sent as is
        assert json.loads(text_of(sdk, "json") or "") == {"city": "Paris", "sunny": True}
        chunks = list(ask(sdk, "time?", stream=True))
        header = chunks[0].choices[0].delta.tool_calls[0]
        assert (header.id, header.function.name) == ("call_mine", "get_time")


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        (['{"content": "a"}', '{"kind": "txt"}'],
         "2: unknown kind 'txt' (kinds: text, json, tool_calls, echo,"),
        (['{"content": "a"}', "", '{"content": '], "3: not JSON: Expecting value (column 13)"),
        (['["Paris"]'], '1: expected a JSON object like {"content": "Paris"}'),
        (['{"kind": "status", "code": 429, "retry-after": 1}'],
         "1: status: unknown key 'retry-after' (keys: code, body, retry_after, headers, latency)"),
        (['{"kind": "raw"}'], "1: raw: missing 'body'"),
        (['{"latency": "1", "content": "a"}'], "1: text: 'latency' must be a number, not a string"),
        (['{"tool_calls": [{"name": "f", "args": {}}]}'],
         "1: tool_calls[0]: unknown key 'args' (keys: name, arguments, id)"),
        (['{"content": "a"}', '{"kind": "raw", "body": "{}", "headers": {"x-a": "1\\r\\nx-b: 2"}}'],
         "2: raw: headers: 'x-a': '1\\r\\nx-b: 2' cannot be sent in an HTTP header (Latin-1 "
         "text without CR, LF or other control characters)"),
        (['{"kind": "status", "code": 503, "headers": {"retry after": "1"}}'],
         "1: status: headers: 'retry after' is not an HTTP header name"),
        (['{"kind": "raw", "body": {"score": NaN}}'], "1: not JSON: NaN is not a JSON value"),
        (['{"content": "a", "latency": -Infinity}'], "1: not JSON: -Infinity is not a JSON value"),
    ],
)
def test_a_bad_script_line_is_one_line_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], error: str
) -> None:
    script = tmp_path / "replies.jsonl"
    script.write_text("\n".join(lines) + "\n")
    assert main(["--script", str(script)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{PROG}: error: {script}:{error}")
    assert captured.err.count("\n") == 1


def test_a_missing_or_binary_script_is_one_line_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jsonl"
    assert main(["--script", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"{PROG}: error: {missing}: cannot read the script: No such file or directory\n"
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b'{"content": "a"}\n\xff\xfe\n')
    assert main(["--script", str(binary)]) == 2
    assert capsys.readouterr().err == f"{PROG}: error: {binary}:2: not UTF-8 text\n"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("classify", "--responder 'classify': expected MODULE:FUNCTION, e.g. app:classify"),
        ("app:", "--responder 'app:': expected MODULE:FUNCTION"),
        ("no_such_app:classify", "--responder no_such_app:classify: cannot import no_such_app: "
                                 "ModuleNotFoundError: No module named 'no_such_app'"),
        ("pk_broken_app:classify", "--responder pk_broken_app:classify: cannot import "
                                   "pk_broken_app: SyntaxError: "),
        ("pk_user_app:missing", "--responder pk_user_app:missing: pk_user_app has no missing"),
        ("pk_user_app:LABELS", "--responder pk_user_app:LABELS: LABELS is not callable "
                               "(it is a list)"),
        ("pk_user_app:two", "--responder pk_user_app:two: two must take one argument"),
        ("pk_exit_app:classify", "--responder pk_exit_app:classify: cannot import pk_exit_app: "
                                 "SystemExit(0)"),
        ("evals/fake_model.py:classify", "--responder takes module:function; for "
         "evals/fake_model.py run it from evals/ as fake_model:classify, or use "
         "evals.fake_model:classify"),
        ("./app/agents/weather:Agent.answer", "--responder takes module:function; for "
         "./app/agents/weather run it from app/agents/ as weather:Agent.answer, or use "
         "app.agents.weather:Agent.answer"),
        ("my-evals/fake_model.py:classify", "--responder takes module:function; for "
         "my-evals/fake_model.py run it from my-evals/ as fake_model:classify\n"),
        ("/srv/evals/fake_model.py:classify", "--responder takes module:function; for "
         "/srv/evals/fake_model.py run it from /srv/evals/ as fake_model:classify\n"),
        ("pk_user_app.py:two", "--responder takes module:function; for pk_user_app.py use "
                               "pk_user_app:two\n"),
    ],
)
def test_a_bad_responder_spec_is_one_line_and_exit_code_2(
    user_module, capsys: pytest.CaptureFixture[str], spec: str, error: str
) -> None:
    user_module("pk_broken_app", "def classify(request)\n    return 'x'\n")
    user_module("pk_user_app", "LABELS = []\ndef two(a, b):\n    pass\n"
                               "class Labels:\n    def classify(request):\n        pass\n")
    user_module("pk_exit_app", "import sys\nsys.exit(0)\n")
    assert main(["--responder", spec]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{PROG}: error: {error}")
    assert captured.err.count("\n") == 1


def test_a_dotted_function_name_is_found(user_module) -> None:
    from promptkit.testing.cli import load_responder

    module = user_module("pk_user_app", "class Labels:\n    def classify(request):\n"
                                        "        return 'x'\n")()
    assert load_responder("pk_user_app:Labels.classify") is module.Labels.classify


def test_the_command_line_exits_2_before_serving(tmp_path: Path) -> None:
    (tmp_path / "replies.jsonl").write_text('{"kind": "hang", "latency": 1}\n')
    (tmp_path / "exit_app.py").write_text("import sys\nsys.exit(0)\ndef answer(request): pass\n")
    for option in (["--responder", "no_such_app:classify"], ["--script", "replies.jsonl"],
                   ["--responder", "exit_app:answer"], ["--responder", "./exit_app.py:answer"]):
        done = subprocess.run([sys.executable, "-m", "promptkit.testing", "--port", "0", *option],
                              cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"{PROG}: error: ")


def run_command_line(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m promptkit.testing ARGS`` to its end (it must not start serving)."""
    return subprocess.run([sys.executable, "-m", "promptkit.testing", *args],
                          capture_output=True, text=True, timeout=30)


def test_a_port_in_use_is_one_line_naming_it_and_exit_code_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_command_line("--port", str(port))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"{PROG}: error: cannot listen on 127.0.0.1 port {port}: address "
                           "already in use (choose another --port, or 0 for a free one)\n")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--port", "70000"], "argument --port: expected a port number from 0 to 65535 "
                              "(0 picks a free one), not '70000' (see --help)"),
        (["--port", "-1"], "argument --port: expected a port number from 0 to 65535 "
                           "(0 picks a free one), not '-1' (see --help)"),
        (["--port", "http"], "argument --port: expected a port number from 0 to 65535 "
                             "(0 picks a free one), not 'http' (see --help)"),
        (["--host", "", "--port", "0"], "argument --host: expected an address to listen on, "
                                        "e.g. 127.0.0.1 or 0.0.0.0, not '' (see --help)"),
        # TEST-NET-1 (RFC 5737): an address no machine of ours has
        (["--host", "192.0.2.1", "--port", "8123"],
         f"cannot listen on 192.0.2.1 port 8123: {os.strerror(errno.EADDRNOTAVAIL)}"),
    ],
)
def test_an_invalid_port_or_host_is_one_line_and_exit_code_2(args: list[str], error: str) -> None:
    done = run_command_line(*args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"{PROG}: error: {error}\n"  # one line, no traceback
