"""The ``promptkit`` command line: a thin layer over :mod:`promptkit.api` and presenters.

:mod:`.app` holds the group and shared options; each module registers its commands:
:mod:`.templates` (templates, render), :mod:`.evaluation` (eval, schema, serve),
:mod:`.runs` (runs, baseline, compare, ab), :mod:`.merge` (merge), :mod:`.project`
(init), :mod:`.exports` (export sft, export preference), :mod:`.profile` (profile),
:mod:`.optimize` (optimize); :mod:`.present` prints what they return.
"""

from . import batch as batch
from . import evaluation as evaluation
from . import exports as exports
from . import merge as merge
from . import optimize as optimize
from . import profile as profile
from . import project as project
from . import runs as runs
from . import templates as templates
from .app import cli as cli
from .app import main as main

__all__ = ["cli", "main"]
