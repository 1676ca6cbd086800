"""What a profile sends: prompts of an exact token count, an eval's prompts, the targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptkit.errors import ConfigError, PromptkitError
from promptkit.profiling.workload import build_targets, text_of_tokens
from promptkit.tokens import count_tokens


@pytest.mark.parametrize("tokens", [1, 256, 1024, 2048])
def test_synthetic_prompts_have_exactly_the_tokens_asked_for(tokens: int) -> None:
    texts = {text_of_tokens(tokens, offset=offset) for offset in (0, 37, 74, 5000)}
    assert len(texts) == 4  # each starts elsewhere: no prefix cache serves another
    assert all(count_tokens(text) == tokens for text in texts)
    assert count_tokens(text_of_tokens(tokens, "gpt-4o-mini")) == tokens


def test_base_url_gets_synthetic_prompts_of_each_size() -> None:
    (target,) = build_targets(base_url="http://127.0.0.1:9/v1", model="m",
                              input_tokens=[16, 32])
    assert target.provider.api == "chat"
    assert [w.label for w in target.workloads] == ["16 tokens", "32 tokens"]
    first, second = (target.workloads[0].body(i) for i in (0, 1))
    assert first["model"] == "m" and first["messages"][0]["role"] == "user"
    assert count_tokens(first["messages"][0]["content"]) == 16
    assert first["messages"] != second["messages"]
    (text,) = build_targets(base_url="http://127.0.0.1:9/v1", model="m", api="completions",
                            prompt_text="Say hi").pop().workloads
    assert text.body(0)["prompt"] == text.body(5)["prompt"] == "Say hi"
    (default,) = build_targets(base_url="http://127.0.0.1:9/v1", model="m")
    assert [w.input_tokens for w in default.workloads] == [256, 1024, 2048]


def test_an_eval_gives_its_providers_and_rendered_prompts(make_eval) -> None:
    spec = make_eval("http://127.0.0.1:9/v1")
    first, second = build_targets([str(spec)], limit=2)
    assert (first.name, second.name) == ("first", "second")
    (workload,) = first.workloads
    assert workload.label == "eval (4 prompts)"  # 2 cases × 2 prompts, then round again
    prompts = [workload.body(i)["prompt"] for i in range(5)]
    assert prompts[0] == "Hello Ann!" and prompts[4] == prompts[0]
    assert "Hello Bo! Hello Bo! " in prompts
    body = second.workloads[0].body(0)
    assert body["messages"][-1]["content"] == "Hello Ann!" and body["max_tokens"] == 5
    (only,) = build_targets([str(spec)], provider_ids=("second",), input_tokens=[8])
    assert only.name == "second" and only.workloads[0].label == "8 tokens"


@pytest.mark.parametrize(("options", "says"), [
    ({}, "nothing to profile"),
    ({"base_url": "http://127.0.0.1:9/v1"}, "--base-url and --model go together"),
    ({"model": "m", "api": "chat"}, "--base-url and --model go together"),
    ({"api_key_env": "KEY"}, "--api and --api-key-env apply to --base-url"),
    ({"base_url": "http://x/v1", "model": "m", "input_tokens": [8], "prompt_text": "hi"},
     "give one or the other"),
    ({"base_url": "http://x/v1", "model": "m", "limit": 3}, "apply to an eval spec"),
    ({"base_url": "ftp://x/v1", "model": "m"}, "--base-url: base_url must start with"),
    ({"base_url": "http://x/v1", "model": "m", "api_key_env": "sk-abcdef1234567890abcd"},
     "--api-key-env: api_key_env looks like an API key"),
])
def test_options_that_do_not_go_together_are_one_line(options: dict, says: str) -> None:
    with pytest.raises(PromptkitError) as error:
        build_targets(**options)
    assert says in str(error.value) and "\n" not in str(error.value)
    assert "sk-abcdef" not in str(error.value)


def test_a_missing_gguf_or_spec_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"local:/nowhere/x\.gguf: no such model file"):
        build_targets(["local:/nowhere/x.gguf"])
    with pytest.raises(PromptkitError, match=r"missing\.yaml"):
        build_targets([str(tmp_path / "missing.yaml")])


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_synthetic_bodies_carry_params_as_an_eval_sends_them(api: str) -> None:
    from promptkit.profiling.workload import fixed_workload, synthetic_workload
    from promptkit.running.providers import Provider

    provider = Provider(id="m", base_url="http://127.0.0.1:9/v1", model="m", api=api,
                        params={"temperature": 0, "stream": False, "tool_choice": "auto",
                                "extra_body": {"top_k": 5}})
    for body in (synthetic_workload(provider, 8).body(0), fixed_workload(provider, "hi").body(0)):
        assert body["temperature"] == 0 and body["top_k"] == 5
        assert "stream" not in body and "extra_body" not in body  # profile streams itself
        assert ("tool_choice" in body) is (api == "chat")  # no tools on /v1/completions
