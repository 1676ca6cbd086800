"""``python -m promptkit.testing``: serve a fake OpenAI-compatible endpoint."""

from .cli import main

raise SystemExit(main())
