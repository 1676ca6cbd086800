"""The pytest plugin (entry point ``pytest11``): let an app's own ``pytest`` gate prompt changes.

Fixtures:

* ``prompt_templates`` — the project's :class:`~promptkit.templates.TemplateStore`, to
  assert on rendered prompts exactly as the app renders them;
* ``promptkit_eval`` — a function that runs an eval spec (optionally against a
  baseline) and returns an :class:`EvalResult` with ``assert_thresholds()``,
  ``assert_pass_rate()`` and ``assert_no_regression()``; a failed assertion prints the
  leaderboard and the cases that flipped.

Options (command line, or the same names in ``[tool.pytest.ini_options]`` with ``_``):
``--promptkit-templates DIR``, ``--promptkit-base-url URL``, ``--promptkit-model NAME``,
``--promptkit-api chat|completions``, ``--promptkit-no-cache``. The base URL and model point
every eval at one endpoint, as ``promptkit eval --base-url`` does.

Relative paths (the template folder, eval specs, baseline files, ``store_dir``) are
relative to pytest's root folder (``rootdir``: where ``pytest.ini`` or ``pyproject.toml``
is), not to the working directory, so an app's tests pass whichever folder pytest is
started from.

Only pytest and the standard library are imported until a fixture is used, so installing
promptkit costs other test suites nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .api import EvalReport
    from .comparing.comparison import Comparison
    from .reporting.summary import Row, Summary
    from .templates.store import TemplateStore

_OPTIONS = {
    "templates": "Template store folder for the prompt_templates fixture (default: templates).",
    "base_url": "Run every promptkit_eval against this OpenAI-compatible endpoint.",
    "model": "Model name for --promptkit-base-url.",
    "api": "API for --promptkit-base-url: chat or completions.",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("promptkit", "promptkit prompt evals")
    for name, help_text in _OPTIONS.items():
        group.addoption(f"--promptkit-{name.replace('_', '-')}", dest=f"promptkit_{name}",
                        metavar=name.upper(), help=help_text)
        parser.addini(f"promptkit_{name}", help_text)
    group.addoption("--promptkit-no-cache", action="store_true", dest="promptkit_no_cache",
                    help="Neither read nor write promptkit's response cache.")


def _option(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(f"promptkit_{name}")
    return value if value else (config.getini(f"promptkit_{name}") or None)


def _resolve(config: pytest.Config, path: str | Path) -> Path:
    """A relative path from pytest's root folder (``rootdir``: where pytest.ini or
    pyproject.toml is), so tests pass whichever folder pytest is started from; written
    relative to the working directory when it can be, as messages show it."""
    resolved = config.rootpath / path
    try:
        return Path(os.path.relpath(resolved))
    except ValueError:  # on another drive
        return resolved


def _baseline_ref(config: pytest.Config, baseline: str | Path | None) -> str | None:
    """A baseline file resolved like spec paths; a run id (``last``) as given."""
    if baseline is None:
        return None
    text = str(baseline)
    looks_like_file = (text.endswith(".json") or isinstance(baseline, Path)
                       or _resolve(config, text).exists())
    return str(_resolve(config, text)) if looks_like_file else text


@dataclass
class EvalResult:
    """An eval run from a test: its report, and assertions that fail with a readable one."""

    report: EvalReport

    @property
    def summary(self) -> Summary:
        return self.report.summary

    @property
    def comparison(self) -> Comparison | None:
        return self.report.comparison

    @property
    def run_id(self) -> str:
        return self.report.run.run_id

    @property
    def text(self) -> str:
        """The leaderboard (and comparison) as a Markdown summary: plain text that reads
        in a test report as it would on a pull request."""
        from .reporting.markdown import markdown_summary

        return markdown_summary(self.summary, self.comparison, title=self.report.title)

    def row(self, prompt: str, provider: str | None = None) -> Row:
        """The leaderboard row of a prompt id (and provider id, when there are several)."""
        rows = [r for r in self.summary.rows
                if r.prompt_id == prompt and provider in (None, r.provider_id)]
        if len(rows) != 1:
            labels = ", ".join(r.label for r in self.summary.rows)
            pytest.fail(f"{len(rows)} rows match prompt {prompt!r}"
                        + (f" provider {provider!r}" if provider else "")
                        + f"; rows: {labels}", pytrace=False)
        return rows[0]

    def _fail(self, headline: str) -> None:
        """Fail the test with ``headline``, the run's warnings and its summary."""
        warnings = "".join(f"\nwarning: {line}" for line in self.report.warnings)
        pytest.fail(f"{headline}{warnings}\n\n{self.text}", pytrace=False)

    def assert_thresholds(self) -> None:
        """Fail when a gate of the report failed (:meth:`EvalReport.failed_checks`: every
        row must reach the spec's ``threshold``) or a provider answered nothing."""
        failed = self.report.failed_checks()
        broken = self.report.failed_providers() + list(self.report.unreachable)
        if broken:
            failed.append(f"every request failed for provider(s) "
                          f"{', '.join(sorted(set(broken)))}")
        if failed:
            self._fail("FAILED " + "\nFAILED ".join(failed))

    def assert_pass_rate(self, minimum: float, prompt: str | None = None,
                         provider: str | None = None) -> None:
        """Fail when a row's pass rate is below ``minimum``.

        Every row is checked, or those of ``prompt`` (each of its providers: with several,
        each provider's row must reach ``minimum``) and/or ``provider``.
        """
        rows = [r for r in self.summary.rows
                if prompt in (None, r.prompt_id) and provider in (None, r.provider_id)]
        if not rows and (prompt or provider):
            labels = ", ".join(r.label for r in self.summary.rows)
            pytest.fail(f"no row of prompt {prompt!r}"
                        + (f" provider {provider!r}" if provider else "")
                        + f"; rows: {labels}", pytrace=False)
        low = [r for r in rows if r.pass_rate < minimum - 1e-9]
        if low:
            self._fail("pass rate below " f"{minimum:.0%}: " + ", ".join(
                f"{r.label} {r.pass_rate:.1%}" for r in low))

    def assert_no_regression(self) -> None:
        """Fail when the comparison with the baseline finds a significant regression."""
        from .reporting.console import flip_lines
        from .reporting.views import verdict_line

        if self.comparison is None:
            pytest.fail("assert_no_regression() needs promptkit_eval(..., baseline=...)",
                        pytrace=False)
        if self.comparison.regressed:
            lines = [verdict_line(self.comparison), "", *flip_lines(self.comparison, None)]
            self._fail("\n".join(lines))


@pytest.fixture
def prompt_templates(request: pytest.FixtureRequest) -> TemplateStore:
    """The project's template store (``--promptkit-templates``, default ``templates/``,
    relative to pytest's rootdir)."""
    from .errors import PromptkitError
    from .templates.store import TemplateStore

    folder = _option(request.config, "templates") or "templates"
    try:
        return TemplateStore(_resolve(request.config, folder))
    except PromptkitError as exc:
        error = f"promptkit: {exc} (set --promptkit-templates or promptkit_templates)"
    pytest.fail(error, pytrace=False)


@pytest.fixture
def promptkit_eval(request: pytest.FixtureRequest) -> Callable[..., EvalResult]:
    """A function running an eval spec: ``promptkit_eval("evals/x.yaml", baseline=...)``.

    Keyword arguments: ``baseline`` (a baseline file or run id), ``alpha``, ``limit``,
    ``prompts`` and ``providers`` (ids to keep), ``base_url``/``model``/``api`` (else the
    ``--promptkit-*`` options), ``store_dir``, ``use_cache``. The spec, a baseline file
    and ``store_dir`` may be relative to pytest's rootdir. Invalid input fails the test
    with promptkit's one-line message.
    """
    config = request.config

    def run(spec: str | Path, *, baseline: str | Path | None = None, alpha: float = 0.05,
            limit: int | None = None, prompts: tuple[str, ...] = (),
            providers: tuple[str, ...] = (), base_url: str | None = None,
            model: str | None = None, api: str | None = None,
            store_dir: str | Path | None = None, use_cache: bool | None = None) -> EvalResult:
        from .api import evaluate
        from .errors import PromptkitError

        base_url = base_url or _option(config, "base_url")
        try:
            report = evaluate(
                _resolve(config, spec), base_url=base_url,
                model=model or (_option(config, "model") if base_url else None),
                api=api or (_option(config, "api") if base_url else None),  # type: ignore[arg-type]
                prompts=prompts, providers=providers, limit=limit, alpha=alpha,
                use_cache=(not config.getoption("promptkit_no_cache")
                           if use_cache is None else use_cache),
                store_dir=None if store_dir is None else _resolve(config, store_dir),
                baseline=_baseline_ref(config, baseline))
        except PromptkitError as exc:
            error = f"promptkit: {exc}"
        else:
            return EvalResult(report)
        pytest.fail(error, pytrace=False)  # outside the except: no chained traceback

    return run


# --- fake_endpoint: promptkit.testing.FakeEndpoint as a fixture --------------------------------
# One server for the whole session (starting one per test would cost a thread and a port
# each), reset before every test so no script, responder or recorded request leaks between
# tests. promptkit.testing is imported only when a test asks for the fixture.


@pytest.fixture(scope="session")
def _promptkit_fake_endpoint_server() -> Any:
    """The session's one :class:`~promptkit.testing.FakeEndpoint`, started on first use."""
    from .testing import FakeEndpoint

    with FakeEndpoint() as server:
        yield server


@pytest.fixture
def fake_endpoint(_promptkit_fake_endpoint_server: Any) -> Any:
    """A scriptable OpenAI-compatible server on 127.0.0.1: a :class:`FakeEndpoint`.

    The session shares one server (one port: ``fake_endpoint.base_url``); before each test
    it is reset: empty script, no responder, ``default`` back to echo, no
    ``embeddings_reply``, no recorded requests, ``count`` 0.
    """
    _promptkit_fake_endpoint_server.reset()
    return _promptkit_fake_endpoint_server
