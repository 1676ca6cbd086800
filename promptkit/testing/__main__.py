"""``python -m promptkit.testing``: serve a fake OpenAI-compatible endpoint."""

from .fake import main

raise SystemExit(main())
