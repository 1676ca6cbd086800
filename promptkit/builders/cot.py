"""Chain-of-thought: reasoning triggers, answer extraction and self-consistency voting.

``chain_of_thought(style="zero-shot")`` builds a :class:`ChainOfThought`: ``apply`` adds
the trigger and answer instruction to a text or chat prompt, ``extract`` (an
:class:`Extractor`) reads the final answer back, after :func:`strip_reasoning` has dropped
``<think>…</think>`` so a guess made while thinking is never taken for the answer.
:func:`majority_vote` combines self-consistency samples.

Numbers have one canonical form (:func:`normalize_answer`): ASCII digits, no thousands
separators, trailing decimal zeros or currency sign (``$1,234.50`` → ``1234.5``), but the
percent sign **stays** (``50%``): 50% and 50 are different quantities.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args, overload

import regex

from ..errors import ConfigError

__all__ = [
    "ANSWER_INSTRUCTIONS",
    "DEFAULT_MARKERS",
    "TRIGGERS",
    "ChainOfThought",
    "CotStyle",
    "ExtractMethod",
    "ExtractSpec",
    "Extractor",
    "Vote",
    "chain_of_thought",
    "extract_answer",
    "majority_vote",
    "normalize_answer",
    "strip_reasoning",
]

TRIGGERS: dict[str, str] = {
    "en": "Let's think step by step.",
    "zh": "让我们一步一步地思考。",
    "en-plan": (
        "Let's first understand the problem and devise a plan to solve it. "
        "Then, let's carry out the plan and solve the problem step by step."
    ),
    "zh-plan": "让我们先理解问题并制定解决问题的计划。然后，让我们执行计划，一步一步地解决问题。",
}
"""Zero-shot triggers by ``lang``: Kojima et al. (2022); plan-and-solve (Wang et al., 2023)."""

_INSTRUCTION_FORMATS: dict[str, str] = {
    "en": 'End with a line "{marker} <answer>".',
    "zh": "最后一行写“{marker}<答案>”。",
}
_INSTRUCTION_MARKERS: dict[str, str] = {"en": "Answer:", "zh": "答案："}

ANSWER_INSTRUCTIONS: dict[str, str] = {
    lang: text.format(marker=_INSTRUCTION_MARKERS[lang])
    for lang, text in _INSTRUCTION_FORMATS.items()
}
"""The instruction asking for a final ``Answer:`` line (a custom marker replaces it)."""

DEFAULT_MARKERS: tuple[str, ...] = ("Answer:", "答案：", "答案:", "答案是", "The answer is",
                                    "final answer:")
"""Markers tried (case-insensitively) when :class:`ExtractSpec` names none."""

CotStyle = Literal["none", "zero-shot", "few-shot", "self-consistency"]
"""How the model is asked to reason.

* ``none``: the prompt is left alone; answers are still extracted, so a no-CoT baseline is
  scored the same way.
* ``zero-shot``: a trigger ("Let's think step by step.") plus the answer instruction.
* ``few-shot``: no trigger (the examples' rationales, shown by the template, do the work),
  only the answer instruction.
* ``self-consistency``: as ``zero-shot``, sampled ``samples`` times at ``temperature`` and
  decided by :func:`majority_vote`.
"""

ExtractMethod = Literal["marker", "regex", "last-number", "json", "full"]
"""How the final answer is found: after a marker line, by a regex, the last number, a JSON
field, or the full (reasoning-stripped) text."""

COT_STYLES: tuple[str, ...] = get_args(CotStyle)
EXTRACT_METHODS: tuple[str, ...] = get_args(ExtractMethod)


class Extractor(Protocol):
    """Anything that reads the final answer out of a model's output (None: no answer)."""

    def __call__(self, text: str) -> str | None: ...


@dataclass(frozen=True)
class ExtractSpec:
    """How to read the final answer; validated on construction.

    Args:
        method: The extraction method (see :data:`ExtractMethod`).
        marker: For ``marker``: the text that introduces the answer, matched
            case-insensitively. Default: any of :data:`DEFAULT_MARKERS`.
        pattern: For ``regex``: a Python regex; the answer is group 1 when the pattern has
            groups, else the whole match. Use inline flags (``(?im)``) as needed.
        field: For ``json``: the key of the answer, a dotted path such as ``result.answer``
            (a numeric part indexes a list).

    Raises:
        ConfigError: An unknown method, ``regex`` without a valid ``pattern``, ``json``
            without ``field``, or an option the method does not use.
    """

    method: ExtractMethod = "marker"
    marker: str | None = None
    pattern: str | None = None
    field: str | None = None

    def __post_init__(self) -> None:
        if self.method not in EXTRACT_METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of "
                              f"{', '.join(EXTRACT_METHODS)}", key_path="extract.method")
        owners = {"marker": "marker", "pattern": "regex", "field": "json"}
        for option, method in owners.items():
            value = getattr(self, option)
            if value is not None and self.method != method:
                raise ConfigError(f"{option!r} is only used with method: {method}",
                                  key_path=f"extract.{option}")
            if value is not None and not value.strip():
                raise ConfigError(f"{option!r} must not be empty", key_path=f"extract.{option}")
        if self.method == "regex":
            if self.pattern is None:
                raise ConfigError("method: regex needs a 'pattern'", key_path="extract.pattern")
            try:
                _compile(self.pattern)
            except regex.error as error:
                raise ConfigError(f"invalid regex {self.pattern!r}: {error}",
                                  key_path="extract.pattern") from None
        if self.method == "json":
            if self.field is None:
                raise ConfigError("method: json needs a 'field'", key_path="extract.field")
            if "" in self.field.split("."):
                raise ConfigError(f"invalid dotted path {self.field!r}", key_path="extract.field")

    @classmethod
    def from_config(cls, config: ExtractSpec | Mapping[str, Any] | Any) -> ExtractSpec:
        """Build a spec from a mapping or a pydantic model with the same fields.

        Raises:
            ConfigError: An unknown key, or an invalid spec.
        """
        if isinstance(config, ExtractSpec):
            return config
        if not isinstance(config, Mapping) and hasattr(config, "model_dump"):
            config = config.model_dump()
        if not isinstance(config, Mapping):
            raise ConfigError(f"expected a mapping, not {type(config).__name__}",
                              key_path="extract")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in config:
            if key not in known:
                raise ConfigError(f"unknown key {key!r}; known: {', '.join(sorted(known))}",
                                  key_path=f"extract.{key}")
        return cls(**config)


@dataclass(frozen=True)
class ChainOfThought:
    """A chain-of-thought setup: how prompts are changed and answers read back.

    Build it with :func:`chain_of_thought`. Calling it is the same as :meth:`apply`.

    Attributes:
        style: The reasoning style.
        trigger: The text appended to elicit reasoning (None for ``none`` and ``few-shot``).
        instruction: The answer instruction appended (None unless extraction uses markers
            and the style is not ``none``).
        answer: How answers are extracted.
        samples: Completions to request per case (1 unless ``self-consistency``).
        temperature: Sampling temperature (None, i.e. the variant's own, unless
            ``self-consistency``).
    """

    style: CotStyle
    trigger: str | None
    instruction: str | None
    answer: ExtractSpec = dataclasses.field(default_factory=ExtractSpec)
    samples: int = 1
    temperature: float | None = None

    @property
    def suffix(self) -> str:
        """What :meth:`apply` appends: trigger and instruction, one per line ('' if none)."""
        return "\n".join(part for part in (self.trigger, self.instruction) if part)

    @overload
    def apply(self, prompt: str) -> str: ...
    @overload
    def apply(self, prompt: list[dict[str, Any]]) -> list[dict[str, Any]]: ...
    def apply(self, prompt: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        """Add the trigger and answer instruction to a prompt, without changing the input.

        Args:
            prompt: A text prompt, or chat messages (``{"role": ..., "content": ...}``).

        Returns:
            For text, the prompt plus a newline and :attr:`suffix`. For chat, new messages
            whose last ``user`` message has the suffix appended to its content (as a new
            text part when the content is a list of parts); no message is added.

        Raises:
            ConfigError: A chat prompt with no ``user`` message.
        """
        suffix = self.suffix
        if isinstance(prompt, str):
            return _append(prompt, suffix)
        messages = [dict(message) for message in prompt]
        if not suffix:
            return messages
        for message in reversed(messages):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):
                    message["content"] = [*content, {"type": "text", "text": suffix}]
                else:
                    message["content"] = _append(content or "", suffix)
                return messages
        raise ConfigError(f"a chat prompt needs a user message for the {self.style} trigger")

    __call__ = apply

    def extract(self, text: str | None) -> str | None:
        """The final answer in a model's output (see :func:`extract_answer`)."""
        return extract_answer(text, self.answer)

    def vote(self, texts: Sequence[str | None]) -> Vote:
        """Extract the answer of each sample and take the :func:`majority_vote`."""
        return majority_vote([self.extract(text) for text in texts])


def chain_of_thought(style: CotStyle = "zero-shot", *, trigger: str | None = None,
                     lang: str = "en",
                     answer: ExtractSpec | Mapping[str, Any] | None = None,
                     samples: int = 5, temperature: float = 0.7) -> ChainOfThought:
    """Build a chain-of-thought setup.

    Args:
        style: The reasoning style (see :data:`CotStyle`).
        trigger: Custom trigger text, for ``zero-shot`` and ``self-consistency``.
            Default: ``TRIGGERS[lang]``.
        lang: Language of the default trigger and answer instruction: a key of
            :data:`TRIGGERS` (``en``, ``zh``, ``en-plan``, ...) or a tag like ``zh-CN``
            whose base language has one.
        answer: How to extract the answer: an :class:`ExtractSpec` or a mapping of its
            fields. Default: ``marker``. With ``marker`` the answer instruction is added
            (naming the custom marker, if any).
        samples: Samples per case for ``self-consistency`` (at least 1).
        temperature: Sampling temperature for ``self-consistency`` (0 to 2).

    Returns:
        A :class:`ChainOfThought`.

    Raises:
        ConfigError: An unknown style or language, a trigger for a style that adds none,
            bad ``samples`` or ``temperature``, or an invalid extraction spec.
    """
    if style not in COT_STYLES:
        raise ConfigError(f"unknown style {style!r}; choose one of {', '.join(COT_STYLES)}",
                          key_path="style")
    if trigger is not None and style not in ("zero-shot", "self-consistency"):
        raise ConfigError(f"style {style!r} adds no trigger", key_path="trigger")
    if trigger is not None and not trigger.strip():
        raise ConfigError("the trigger must not be empty", key_path="trigger")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be a whole number >= 1, not {samples!r}",
                          key_path="samples")
    if not 0 <= temperature <= 2:
        raise ConfigError(f"temperature must be between 0 and 2, not {temperature!r}",
                          key_path="temperature")
    spec = ExtractSpec() if answer is None else ExtractSpec.from_config(answer)

    base = lang.split("-")[0]
    if trigger is None and style in ("zero-shot", "self-consistency"):
        trigger = TRIGGERS.get(lang) or TRIGGERS.get(base)
        if trigger is None:
            raise ConfigError(f"no trigger for language {lang!r}; known: "
                              f"{', '.join(TRIGGERS)} (or pass trigger=)", key_path="lang")
    instruction = None
    if spec.method == "marker" and style != "none":
        instruction_lang = lang if lang in _INSTRUCTION_FORMATS else base
        if instruction_lang not in _INSTRUCTION_FORMATS:
            raise ConfigError(f"no answer instruction for language {lang!r}; known: "
                              f"{', '.join(_INSTRUCTION_FORMATS)}", key_path="lang")
        marker = spec.marker or _INSTRUCTION_MARKERS[instruction_lang]
        instruction = _INSTRUCTION_FORMATS[instruction_lang].format(marker=marker)

    sampled = style == "self-consistency"
    return ChainOfThought(style=style, trigger=trigger, instruction=instruction, answer=spec,
                          samples=samples if sampled else 1,
                          temperature=float(temperature) if sampled else None)


def _append(text: str, suffix: str) -> str:
    if not suffix:
        return text
    if not text or text.endswith("\n"):
        return text + suffix
    return f"{text}\n{suffix}"


# --- extraction -------------------------------------------------------------------------

_THINK_BLOCK = re.compile(r"<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</(?:think|thinking)>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(?:think|thinking)>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """Remove a reasoning model's thinking from its output.

    Drops every ``<think>…</think>`` (or ``<thinking>``) block; then everything up to a
    closing tag left without its opener (templates that put ``<think>`` in the prompt, so
    the output starts mid-thought); then an unclosed ``<think>`` and everything after it
    (the model ran out of tokens while thinking, so there is no answer).

    Returns:
        The remaining text, stripped of surrounding whitespace.
    """
    text = _THINK_BLOCK.sub("", text)
    closings = list(_THINK_CLOSE.finditer(text))
    if closings:
        text = text[closings[-1].end():]
    opening = _THINK_OPEN.search(text)
    if opening:
        text = text[:opening.start()]
    return text.strip()


def extract_answer(text: str | None, spec: ExtractSpec | None = None) -> str | None:
    """Read the final answer out of a model's output.

    Reasoning is removed first (:func:`strip_reasoning`). Where several candidates exist,
    the **last** one wins: the last marker, regex match, number or JSON object with the
    field. There is no fallback from one method to another.

    Args:
        text: The model's output (None, e.g. for a failed request, gives None).
        spec: How to extract. Default: ``ExtractSpec()`` (markers).

    Returns:
        The answer, stripped (for markers, also of markdown emphasis and a final period;
        ``last-number`` gives the canonical number), or None when none is found.
    """
    if text is None:
        return None
    spec = spec or ExtractSpec()
    text = strip_reasoning(text)
    if spec.method == "marker":
        found = _after_marker(text, spec.marker)
    elif spec.method == "regex":
        found = _last_regex_match(text, _compile(spec.pattern or ""))
    elif spec.method == "last-number":
        found = _last_number(text)
    elif spec.method == "json":
        found = _json_field(text, spec.field or "")
    else:
        found = text
    if found is None:
        return None
    return found.strip() or None


REGEX_TIMEOUT_S = 1.0
"""An extraction regex that takes longer than this on one output finds no answer (the
``regex`` package stops the match), so catastrophic backtracking cannot stall a run."""

MAX_JSON_SEARCH_CHARS = 200_000
"""``json`` extraction looks for objects in the last this-many characters only."""


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


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
