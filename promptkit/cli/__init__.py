"""The ``promptkit`` command line (see :mod:`.commands`)."""

from .commands import cli as cli
from .commands import main as main

__all__ = ["cli", "main"]
