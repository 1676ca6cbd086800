"""Tests for promptkit.testing.reply: building replies (sending them is test_fake's job)."""

from __future__ import annotations

import dataclasses

import pytest

from promptkit.testing import Reply


def test_text_keeps_one_or_several_contents_as_a_tuple() -> None:
    assert Reply.text("Paris").content == ("Paris",)
    assert Reply.text(["42", "41"]).content == ("42", "41")
    with pytest.raises(ValueError, match="empty"):
        Reply.text([])


@pytest.mark.parametrize(
    "build",
    [
        lambda: Reply.text("x", latency=-1),
        lambda: Reply.echo(chunk_delay=-0.1),
        lambda: Reply.status(99),
        lambda: Reply.status(600),
        lambda: Reply.raw("{}", status=1000),
    ],
)
def test_impossible_latencies_and_status_codes_are_refused(build) -> None:
    with pytest.raises(ValueError):
        build()


def test_status_and_raw_keep_bodies_and_headers_as_given() -> None:
    error = Reply.status(429, retry_after=2, headers={"retry-after-ms": "5"})
    assert (error.kind, error.status_code, error.body) == ("status", 429, None)
    assert (error.retry_after, error.headers) == (2, (("retry-after-ms", "5"),))
    assert Reply.raw({"a": [1]}).body == '{"a": [1]}'
    assert Reply.raw(b"bytes").body == "bytes"
    assert Reply.raw("\ud800", status=201).status_code == 201


def test_events_drop_stream_and_the_rest_record_their_kind() -> None:
    events = Reply.events({"a": 1}, "text", done=False, chunk_delay=0.1)
    assert (events.sse_events, events.done, events.chunk_delay) == (({"a": 1}, "text"), False, 0.1)
    dropped = Reply.drop_stream(3, content="cut")
    assert (dropped.after_chunks, dropped.content) == (3, ("cut",))
    assert Reply.drop_stream().content is None
    assert Reply.html(502).status_code == 502
    kinds = [Reply.echo(), Reply.malformed_json(), Reply.hang(), Reply.html()]
    assert [reply.kind for reply in kinds] == ["echo", "malformed_json", "hang", "html"]


def test_replies_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Reply.echo().latency = 1  # type: ignore[misc]
