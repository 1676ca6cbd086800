"""The exceptions promptkit raises.

Every error a user can cause derives from :class:`PromptkitError`; the CLI turns
any of them into one line on stderr and exit code 2 (``ExitCode.INVALID_INPUT``).

::

    PromptkitError
    ├── TemplateError                 file and line when known
    │   ├── TemplateNotFoundError     unknown name, version or label
    │   ├── TemplateSyntaxError       the Jinja source does not parse
    │   ├── TemplateRenderError       missing variable, bad value, output too large
    │   │   └── TemplateSecurityError a sandbox rule was broken
    │   └── TemplateLockError         a locked version changed
    └── ConfigError                   invalid YAML/JSON/CSV input: file, line, key path
"""

from __future__ import annotations


class ExitCode:
    """Process exit codes (SPEC §6)."""

    OK = 0
    FAILED = 1  # a threshold, check or regression gate failed
    INVALID_INPUT = 2  # bad YAML, unknown template, missing variable, ...
    RUN_INCOMPLETE = 3  # the run could not complete (endpoint unreachable)


class PromptkitError(Exception):
    """Base class of every error promptkit raises on purpose."""


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
