"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests (see :mod:`.fake`).

Modules: :mod:`.fake` (:class:`FakeEndpoint`, :class:`RecordedRequest`), :mod:`.reply`
(:class:`Reply`, :class:`ToolCall`), :mod:`.payloads` (the OpenAI bodies and chunks,
:func:`fake_embedding`), :mod:`.batches` and :mod:`.batch_files` (OpenAI's Batch and Files
APIs; :class:`~.batches.BatchRecord` and :class:`~.batch_files.FileRecord` are what
:attr:`FakeEndpoint.batches` and :attr:`FakeEndpoint.files` list), :mod:`.http_server`
(the generic HTTP/1.1 server under it) and :mod:`.cli` (``python -m promptkit.testing``,
scripted with ``--script`` and ``--responder`` as :meth:`FakeEndpoint.script` and
:meth:`FakeEndpoint.respond_with` script it from Python).
pytest users get the ``fake_endpoint`` fixture from promptkit's plugin.
"""

from .cli import main as main
from .fake import CHAT_PATH as CHAT_PATH
from .fake import COMPLETIONS_PATH as COMPLETIONS_PATH
from .fake import EMBEDDINGS_PATH as EMBEDDINGS_PATH
from .fake import FakeEndpoint as FakeEndpoint
from .fake import RecordedRequest as RecordedRequest
from .fake import Responder as Responder
from .payloads import EMBEDDING_DIMENSIONS as EMBEDDING_DIMENSIONS
from .payloads import fake_embedding as fake_embedding
from .reply import Reply as Reply
from .reply import ReplyKind as ReplyKind
from .reply import ToolCall as ToolCall
from .reply import Usage as Usage

__all__ = [
    "CHAT_PATH",
    "COMPLETIONS_PATH",
    "EMBEDDINGS_PATH",
    "EMBEDDING_DIMENSIONS",
    "FakeEndpoint",
    "RecordedRequest",
    "Reply",
    "ReplyKind",
    "Responder",
    "ToolCall",
    "Usage",
    "fake_embedding",
    "main",
]
