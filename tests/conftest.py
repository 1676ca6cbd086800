"""Shared fixtures: copies of the test template stores, so tests may edit them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A writable copy of tests/data/store, plus a symlink that points out of it."""
    root = tmp_path / "store"
    shutil.copytree(DATA / "store", root)
    (tmp_path / "secret.txt").write_text("TOP SECRET\n")
    link_dir = root / "include_link"
    link_dir.mkdir()
    (link_dir / "escape.jinja").symlink_to(tmp_path / "secret.txt")
    (link_dir / "v1.jinja").write_text('{% include "include_link/escape.jinja" %}\n')
    return root


@pytest.fixture
def store(store_dir: Path):
    from promptkit import TemplateStore

    return TemplateStore(store_dir)


@pytest.fixture
def project_templates(tmp_path: Path) -> Path:
    """A writable copy of the project's own templates/ folder."""
    root = tmp_path / "templates"
    shutil.copytree(REPO / "templates", root)
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the repo's templates and evals, as a user's project."""
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    shutil.copytree(REPO / "evals", tmp_path / "evals",
                    ignore=shutil.ignore_patterns(".promptkit"))
    return tmp_path


@pytest.fixture
def endpoint(fake_endpoint):
    """The session's test endpoint, reset before each test: promptkit's own ``fake_endpoint``
    fixture (from promptkit.pytest_plugin) under the name the tests use."""
    return fake_endpoint


pytest_plugins = ["pytester"]  # tests/test_pytest_plugin.py runs pytest on user projects
