"""Writing files so that a failure never leaves half a file behind.

:func:`atomic_write` writes beside the target under a temporary name and renames it over
the target only when complete, so a full disk or a crash keeps the old file whole.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import OutputError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """Open a text file to write ``path`` atomically (UTF-8; a lone surrogate in the
    text is written escaped rather than aborting the write).

    Raises:
        OutputError: the file cannot be written (exit 3); ``path`` is left as it was.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8", errors="backslashreplace",
                  newline="") as file:
            yield file
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
