"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests (see :mod:`.fake`).

Modules: :mod:`.fake` (:class:`FakeEndpoint`, :class:`RecordedRequest`), :mod:`.reply`
(:class:`Reply`), :mod:`.payloads` (the OpenAI bodies and chunks, :func:`fake_embedding`),
:mod:`.http_server` (the generic HTTP/1.1 server under it) and :mod:`.cli`
(``python -m promptkit.testing``, scripted with ``--script`` and ``--responder`` as
:meth:`FakeEndpoint.script` and :meth:`FakeEndpoint.respond_with` script it from Python).
pytest users get the ``fake_endpoint`` fixture from promptkit's plugin.
"""

from .cli import main as main
from .fake import FakeEndpoint as FakeEndpoint
from .fake import RecordedRequest as RecordedRequest
from .payloads import fake_embedding as fake_embedding
from .reply import Reply as Reply

__all__ = ["FakeEndpoint", "RecordedRequest", "Reply", "fake_embedding", "main"]
