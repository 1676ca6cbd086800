"""Fine-tuning data from a stored run: supervised lines (SFT) and preference pairs (DPO).

Both read the run store and write JSONL in OpenAI's fine-tuning formats. A line's prompt is
the stored ``CaseResult.prompt``, the messages as they were sent (a completions-API prompt,
which is text, becomes one user message), and its answer the stored ``output`` (not the
extracted ``answer``), with the answer's tool calls in OpenAI's format.

* :func:`export_sft`: one ``{"messages": [...prompt..., {"role": "assistant", ...}]}`` line
  per passing result (and at least ``min_score``); a conversation is written whole
  (the prompt, then every answer, tool result and later turn). A line identical to one
  already written (a repeat that answered the same) is written once.
* :func:`export_preference`: per case and provider, the first repeat of two prompt
  variants, the better answer (passed first, then the higher score) preferred:
  ``{"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output":
  [...]}``. A pair needs one input for both answers, so when the two variants sent
  different prompts the caller says whose prompt is the input (``input_side``: ``"a"`` or
  ``"b"``); without it such a run is refused, since the other answer was given to a
  prompt the line would not show. Ties (same pass and score) are left out, and so are
  conversation cases: the two variants' conversations part after their first answer,
  so no single input leads to both last answers.

Neither writes an errored result. What was left out is counted, for the closing line
(:meth:`ExportCounts.describe`). A run stored before results kept their prompt is refused.
Answers are redacted when stored, but prompts and tool results are stored as sent, so every
line is redacted again with the API keys of the run's providers found in the environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from ..errors import PromptkitError
from ..files import atomic_write
from ..redact import add_secret, redact_data
from ..results import CaseResult, RunInfo
from ..running.storage import find_run, find_run_stores
from ..running.turns import assistant_message
from .outputs import refuse_overwrite

__all__ = ["ExportCounts", "Side", "answer_message", "export_preference", "export_sft",
           "prompt_messages"]

Side = Literal["a", "b"]

# Why a result (SFT) or a pair (preference) was left out: the label and its plural.
SKIPPED: dict[str, tuple[str, str]] = {
    "failed": ("failed", "failed"),
    "below_min_score": ("below --min-score", "below --min-score"),
    "errored": ("errored", "errored"),
    "no_prompt": ("without a stored prompt", "without a stored prompt"),
    "duplicate": ("duplicate", "duplicates"),
    "tie": ("tie", "ties"),
    "conversation": ("conversation", "conversations"),
    "unpaired": ("unpaired", "unpaired"),
}


@dataclass
class ExportCounts:
    """What an export wrote and what it left out.

    Attributes:
        output: The file written.
        run_id: The run exported.
        written: Lines written.
        skipped: Reason (a key of :data:`SKIPPED`) → results (SFT) or pairs (preference)
            left out for it.
    """

    output: str
    run_id: str
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        """The closing line: ``wrote 41 lines to sft.jsonl; skipped 3 failed, 2 errored``."""
        line = f"wrote {self.written} line{'' if self.written == 1 else 's'} to {self.output}"
        parts = [f"{count} {SKIPPED[reason][count != 1]}"
                 for reason, count in sorted(self.skipped.items(),
                                             key=lambda item: list(SKIPPED).index(item[0]))
                 if count]
        return line + ("; skipped " + ", ".join(parts) if parts else "")


def prompt_messages(prompt: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stored prompt as chat messages: chat messages as they were sent, or a
    completions-API prompt (text) as one user message."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [dict(message) for message in prompt]


def answer_message(result: CaseResult) -> dict[str, Any]:
    """A result's answer as an assistant message: its stored ``output``, and its tool
    calls as OpenAI sends them (``content`` null when the answer only calls tools)."""
    return assistant_message(result.output or "", result.tool_calls)


def export_sft(output: str | Path, run: str = "last", *, prompt: str | None = None,
               provider: str | None = None, min_score: float | None = None,
               store_dir: str | Path | None = None) -> ExportCounts:
    """Write a run's passing results as chat fine-tuning lines (``promptkit export sft``).

    Args:
        output: The ``.jsonl`` file to write (atomically).
        run: A run id, a unique prefix or ``last``.
        prompt, provider: Only this prompt variant's, or this provider's, results.
        min_score: Leave out passing results scoring below this.
        store_dir: The run store folder (default: ``.promptkit/`` here and one folder down).

    Raises:
        PromptkitError: an unknown run, prompt or provider, a run stored before results
            kept their prompt, or an output path that is not ``.jsonl`` or would overwrite
            an input (exit 2).
        OutputError: the file cannot be written (exit 3).
    """
    store, info = find_run(run, find_run_stores(store_dir))
    with store:
        _check_choice(info, "prompt", prompt)
        _check_choice(info, "provider", provider)
        _check_output(output, info, store.path)
        counts = ExportCounts(str(output), info.run_id)
        # closed before the store, also when an error stops the export halfway
        with contextlib.closing(store.results(info.run_id, prompt, provider)) as results:
            _write_lines(output, info, _sft_lines(results, min_score, counts))
    return counts


def _sft_lines(results: Iterable[CaseResult], min_score: float | None,
               counts: ExportCounts) -> Iterator[dict[str, Any]]:
    seen: set[bytes] = set()
    for result in results:
        reason = _sft_skip(result, min_score)
        if reason is not None:
            counts.skipped[reason] += 1
            continue
        assert result.prompt is not None
        answers = result.conversation or [answer_message(result)]
        line = {"messages": [*prompt_messages(result.prompt), *answers]}
        digest = hashlib.sha256(_json(line).encode("utf-8", "backslashreplace")).digest()
        if digest in seen:
            counts.skipped["duplicate"] += 1
            continue
        seen.add(digest)
        counts.written += 1
        yield line
    _refuse_without_prompts(counts)


def _sft_skip(result: CaseResult, min_score: float | None) -> str | None:
    """Why a result is not a training line, or None."""
    if result.error is not None:
        return "errored"
    if result.prompt is None:
        return "no_prompt"
    if not result.passed:
        return "failed"
    if min_score is not None and not _score(result) >= min_score:
        return "below_min_score"
    return None


def export_preference(output: str | Path, run: str = "last", *, a: str | None = None,
                      b: str | None = None, provider: str | None = None,
                      input_side: Side | None = None,
                      store_dir: str | Path | None = None) -> ExportCounts:
    """Write the better and the worse answer of two prompt variants as preference pairs
    (``promptkit export preference``): per case and provider, of the first repeat.

    Args:
        output: The ``.jsonl`` file to write (atomically).
        run: A run id, a unique prefix or ``last``.
        a, b: The two prompt variants; needed when the run has more than two (else its two,
            in the spec's order).
        provider: Only this provider's pairs.
        input_side: Whose prompt is a pair's input, ``"a"`` or ``"b"``; needed when the
            two variants sent different prompts for a case.
        store_dir: The run store folder (default: ``.promptkit/`` here and one folder down).

    Raises:
        PromptkitError: an unknown run, prompt or provider, two variants not chosen, prompts
            that differ without ``input_side``, a run stored before results kept their
            prompt, or an output path that is not ``.jsonl`` or would overwrite an input
            (exit 2).
        OutputError: the file cannot be written (exit 3).
    """
    store, info = find_run(run, find_run_stores(store_dir))
    with store:
        a, b = _variants(info, a, b)
        _check_choice(info, "provider", provider)
        _check_output(output, info, store.path)
        counts = ExportCounts(str(output), info.run_id)
        firsts = {(r.provider_id, r.case_id): r
                  for r in store.results(info.run_id, a, provider) if r.repeat == 0}
        with contextlib.closing(store.results(info.run_id, b, provider)) as seconds:
            pairs = _pairs(firsts, seconds, counts)
            _write_lines(output, info, _preference_lines(pairs, (a, b), input_side, counts))
    return counts


def _variants(info: RunInfo, a: str | None, b: str | None) -> tuple[str, str]:
    """The two prompt variants to pair: ``a`` and ``b``, or the run's only two."""
    known = _ids(info, "prompts")
    if a is None and b is None:
        if len(known) != 2:
            raise PromptkitError(f"run {info.run_id} has {len(known)} prompt variant"
                                 f"{'' if len(known) == 1 else 's'} ({', '.join(known)}); "
                                 "pick the two to pair with --a and --b")
        return known[0], known[1]
    if a is None or b is None:
        raise PromptkitError("give both --a and --b (the two prompt variants to pair)")
    if a == b:
        raise PromptkitError(f"--a and --b are both {a!r}; pick two different variants")
    _check_choice(info, "prompt", a)
    _check_choice(info, "prompt", b)
    return a, b


def _pairs(firsts: dict[tuple[str, str], CaseResult], seconds: Iterable[CaseResult],
           counts: ExportCounts) -> Iterator[tuple[CaseResult, CaseResult]]:
    """Each case's (and provider's) first repeat of both variants, in ``seconds``' order."""
    for second in seconds:
        if second.repeat != 0:
            continue
        first = firsts.pop((second.provider_id, second.case_id), None)
        if first is None:
            counts.skipped["unpaired"] += 1
        else:
            yield first, second
    counts.skipped["unpaired"] += len(firsts)


def _preference_lines(pairs: Iterable[tuple[CaseResult, CaseResult]], ids: tuple[str, str],
                      input_side: Side | None, counts: ExportCounts
                      ) -> Iterator[dict[str, Any]]:
    for first, second in pairs:
        reason = _pair_skip(first, second)
        if reason is not None:
            counts.skipped[reason] += 1
            continue
        assert first.prompt is not None and second.prompt is not None
        inputs = prompt_messages(first.prompt), prompt_messages(second.prompt)
        if input_side is None and inputs[0] != inputs[1]:
            raise PromptkitError(
                f"prompts {ids[0]} and {ids[1]} sent different messages (case "
                f"{second.case_id} first); choose whose prompt is each pair's input with "
                "--input a or --input b")
        better, worse = sorted((first, second), key=_rank, reverse=True)
        counts.written += 1
        yield {"input": {"messages": inputs[1 if input_side == "b" else 0]},
               "preferred_output": [answer_message(better)],
               "non_preferred_output": [answer_message(worse)]}
    _refuse_without_prompts(counts)


def _pair_skip(first: CaseResult, second: CaseResult) -> str | None:
    """Why two answers make no preference pair, or None."""
    if first.error is not None or second.error is not None:
        return "errored"
    if first.prompt is None or second.prompt is None:
        return "no_prompt"
    if first.conversation or second.conversation:
        return "conversation"
    if _rank(first) == _rank(second):
        return "tie"
    return None


def _rank(result: CaseResult) -> tuple[bool, float]:
    return result.passed, _score(result)


def _score(result: CaseResult) -> float:
    # A score SQLite could not hold (NaN) comes back as None: it ranks lowest.
    score = result.score
    return score if isinstance(score, int | float) and math.isfinite(score) else -math.inf


def _refuse_without_prompts(counts: ExportCounts) -> None:
    """Refuse a run none of whose answers kept its prompt: an older promptkit stored it.
    (Errored results may lack one anyway: a prompt that could not be rendered.)"""
    prompted = counts.written + sum(count for reason, count in counts.skipped.items()
                                    if reason not in ("errored", "no_prompt", "unpaired"))
    if counts.skipped["no_prompt"] and not prompted:
        raise PromptkitError(f"run {counts.run_id} was stored before results kept the prompt "
                             "as sent, so its fine-tuning data cannot be rebuilt; run the "
                             "eval again to export it")


# -- ids, paths and writing --


def _ids(info: RunInfo, key: str) -> list[str]:
    return [str(item.get("id")) for item in info.config.get(key, [])
            if isinstance(item, dict) and item.get("id")]


def _check_choice(info: RunInfo, what: Literal["prompt", "provider"],
                  chosen: str | None) -> None:
    known = _ids(info, f"{what}s")
    if chosen is not None and known and chosen not in known:
        raise PromptkitError(f"run {info.run_id} has no {what} {chosen!r} (its {what}s: "
                             f"{', '.join(known)})")


def _check_output(output: str | Path, info: RunInfo, store_path: Path) -> None:
    """Refuse an output that is not ``.jsonl``, has no folder, or would overwrite one of
    the run's inputs (its spec, dataset, example pools, templates) or a baseline."""
    if Path(output).suffix.lower() != ".jsonl":
        raise PromptkitError(f"--output {output}: fine-tuning data is written as .jsonl")
    target = Path(output).resolve()
    if not target.parent.is_dir():
        raise PromptkitError(f"--output {output}: folder does not exist")
    inputs, templates = _run_inputs(info)
    refuse_overwrite(output, [*inputs, store_path])
    if templates is not None and target.is_relative_to(templates.resolve()):
        raise PromptkitError(f"--output {output} is inside the template store {templates}; "
                             "write it elsewhere")


def _run_inputs(info: RunInfo) -> tuple[list[Path], Path | None]:
    """The files a run read (spec, dataset, pools), and its template store folder, as
    its stored spec names them (relative to the spec's folder)."""
    spec = Path(info.eval_path)
    base, config = spec.parent, info.config
    inputs = [spec]
    if isinstance(config.get("dataset"), str):
        inputs.append(base / config["dataset"])
    for variant in config.get("prompts", []):
        pool = (variant.get("fewshot") or {}).get("pool") if isinstance(variant, dict) else None
        if isinstance(pool, str):
            inputs.append(base / pool)
    if isinstance(config.get("templates"), str):
        return inputs, base / config["templates"]
    # As a spec without ``templates:`` finds its store: the nearest templates/ above it.
    found = (folder / "templates" for folder in [base, *base.parents])
    return inputs, next((folder for folder in found if folder.is_dir()), None)


def _write_lines(output: str | Path, info: RunInfo, lines: Iterable[dict[str, Any]]) -> None:
    """Write ``lines`` as JSONL, redacted; nothing is left behind if an error is raised."""
    for provider in [*info.config.get("providers", []), *info.config.get("graders", [])]:
        name = provider.get("api_key_env") if isinstance(provider, dict) else None
        if isinstance(name, str):
            add_secret(os.environ.get(name, "").strip())
    with atomic_write(output) as file:
        _write_jsonl(file, lines)


def _write_jsonl(file: IO[str], lines: Iterable[dict[str, Any]]) -> None:
    for line in lines:
        file.write(_json(redact_data(line)) + "\n")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
