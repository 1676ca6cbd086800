"""Fixtures of the fake endpoint's tests: a running FakeEndpoint and an openai SDK client."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from promptkit.testing import FakeEndpoint


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    with FakeEndpoint() as ep:
        yield ep


@pytest.fixture
def client(endpoint: FakeEndpoint) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=endpoint.base_url, api_key="test", max_retries=0) as sdk:
        yield sdk
