"""Answers: read the final answer out of a model's output, normalize it, vote.

:class:`ExtractSettings` says how (a spec's ``cot: {extract: ...}``, or
``chain_of_thought(extract=...)``); :func:`extract_answer` reads the answer after
:func:`strip_reasoning` has dropped ``<think>…</think>``, so a guess made while thinking is
never taken for the answer. :func:`majority_vote` combines self-consistency samples.

Numbers have one canonical form (:func:`normalize_answer`): ASCII digits, no thousands
separators, trailing decimal zeros or currency sign (``$1,234.50`` → ``1234.5``), but the
percent sign **stays** (``50%``): 50% and 50 are different quantities.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import regex
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from ..scoring.reading import compile_pattern as _compile
from ..scoring.reading import strip_reasoning
from .options import Settings, validate_settings

__all__ = [
    "DEFAULT_MARKERS",
    "ExtractMethod",
    "ExtractSettings",
    "Vote",
    "extract_answer",
    "majority_vote",
    "normalize_answer",
    "strip_reasoning",
]

DEFAULT_MARKERS: tuple[str, ...] = ("Answer:", "答案：", "答案:", "答案是", "The answer is",
                                    "final answer:")
"""Markers tried (case-insensitively) when :class:`ExtractSpec` names none."""
"""Markers tried (case-insensitively) when :class:`ExtractSettings` names none."""

ExtractMethod = Literal["marker", "regex", "last-number", "json", "full"]
"""How the final answer is found: after a marker line, by a regex, the last number, a JSON
field, or the full (reasoning-stripped) text."""


# Which method each option belongs to.
_OPTION_METHODS = {"marker": "marker", "pattern": "regex", "field": "json"}


class ExtractSettings(Settings):
    """How the final answer is read from a model's output; validated on construction
    (a bad value raises :class:`~promptkit.errors.ConfigError` at ``cot.extract.<key>``).

    An eval spec's ``cot: {extract: ...}``, and ``chain_of_thought(extract=...)``.

    Attributes:
        method: The extraction method (see :data:`ExtractMethod`).
        marker: For ``marker``: the text that introduces the answer, matched
            case-insensitively. Default: any of :data:`DEFAULT_MARKERS`.
        pattern: For ``regex``: a Python regex; the answer is group 1 when the pattern has
            groups, else the whole match. Use inline flags (``(?im)``) as needed.
        field: For ``json``: the key of the answer, a dotted path such as ``result.answer``
            (a numeric part indexes a list).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    key_prefix = "cot.extract"

    method: ExtractMethod = "marker"
    marker: str | None = Field(None, validate_default=True, description="For marker: the "
                               "text before the answer (default: Answer:, 答案：, ...).")
    pattern: str | None = Field(None, validate_default=True, description="For regex: the "
                                "answer is group 1, or the whole match.")
    field: str | None = Field(None, validate_default=True, description="For json: dotted "
                              "path of the answer, e.g. result.answer.")

    @field_validator("marker", "pattern", "field")
    @classmethod
    def _option_fits_method(cls, value: str | None, info: ValidationInfo) -> str | None:
        method = info.data.get("method")
        if method is None:  # the method itself is invalid: that error is enough
            return value
        owner = _OPTION_METHODS[info.field_name]
        if value is not None and method != owner:
            raise ValueError(f"{info.field_name!r} is only used with method: {owner}")
        if value is not None and not value.strip():
            raise ValueError(f"{info.field_name!r} must not be empty")
        if method != owner or owner == "marker":
            return value
        if value is None:
            raise ValueError(f"method: {owner} needs a {info.field_name!r}")
        if owner == "regex":
            try:
                _compile(value)
            except regex.error as error:
                raise ValueError(f"invalid regex {value!r}: {error}") from None
        elif "" in value.split("."):
            raise ValueError(f"invalid dotted path {value!r}")
        return value


def extract_answer(text: str | None,
                   spec: ExtractSettings | Mapping[str, Any] | None = None) -> str | None:
    """Read the final answer out of a model's output.

    Reasoning is removed first (:func:`strip_reasoning`). Where several candidates exist,
    the **last** one wins: the last marker, regex match, number or JSON object with the
    field. There is no fallback from one method to another.

    Args:
        text: The model's output (None, e.g. for a failed request, gives None).
        spec: How to extract: :class:`ExtractSettings` or a mapping of its fields.
            Default: ``ExtractSettings()`` (markers).

    Returns:
        The answer, stripped (for markers, also of markdown emphasis and a final period;
        ``last-number`` gives the canonical number), or None when none is found.

    Raises:
        ConfigError: An invalid mapping (its key path starts with ``extract``).
    """
    settings = _DEFAULT if spec is None else validate_settings(ExtractSettings, spec,
                                                                "extract")
    if text is None:
        return None
    text = strip_reasoning(text)
    if settings.method == "marker":
        found = _after_marker(text, settings.marker)
    elif settings.method == "regex":
        found = _last_regex_match(text, _compile(settings.pattern or ""))
    elif settings.method == "last-number":
        found = _last_number(text)
    elif settings.method == "json":
        found = _json_field(text, settings.field or "")
    else:
        found = text
    if found is None:
        return None
    return found.strip() or None


_DEFAULT = ExtractSettings()


REGEX_TIMEOUT_S = 1.0
"""An extraction regex that takes longer than this on one output finds no answer (the
``regex`` package stops the match), so catastrophic backtracking cannot stall a run."""

MAX_JSON_SEARCH_CHARS = 200_000
"""``json`` extraction looks for objects in the last this-many characters only."""


@functools.lru_cache(maxsize=64)
def _marker_regex(marker: str | None) -> re.Pattern[str]:
    def one(text: str) -> str:
        # "answer:" must not match inside an English word ("reanswer:"); CJK has no spaces.
        guard = r"(?<![A-Za-z])" if text[:1].isascii() and text[:1].isalpha() else ""
        return guard + re.escape(text)

    markers = (marker,) if marker else DEFAULT_MARKERS
    return re.compile("|".join(one(m) for m in markers), re.IGNORECASE)


def _after_marker(text: str, marker: str | None) -> str | None:
    for match in reversed(list(_marker_regex(marker).finditer(text))):
        rest = text[match.end():].split("\n")
        # "**Answer:** 42", "Answer: **42**.", and "Answer:\n42" all give "42".
        lines = [_clean_marked(line) for line in rest]
        answer = lines[0] or next((line for line in lines[1:] if line), "")
        if answer:
            return answer
    return None


def _clean_marked(line: str) -> str:
    return line.strip().lstrip(":：*_ \t").rstrip("*_ \t.。．")


def _last_regex_match(text: str, pattern: regex.Pattern[str]) -> str | None:
    try:
        matches = list(pattern.finditer(text, timeout=REGEX_TIMEOUT_S))
    except TimeoutError:
        return None
    for match in reversed(matches):
        value = match.group(1) if pattern.groups else match.group(0)
        if value is not None and value.strip():
            return value
    return None


def _json_field(text: str, path: str) -> str | None:
    # Fences need no special case: an object inside ```json … ``` is found like any other.
    decoder = json.JSONDecoder()
    found: str | None = None
    end = 0
    text = text[-MAX_JSON_SEARCH_CHARS:]  # the answer comes last; each "{" is a parse
    for match in re.finditer(r"\{", text):
        if match.start() < end:
            continue  # inside an object already decoded: only top-level objects count
        try:
            value, end = decoder.raw_decode(text, match.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        resolved = _resolve(value, path.split("."))
        if resolved is not None:
            found = resolved
    return found


def _resolve(value: Any, parts: list[str]) -> str | None:
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# --- numbers and normalization ----------------------------------------------------------

# Full-width ASCII forms (！ to ～) become ASCII, except "，": in Chinese text it separates
# clauses ("有3，然后"), so it must not join numbers as a thousands separator.
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F) if code != 0xFF0C}
_FULLWIDTH.update({0x3000: ord(" "), 0x2212: ord("-")})

_NUMBER = re.compile(
    r"(?<![0-9A-Za-z.])(?P<sign>-)?"
    r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+(?![0-9]|,[0-9])|[0-9]+)"
    r"(?P<frac>\.[0-9]+)?(?P<pct>\s?%)?"
)
_WHOLE_NUMBER = re.compile(
    r"(?P<sign>[-+])?\s*[$€£¥]?\s*"
    r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)?(?P<frac>\.[0-9]+)?\s*(?P<pct>%)?"
)


def _canonical_number(match: re.Match[str]) -> str:
    integer = (match["int"] or "").replace(",", "").lstrip("0") or "0"
    fraction = (match["frac"] or "").rstrip("0").rstrip(".")
    sign = "-" if match["sign"] == "-" and (integer != "0" or fraction) else ""
    return f"{sign}{integer}{fraction}{'%' if match['pct'] else ''}"


def _last_number(text: str) -> str | None:
    matches = list(_NUMBER.finditer(text.translate(_FULLWIDTH)))
    return _canonical_number(matches[-1]) if matches else None


_TRAILING_PUNCTUATION = ".,;:!?。，、；：．！？"
_BRACKETS = (("(", ")"), ("[", "]"), ("{", "}"), ("“", "”"), ("‘", "’"), ("「", "」"),
             ("『", "』"), ("【", "】"), ("《", "》"))
_SAME_CHAR_DELIMITERS = "\"'*_`$"


def normalize_answer(answer: str | None) -> str:
    """The canonical form of an answer, for comparison and voting.

    Surrounding whitespace, quotes, brackets, markdown emphasis or code marks, ``$…$``,
    ``\\boxed{…}`` and trailing punctuation (ASCII and ``。，、；：．！？``) are removed,
    repeatedly; full-width characters become ASCII; inner whitespace collapses; the text is
    lowercased. An answer that is just a number (with sign, currency sign, thousands
    separators or percent) becomes its canonical form: ``"$1,234.50"`` → ``"1234.5"``,
    ``"１２.０"`` → ``"12"``, ``"50 %"`` → ``"50%"``.

    Returns:
        The normalized answer ('' for None or an answer with no content).
    """
    if answer is None:
        return ""
    text = answer.translate(_FULLWIDTH)
    previous = None
    while text != previous:
        previous = text
        text = text.strip()
        text = _unwrap(text.rstrip(_TRAILING_PUNCTUATION))
    text = " ".join(text.split()).lower()
    number = _WHOLE_NUMBER.fullmatch(text)
    if number and (number["int"] or number["frac"]):
        return _canonical_number(number)
    return text


def _unwrap(text: str) -> str:
    if text.startswith("\\boxed{") and _wraps(text[6:], "{", "}"):
        return text[7:-1]
    for opening, closing in _BRACKETS:
        if _wraps(text, opening, closing):
            return text[1:-1]
    for mark in _SAME_CHAR_DELIMITERS:
        if len(text) > 2 and text[0] == mark and text[-1] == mark:
            core = text.strip(mark)
            leading = len(text) - len(text.lstrip(mark))
            trailing = len(text) - len(text.rstrip(mark))
            # Only a true wrapper: '"a" or "b"' and '_snake_case_' are left alone.
            if core and mark not in core and leading == trailing:
                return core
    return text


def _wraps(text: str, opening: str, closing: str) -> bool:
    """Whether ``text`` is one bracket pair enclosing everything ('(a) (b)' is not)."""
    if len(text) < 2 or text[0] != opening or text[-1] != closing:
        return False
    depth = 0
    for index, char in enumerate(text):
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0 and index < len(text) - 1:
                return False
    return True


# --- self-consistency -------------------------------------------------------------------

@dataclass(frozen=True)
class Vote:
    """The outcome of a majority vote over sampled answers.

    Attributes:
        answer: The winning normalized answer, or None when no sample had one.
        count: How many samples gave the winning answer.
        agreement: ``count`` over the number of samples that had an answer (0.0 if none).
        votes: Normalized answer → count, in the order answers were first seen.
    """

    answer: str | None
    count: int
    agreement: float
    votes: dict[str, int]


def majority_vote(answers: Sequence[str | None]) -> Vote:
    """Pick the most frequent answer among self-consistency samples.

    Answers are compared by :func:`normalize_answer`; None (and answers that normalize to
    '') cast no vote. **Ties go to the tied answer seen first**, so the outcome depends only
    on the samples and their order, never on hashing or sorting.

    Args:
        answers: One extracted answer (or None) per sample, in sample order.

    Returns:
        A :class:`Vote`.
    """
    votes: dict[str, int] = {}
    for answer in answers:
        key = normalize_answer(answer)
        if key:
            votes[key] = votes.get(key, 0) + 1
    if not votes:
        return Vote(answer=None, count=0, agreement=0.0, votes={})
    # max() returns the first maximal item, and dicts keep first-seen order.
    winner, count = max(votes.items(), key=lambda item: item[1])
    return Vote(answer=winner, count=count, agreement=count / sum(votes.values()), votes=votes)
