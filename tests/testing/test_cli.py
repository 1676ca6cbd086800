"""Tests for promptkit.testing.cli: ``python -m promptkit.testing`` in its own process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import openai

import promptkit.testing
from promptkit.testing.cli import main

USER = [{"role": "user", "content": "What is the capital of France?"}]


@contextmanager
def serving(*args: str) -> Iterator[str]:
    """Run the command line server; yield the base URL it prints; stop it with SIGTERM."""
    command = [sys.executable, "-m", "promptkit.testing", "--port", "0", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            yield process.stdout.readline().strip()
        finally:
            process.terminate()  # SIGTERM: the server stops cleanly and exits 0
        assert process.wait(timeout=5) == 0


def test_command_line_server() -> None:
    with serving("--reply", "pong") as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        with openai.OpenAI(base_url=base_url, api_key="test", max_retries=0) as sdk:
            result = sdk.chat.completions.create(model="m", messages=USER)
        assert result.choices[0].message.content == "pong"


def test_command_line_latency_and_model() -> None:
    with serving("--latency", "0.3", "--model", "tiny") as base_url, \
            openai.OpenAI(base_url=base_url, api_key="test", max_retries=0) as sdk:
        assert [model.id for model in sdk.models.list()] == ["tiny"]
        started = time.monotonic()
        result = sdk.chat.completions.create(model="m", messages=USER)
        assert time.monotonic() - started >= 0.3
        assert result.choices[0].message.content == USER[0]["content"]  # echo by default


def test_main_is_exported_by_the_package() -> None:
    assert promptkit.testing.main is main
