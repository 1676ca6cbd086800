"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests (see :mod:`.fake`)."""

from .fake import FakeEndpoint as FakeEndpoint
from .fake import RecordedRequest as RecordedRequest
from .fake import Reply as Reply
from .fake import fake_embedding as fake_embedding
from .fake import main as main

__all__ = ["FakeEndpoint", "RecordedRequest", "Reply", "fake_embedding", "main"]
