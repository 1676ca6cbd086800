"""The exceptions promptkit raises.

Every error promptkit raises on purpose derives from :class:`PromptkitError`; the CLI
turns any of them into one line on stderr and the exit code of its branch
(``exit_code``): invalid input is 2, a run that could not complete is 3. A failed gate
(threshold, regression, max-drop) is not an exception but a result: exit 1.

::

    PromptkitError                    exit 2: invalid input
    ├── TemplateError                 file and line when known
    │   ├── TemplateNotFoundError     unknown name, version or label
    │   ├── TemplateSyntaxError       the Jinja source does not parse
    │   ├── TemplateRenderError       missing variable, bad value, output too large
    │   │   └── TemplateSecurityError a sandbox rule was broken
    │   └── TemplateLockError         a locked version changed
    ├── ConfigError                   invalid YAML/JSON/CSV input: file, line, key path
    └── RunError                      exit 3: the run did not complete
        ├── EndpointError             an endpoint never answered
        ├── LocalServerError          the embedded llama.cpp server failed or died
        ├── StoreError                the run store or cache cannot be written
        └── OutputError               an output file cannot be written

Warnings go through :func:`warn`, in promptkit's own categories::

    PromptkitWarning (UserWarning)    it worked, but not quite as asked (a fallback, ...)
    └── PromptkitDeprecationWarning   an old name, still accepted for one release

Inside :func:`collecting_warnings` (what :func:`promptkit.evaluate` runs in) they are
collected for the caller instead of shown; other libraries' warnings are left alone.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from contextvars import ContextVar


class ExitCode:
    """Process exit codes (SPEC §6)."""

    OK = 0
    FAILED = 1  # a gate failed: threshold, regression or max-drop
    INVALID_INPUT = 2  # bad YAML, unknown template, missing variable, ...
    RUN_INCOMPLETE = 3  # the run did not complete: endpoint, local server, store, output


class PromptkitError(Exception):
    """Base class of every error promptkit raises on purpose: invalid input (exit 2).

    Attributes:
        warnings: The warnings :func:`promptkit.evaluate` had collected when it raised
            this error (a deprecated key before a failure, say), for the caller to show.
    """

    exit_code: int = ExitCode.INVALID_INPUT
    warnings: tuple[str, ...] = ()


class GraderOutage(Exception):
    """A grader (a judge or an embeddings provider) did not answer.

    Not a :class:`PromptkitError`: it never reaches the user. The runner records the case
    as a ``grader`` outage, which comparisons leave out like an endpoint outage, since it
    says nothing about the prompt. The message is already redacted.
    """


class RunError(PromptkitError):
    """The run did not complete for a reason outside the user's input (exit 3)."""

    exit_code = ExitCode.RUN_INCOMPLETE


class EndpointError(RunError):
    """An endpoint could not be reached, or answered no request."""


class LocalServerError(RunError):
    """The embedded llama.cpp server did not start, or died while serving."""


class StoreError(RunError):
    """The run store or the response cache cannot be written (disk full, read-only)."""


class OutputError(RunError):
    """An output file (``-o``, a baseline) cannot be written."""


class TemplateError(PromptkitError):
    """A problem with a template, located by file and line when known.

    Args:
        message: What is wrong, without the location.
        filename: The template file, as the user would type it.
        lineno: The 1-based line in that file.
    """

    def __init__(self, message: str, filename: str | None = None, lineno: int | None = None):
        self.message = message
        self.filename = filename
        self.lineno = lineno
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.filename and self.lineno:
            return f"{self.filename}:{self.lineno}: {self.message}"
        if self.filename:
            return f"{self.filename}: {self.message}"
        return self.message


class TemplateNotFoundError(TemplateError):
    """No template, version or label matches a reference."""


class TemplateSyntaxError(TemplateError):
    """The template source (front matter or Jinja body) does not parse."""


class TemplateRenderError(TemplateError):
    """Rendering failed: a missing or invalid variable, or output over the size cap."""


class TemplateSecurityError(TemplateRenderError):
    """The template tried something the sandbox forbids."""


class TemplateLockError(TemplateError):
    """A version recorded in ``promptkit.lock`` no longer matches its file."""


class ConfigError(PromptkitError):
    """Invalid configuration or data, located by file, line and key path.

    Args:
        message: What is wrong.
        filename: The file holding the bad value.
        lineno: The 1-based line of the value, when known.
        key_path: Where the value sits, e.g. ``providers[1].base_url``.
    """

    def __init__(
        self,
        message: str,
        filename: str | None = None,
        lineno: int | None = None,
        key_path: str | None = None,
    ):
        self.message = message
        self.filename = filename
        self.lineno = lineno
        self.key_path = key_path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.filename:
            where = f"{self.filename}:{self.lineno}: " if self.lineno else f"{self.filename}: "
        key = f"{self.key_path}: " if self.key_path else ""
        return f"{where}{key}{self.message}"


class PromptkitWarning(UserWarning):
    """Something worked, but not quite as asked: a token count that fell back to another
    encoding, a few-shot budget no example fits."""


class PromptkitDeprecationWarning(PromptkitWarning, DeprecationWarning):
    """An old name, still accepted for one release."""


# The list the innermost collecting_warnings() block fills, in this context: asyncio tasks
# started inside it share the list; a thread must be started with a copy of the context.
_collected: ContextVar[list[str] | None] = ContextVar("promptkit_warnings", default=None)


def warn(message: str, category: type[PromptkitWarning] = PromptkitWarning,
         stacklevel: int = 1) -> None:
    """Give a warning: into the list of the :func:`collecting_warnings` block around this
    call (once per message), else through :func:`warnings.warn`.

    Args:
        message: What to say.
        category: A promptkit warning class.
        stacklevel: As for :func:`warnings.warn`, counted from the caller of this function.
    """
    collected = _collected.get()
    if collected is None:
        warnings.warn(message, category, stacklevel=stacklevel + 1)
    elif message not in collected:
        collected.append(message)


def collecting() -> list[str] | None:
    """The list the :func:`collecting_warnings` block around this call fills, if any."""
    return _collected.get()


@contextlib.contextmanager
def collecting_warnings() -> Iterator[list[str]]:
    """Collect promptkit's warnings given inside the block, in order and without repeats,
    instead of showing them: a library call prints nothing. Warnings of other libraries
    are not touched."""
    collected: list[str] = []
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)
