"""The ``fake_endpoint`` fixture as a user gets it: the installed plugin alone, no conftest."""

from __future__ import annotations

import pytest

USER_TESTS = '''
import threading

import openai
import pytest

from promptkit.testing import FakeEndpoint, Reply

seen = {}


def ask(endpoint, text):
    with openai.OpenAI(base_url=endpoint.base_url, api_key="test", max_retries=0) as sdk:
        messages = [{"role": "user", "content": text}]
        answer = sdk.chat.completions.create(model="m", messages=messages)
    return answer.choices[0].message.content


def test_0_no_server_until_a_test_asks_for_one():
    assert "promptkit-fake-endpoint" not in [t.name for t in threading.enumerate()]


def test_1_scripts_everything(fake_endpoint):
    assert isinstance(fake_endpoint, FakeEndpoint)
    seen["base_url"] = fake_endpoint.base_url
    fake_endpoint.script(Reply.text("scripted"), Reply.text("left over"))
    fake_endpoint.respond_with(lambda request: Reply.text("responder"))
    fake_endpoint.default = Reply.text("default")
    fake_endpoint.embeddings_reply = Reply.status(503)
    assert ask(fake_endpoint, "question") == "scripted"
    assert (fake_endpoint.count, fake_endpoint.pending) == (1, 1)


def test_2_fails_with_state_left_behind(fake_endpoint):
    fake_endpoint.script(Reply.status(500), Reply.status(500))
    fake_endpoint.default = Reply.hang()
    with pytest.raises(openai.InternalServerError):
        ask(fake_endpoint, "before failing")
    pytest.fail("on purpose, with a 500 still queued and a hanging default")


def test_3_starts_clean_on_the_same_server(fake_endpoint):
    assert fake_endpoint.base_url == seen["base_url"]  # one server for the session
    assert (fake_endpoint.pending, fake_endpoint.count, fake_endpoint.requests) == (0, 0, [])
    assert fake_endpoint.embeddings_reply is None
    assert ask(fake_endpoint, "echo me") == "echo me"  # no responder, default echo
    with openai.OpenAI(base_url=fake_endpoint.base_url, api_key="test", max_retries=0) as sdk:
        assert len(sdk.embeddings.create(model="e", input="a").data) == 1
    assert [r.prompt_text for r in fake_endpoint.requests] == ["echo me", "a"]
'''


def test_fake_endpoint_fixture_comes_from_the_plugin_and_is_reset_per_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_app=USER_TESTS)
    assert not list(pytester.path.rglob("conftest.py"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_2_fails_with_state_left_behind FAILED*",
                                 "*test_3_starts_clean_on_the_same_server PASSED*"])


def test_fake_endpoint_fixture_is_listed_and_gone_without_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    listed = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fixtures")
    listed.stdout.fnmatch_lines(["fake_endpoint -- *promptkit*pytest_plugin.py*",
                                 "*A scriptable OpenAI-compatible server on 127.0.0.1*"])
    pytester.makepyfile(test_app="def test_t(fake_endpoint):\n    pass\n")
    without = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:promptkit")
    without.assert_outcomes(errors=1)
    without.stdout.fnmatch_lines(["*fixture 'fake_endpoint' not found*"])
