"""Chain-of-thought: reasoning styles, triggers, and what they add to a prompt.

:class:`CotSettings` says how the model is asked to reason (an eval spec's ``cot:``, and
the options of :func:`chain_of_thought` alike). ``chain_of_thought(style="zero-shot")``
builds a :class:`ChainOfThought`: ``apply`` adds the trigger and answer instruction to a
text or chat prompt, ``extract`` reads the final answer back (see
:mod:`promptkit.builders.answers`, which also holds :func:`majority_vote` for
self-consistency).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from ..errors import ConfigError
from .answers import ExtractSettings, extract_answer
from .options import Settings, rename_deprecated, validate_settings

__all__ = [
    "ANSWER_INSTRUCTIONS",
    "TRIGGERS",
    "ChainOfThought",
    "CotSettings",
    "CotStyle",
    "chain_of_thought",
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

_TRIGGERED_STYLES = ("zero-shot", "self-consistency")


class CotSettings(Settings):
    """How the model is asked to reason: an eval spec's ``cot:`` and the options of
    :func:`chain_of_thought`; validated on construction (a bad value raises
    :class:`~promptkit.errors.ConfigError` at ``cot.<key>``).

    Attributes:
        style: The reasoning style (see :data:`CotStyle`).
        trigger: Custom trigger text, for ``zero-shot`` and ``self-consistency``.
            Default: ``TRIGGERS[lang]``.
        extract: How the answer is read back. With ``marker`` the answer instruction is
            added (naming the custom marker, if any).
        lang: Language of the default trigger and answer instruction: a key of
            :data:`TRIGGERS` (``en``, ``zh``, ``en-plan``, ...) or a tag like ``zh-CN``
            whose base language has one.
        samples: Samples per case for ``self-consistency`` (1 to 64).
        temperature: Sampling temperature for ``self-consistency`` (0 to 2).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    key_prefix = "cot"

    style: CotStyle = "zero-shot"
    trigger: str | None = Field(None, description="Custom trigger text (default by lang).")
    extract: ExtractSettings = Field(default_factory=ExtractSettings)
    # After trigger and extract: whether lang needs a trigger or an instruction depends
    # on them.
    lang: str = Field("en", validate_default=True)
    samples: int = Field(5, ge=1, le=64, strict=True,
                         description="Self-consistency samples per case.")
    temperature: float = Field(0.7, ge=0, le=2, description="Self-consistency temperature.")

    @field_validator("trigger")
    @classmethod
    def _trigger_for_style(cls, value: str | None, info: ValidationInfo) -> str | None:
        style = info.data.get("style")
        if value is not None and style is not None and style not in _TRIGGERED_STYLES:
            raise ValueError(f"style {style!r} adds no trigger")
        if value is not None and not value.strip():
            raise ValueError("the trigger must not be empty")
        return value

    @field_validator("lang")
    @classmethod
    def _lang_has_texts(cls, value: str, info: ValidationInfo) -> str:
        style = info.data.get("style")
        if style in _TRIGGERED_STYLES and "trigger" in info.data and \
                info.data["trigger"] is None and _default_trigger(value) is None:
            raise ValueError(f"no trigger for language {value!r}; known: "
                             f"{', '.join(TRIGGERS)} (or give a trigger)")
        extract = info.data.get("extract")
        if style not in (None, "none") and extract is not None and \
                extract.method == "marker" and _instruction_lang(value) is None:
            raise ValueError(f"no answer instruction for language {value!r}; known: "
                             f"{', '.join(_INSTRUCTION_FORMATS)}")
        return value


def _default_trigger(lang: str) -> str | None:
    return TRIGGERS.get(lang) or TRIGGERS.get(lang.split("-")[0])


def _instruction_lang(lang: str) -> str | None:
    for candidate in (lang, lang.split("-")[0]):
        if candidate in _INSTRUCTION_FORMATS:
            return candidate
    return None


@dataclass(frozen=True)
class ChainOfThought:
    """A chain-of-thought setup: how prompts are changed and answers read back.

    Build it with :func:`chain_of_thought`. Calling it is the same as :meth:`apply`.

    Attributes:
        settings: What it was built from.
        trigger: The text appended to elicit reasoning (None for ``none`` and ``few-shot``).
        instruction: The answer instruction appended (None unless extraction uses markers
            and the style is not ``none``).
    """

    settings: CotSettings
    trigger: str | None
    instruction: str | None

    @property
    def style(self) -> CotStyle:
        """The reasoning style."""
        return self.settings.style

    @property
    def samples(self) -> int:
        """Completions to request per case (1 unless ``self-consistency``)."""
        return self.settings.samples if self.style == "self-consistency" else 1

    @property
    def temperature(self) -> float | None:
        """Sampling temperature (None, i.e. the variant's own, unless
        ``self-consistency``)."""
        return self.settings.temperature if self.style == "self-consistency" else None

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
        return extract_answer(text, self.settings.extract)


def chain_of_thought(style: CotStyle | CotSettings = "zero-shot", *,
                     trigger: str | None = None, lang: str = "en",
                     extract: ExtractSettings | Mapping[str, Any] | None = None,
                     samples: int = 5, temperature: float = 0.7,
                     **deprecated: Any) -> ChainOfThought:
    """Build a chain-of-thought setup.

    The options are the fields of :class:`CotSettings` (an eval spec's ``cot:`` takes the
    same names).

    Args:
        style: The reasoning style (see :data:`CotStyle`), or a whole
            :class:`CotSettings`, with none of the options below.
        trigger: Custom trigger text, for ``zero-shot`` and ``self-consistency``.
            Default: ``TRIGGERS[lang]``.
        lang: Language of the default trigger and answer instruction (see
            :class:`CotSettings`).
        extract: How to extract the answer: :class:`ExtractSettings` or a mapping of its
            fields. Default: ``marker``.
        samples: Samples per case for ``self-consistency`` (1 to 64).
        temperature: Sampling temperature for ``self-consistency`` (0 to 2).
        **deprecated: ``answer``, the old name of ``extract``, with a
            :class:`DeprecationWarning`.

    Returns:
        A :class:`ChainOfThought`.

    Raises:
        ConfigError: An invalid option, with its key path (``extract.pattern``): an
            unknown style or language, a trigger for a style that adds none, bad
            ``samples`` or ``temperature``, or an invalid extraction.
        TypeError: An unknown keyword argument, ``extract`` given twice, or options
            besides a :class:`CotSettings`.
    """
    if isinstance(style, CotSettings):
        options = {"trigger": trigger, "lang": lang, "extract": extract, "samples": samples,
                   "temperature": temperature}
        given = [name for name, value in options.items() if value != _DEFAULTS[name]]
        if given or deprecated:
            names = ", ".join(sorted([*given, *deprecated]))
            raise TypeError(f"chain_of_thought(settings) takes no other options ({names}): "
                            "put them in the settings")
        settings = style
    else:
        renamed = rename_deprecated(deprecated, {"answer": "extract"}, "chain_of_thought()",
                                    stacklevel=2)
        if renamed and extract is not None:
            raise TypeError("chain_of_thought() got 'extract' and its old name 'answer'")
        extract = renamed.get("extract", extract)
        options = {"style": style, "trigger": trigger, "lang": lang, "samples": samples,
                   "temperature": temperature}
        if extract is not None:
            options["extract"] = extract
        settings = validate_settings(CotSettings, options)
    return ChainOfThought(settings, trigger=_trigger(settings),
                          instruction=_instruction(settings))


_DEFAULTS = {"trigger": None, "lang": "en", "extract": None, "samples": 5, "temperature": 0.7}


def _trigger(settings: CotSettings) -> str | None:
    if settings.style not in _TRIGGERED_STYLES:
        return None
    return settings.trigger or _default_trigger(settings.lang)


def _instruction(settings: CotSettings) -> str | None:
    extract = settings.extract
    lang = _instruction_lang(settings.lang)
    if extract.method != "marker" or settings.style == "none" or lang is None:
        return None
    marker = extract.marker or _INSTRUCTION_MARKERS[lang]
    return _INSTRUCTION_FORMATS[lang].format(marker=marker)


def _append(text: str, suffix: str) -> str:
    if not suffix:
        return text
    if not text or text.endswith("\n"):
        return text + suffix
    return f"{text}\n{suffix}"
