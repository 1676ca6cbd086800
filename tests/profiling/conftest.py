"""Fixtures of the profile's tests: an eval of two providers and two prompts."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "data"

SPEC = """\
templates: store
prompts:
  - greet@1
  - id: twice
    template: greet@2
    vars: {{times: 2}}
providers:
  - id: first
    base_url: {base_url}
    model: m1
    api: completions
  - id: second
    base_url: {base_url}
    model: m2
    params: {{max_tokens: 5}}
cases:
  - {{id: a, name: Ann}}
  - {{id: b, name: Bo}}
  - {{id: c, name: Cy}}
"""


@pytest.fixture
def make_eval(tmp_path: Path) -> Callable[[str], Path]:
    """Writes an eval of two providers (completions, chat) and two prompts over three
    inline cases, its providers at ``base_url``; its path."""

    def make(base_url: str) -> Path:
        shutil.copytree(DATA / "store", tmp_path / "store", dirs_exist_ok=True)
        path = tmp_path / "eval.yaml"
        path.write_text(SPEC.format(base_url=base_url))
        return path

    return make
