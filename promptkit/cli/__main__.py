"""``python -m promptkit.cli``: the command line, as the ``promptkit`` script runs it."""

from .app import main

main()
