"""Text made safe for a terminal, put on one line and cut to a column."""

from __future__ import annotations

from promptkit.terminal import clip, cut, one_line, printable, printable_line


def test_control_characters_are_shown_not_sent() -> None:
    assert printable("a\x1b[2Jb\tc\nd\x9b") == "a\\x1b[2Jb\tc\nd\\x9b"
    assert printable_line("a\x1b\n\tb") == "a\\x1b b"


def test_cut_keeps_short_text_and_ends_long_text_with_an_ellipsis() -> None:
    assert cut("abc", 3) == "abc"
    assert cut("abcd", 3) == "ab…"
    assert cut("", 1) == ""
    assert one_line(" a\n\n b\tc ") == "a b c"


def test_clip_is_one_printable_line_cut() -> None:
    assert clip(None, 10) == "(no output)"
    assert clip(None, 10, missing="-") == "-"
    assert clip("one\ntwo \x1b three", 20) == "one two \\x1b three"
    assert clip("one\ntwo \x1b three", 10) == "one two \\…"
