"""One side of a comparison: a stored run or a committed baseline file, per case.

A :class:`Side` holds, for each prompt × provider, one :class:`SideCase` per case id
(every sample of the case: one per repeat), plus what produced it: the model, the
template version and its sha256, the params. :func:`side_from_run` reads one from the run
store, :func:`load_baseline` from a JSON file that :func:`save_baseline` wrote.

The baseline file is meant to be committed: keys in a fixed order, one line per case,
scores rounded to 4 decimals, so a re-saved baseline diffs line by line. Format 2 keeps
each repeat's outcome (``"passes": [true, false, null]``, ``null`` for a sample the
endpoint never answered); format 3 is format 2 with each case's ``"category"``, written
only when some case has one (so a baseline without categories stays format 2, readable
by older releases); format 1 files (one folded verdict per case) are still read.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import YamlDocument, read_text, validation_error
from ..errors import ConfigError, PromptkitError
from ..files import atomic_write
from ..results import OUTAGE_KINDS, CaseResult, RunInfo, shown_output, spec_order
from ..running.storage import RunStore, find_run

BASELINE_FORMAT = 3  # the newest this release reads
READABLE_FORMATS = (1, 2, 3)
CATEGORY_FORMAT = 3  # cases keep their category: written when some case has one
PLAIN_FORMAT = 2  # written otherwise, so the file stays readable by older releases
DIGITS = 4  # scores are kept to 4 decimals: enough to compare, quiet in diffs
OUTPUT_CHARS = 2000  # outputs are kept to show next to a flipped case, not to re-score


@dataclass
class SideCase:
    """One case of one prompt × provider: the outcome of each of its samples.

    ``passes`` has one entry per sample (repeat): ``True`` passed, ``False`` failed (an
    error that is the prompt's or the model's counts as a failure, as in the leaderboard),
    ``None`` the endpoint or a grader never answered (rate limit, server error, timeout,
    lost connection). Comparisons use the answered samples only and leave a case with
    none out, rather than blame the prompt for an outage.
    """

    case_id: str
    passes: list[bool | None]
    score: float
    metrics: dict[str, float] = field(default_factory=dict)
    output: str | None = None
    error: str | None = None
    category: str | None = None  # the case's category, for per-category changes

    @property
    def answered(self) -> list[bool]:
        """The samples the endpoint answered, in order."""
        return [p for p in self.passes if p is not None]

    @property
    def is_answered(self) -> bool:
        return any(p is not None for p in self.passes)

    @property
    def pass_rate(self) -> float:
        """The fraction of answered samples that passed (0.0 when none was answered)."""
        answered = self.answered
        return sum(answered) / len(answered) if answered else 0.0

    @property
    def passed(self) -> bool:
        """Every answered sample passed (with one sample: that sample's verdict)."""
        answered = self.answered
        return bool(answered) and all(answered)

    @property
    def samples(self) -> int:
        return len(self.passes)

    @property
    def flaky(self) -> bool:
        """Its answered samples disagree: some passed, some failed."""
        answered = self.answered
        return any(answered) and not all(answered)


@dataclass
class SideRow:
    """One prompt × provider of a side, and what produced its answers."""

    prompt_id: str
    provider_id: str
    model: str | None = None
    template: str | None = None
    template_sha256: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    cases: dict[str, SideCase] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.prompt_id} × {self.provider_id}"


@dataclass
class Side:
    """A run or a baseline file, as compared: ``label`` says which, for people."""

    label: str
    rows: list[SideRow]
    run_id: str | None = None
    eval_path: str | None = None
    store_path: Path | None = None  # the run store, when the side is a stored run
    gate: dict[str, Any] | None = None  # the spec's `gate:` (which rows the verdict judges)

    def row(self, prompt_id: str, provider_id: str) -> SideRow | None:
        return next((r for r in self.rows
                     if r.prompt_id == prompt_id and r.provider_id == provider_id), None)


# -- from a run ----------------------------------------------------------------------


def sample_outcome(result: CaseResult) -> bool | None:
    """One result as a comparison counts it: passed, failed, or ``None`` for an outage."""
    if result.error_kind in OUTAGE_KINDS:
        return None
    return result.passed and result.error is None


def _fold(case_id: str, samples: list[CaseResult]) -> SideCase:
    passes = [sample_outcome(r) for r in samples]
    answered = [r for r, p in zip(samples, passes, strict=True) if p is not None]
    metrics: dict[str, list[float]] = {}
    for r in answered:
        for name, value in r.metrics.items():
            metrics.setdefault(name, []).append(value)
    shown = next((r for r in answered if r.output is not None), samples[0])
    # Rounded as the baseline file is, so a run and its saved baseline compare equal.
    return SideCase(
        case_id, passes,
        score=round(sum(r.score for r in answered) / len(answered), DIGITS) if answered else 0.0,
        metrics={name: round(sum(values) / len(values), DIGITS)
                 for name, values in metrics.items()},
        output=shown_output(shown), error=next((r.error for r in samples if r.error), None),
        category=samples[0].category)


def _row_settings(config: dict[str, Any], prompt_id: str, provider_id: str
                  ) -> dict[str, Any]:
    """Model, template reference and params of one row, from a run's resolved spec."""
    prompt = next((p for p in config.get("prompts", []) if p.get("id") == prompt_id), {})
    provider = next((p for p in config.get("providers", []) if p.get("id") == provider_id),
                    {})
    params = {**provider.get("params", {}), **prompt.get("params", {})}
    if provider.get("api"):
        params = {"api": provider["api"], **params}
    return {"model": provider.get("model") or provider_id, "template": prompt.get("template"),
            "params": params}


def side_from_run(store: RunStore, run: RunInfo) -> Side:
    """Read a run's results into a :class:`Side` (results stream in case order)."""
    rows: list[SideRow] = []
    row: SideRow | None = None
    pending: list[CaseResult] = []
    hashes: set[str] = set()

    def flush() -> None:
        if row is not None and pending:
            row.cases[pending[0].case_id] = _fold(pending[0].case_id, pending)

    for result in store.results(run.run_id):
        if row is None or (result.prompt_id, result.provider_id) != (row.prompt_id,
                                                                     row.provider_id):
            flush()
            if row is not None:
                row.template_sha256 = sorted(hashes)
            pending, hashes = [], set()
            row = SideRow(result.prompt_id, result.provider_id,
                          **_row_settings(run.config, result.prompt_id, result.provider_id))
            rows.append(row)
        elif pending and pending[0].case_id != result.case_id:
            flush()
            pending = []
        pending.append(result)
        if result.template_sha256:
            hashes.add(result.template_sha256)
    flush()
    if row is not None:
        row.template_sha256 = sorted(hashes)
    rows.sort(key=spec_order([p.get("id") for p in run.config.get("prompts", [])],
                             [p.get("id") for p in run.config.get("providers", [])]))
    return Side(f"run {run.run_id}", rows, run.run_id, run.eval_path, store.path,
                gate=run.config.get("gate"))


def variant_sides(store: RunStore, run: RunInfo, prompt_a: str, prompt_b: str,
                  provider_id: str | None = None) -> tuple[Side, Side]:
    """Two prompt variants of one run as two sides, for a paired A/B comparison.

    Both rows are renamed ``B vs A`` so the comparison pairs them; the sides' labels say
    which variant each is.

    Raises:
        PromptkitError: an unknown prompt, or a provider to choose (``provider_id``).
    """
    side = side_from_run(store, run)
    providers = list(dict.fromkeys(row.provider_id for row in side.rows))
    if provider_id is None:
        if len(providers) > 1:
            raise PromptkitError(f"run {run.run_id} has several providers "
                                 f"({', '.join(providers)}); pick one with --provider")
        provider_id = providers[0] if providers else ""
    rows = {}
    for prompt_id in (prompt_a, prompt_b):
        row = side.row(prompt_id, provider_id)
        if row is None:
            known = ", ".join(dict.fromkeys(r.prompt_id for r in side.rows
                                            if r.provider_id == provider_id)) or "none"
            raise PromptkitError(f"run {run.run_id} has no prompt {prompt_id!r} on provider "
                                 f"{provider_id!r} (prompts: {known})")
        rows[prompt_id] = row
    pair = f"{prompt_b} vs {prompt_a}"
    sides = []
    for prompt_id in (prompt_a, prompt_b):
        row = rows[prompt_id]
        renamed = SideRow(pair, provider_id, row.model, row.template, row.template_sha256,
                          row.params, row.cases)
        sides.append(Side(f"{prompt_id} (run {run.run_id})", [renamed], run.run_id,
                          run.eval_path, store.path))
    return sides[0], sides[1]


# -- the baseline file -----------------------------------------------------------------


Unit = Field(ge=0, le=1, allow_inf_nan=False)


class _CaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    category: str | None = None  # format 3
    passed: bool | None = None  # format 2: one sample (null: not answered); format 1: folded
    passes: list[bool | None] | None = Field(None, min_length=1)  # format 2, several samples
    score: float = Unit
    metrics: dict[str, float] = {}
    output: str | None = None
    error: str | None = None
    pass_rate: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)  # format 1
    samples: int = Field(1, ge=1)  # format 1
    answered: bool = True  # format 1

    @field_validator("metrics")
    @classmethod
    def _metrics_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, number in value.items():
            if not (math.isfinite(number) and 0 <= number <= 1):
                raise ValueError(f"metric {name!r} is {number}, not a number in [0, 1]")
        return value

    def outcome(self, fmt: int) -> SideCase:
        if fmt == 1:  # a folded verdict: rebuild per-sample outcomes from the rate
            if not self.answered:
                passes: list[bool | None] = [None] * self.samples
            else:
                rate = self.pass_rate if self.pass_rate is not None else float(bool(self.passed))
                passed = round(rate * self.samples)
                passes = [True] * passed + [False] * (self.samples - passed)
        elif self.passes is not None:
            passes = list(self.passes)
        else:
            passes = [self.passed]
        return SideCase(self.id, passes, self.score, self.metrics, self.output, self.error,
                        self.category)


class _RowModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str
    provider: str
    model: str | None = None
    template: str | None = None
    template_sha256: list[str] = []
    params: dict[str, Any] = {}
    cases: list[_CaseModel] = Field(min_length=1)


class _BaselineModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    promptkit_baseline: int
    eval: str | None = None
    run_id: str | None = None
    saved_at: str | None = None
    gate: dict[str, Any] | None = None
    rows: list[_RowModel] = Field(min_length=1)


def _case_json(case: SideCase) -> str:
    data: dict[str, Any] = {"id": case.case_id}
    if case.category is not None:
        data["category"] = case.category
    if case.samples == 1:
        data["passed"] = case.passes[0]
    else:
        data["passes"] = case.passes
    data["score"] = round(case.score, DIGITS)
    if case.metrics:
        data["metrics"] = {name: round(value, DIGITS) for name, value in case.metrics.items()}
    if case.error is not None:
        data["error"] = case.error[:OUTPUT_CHARS]
    if case.output is not None:
        data["output"] = case.output[:OUTPUT_CHARS]
    return json.dumps(data, ensure_ascii=False)


def baseline_text(side: Side, eval_path: str | None = None) -> str:
    """The baseline file's text: a header, then each row with one line per case."""
    categories = any(case.category is not None for row in side.rows
                     for case in row.cases.values())
    head = {"promptkit_baseline": CATEGORY_FORMAT if categories else PLAIN_FORMAT,
            "eval": eval_path or side.eval_path,
            "run_id": side.run_id,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if side.gate:
        head["gate"] = side.gate
    lines = ["{"]
    lines += [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
    lines.append('  "rows": [')
    for i, row in enumerate(side.rows):
        settings = {"prompt": row.prompt_id, "provider": row.provider_id, "model": row.model,
                    "template": row.template, "template_sha256": row.template_sha256,
                    "params": row.params}
        lines.append("    {")
        lines += [f"      {json.dumps(k)}: {json.dumps(v, ensure_ascii=False, sort_keys=True)},"
                  for k, v in settings.items()]
        lines.append('      "cases": [')
        cases = [f"        {_case_json(case)}" for case in row.cases.values()]
        lines.append(",\n".join(cases))
        lines.append("      ]")
        lines.append("    }" + ("," if i < len(side.rows) - 1 else ""))
    lines += ["  ]", "}", ""]
    return "\n".join(line for line in lines if line)  + "\n"


def save_baseline(side: Side, path: str | Path, eval_path: str | None = None) -> None:
    """Write ``side`` as a baseline file, atomically (a failed write keeps the old file)."""
    path = Path(path)
    if not side.rows:
        raise PromptkitError(f"{side.label} has no results to save as a baseline")
    text = baseline_text(side, eval_path)
    with atomic_write(path) as file:
        file.write(text)


def load_baseline(path: str | Path) -> Side:
    """Read a baseline file.

    Raises:
        ConfigError: unreadable, not JSON, or not a baseline; names the file and the
            line or key.
    """
    filename = str(path)
    if not Path(path).exists():
        raise ConfigError("baseline file not found", filename)
    text = read_text(path, "baseline")
    try:
        data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", filename, exc.lineno) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"invalid baseline: {exc}", filename) from None
    if not isinstance(data, dict) or "promptkit_baseline" not in data:
        raise ConfigError("not a baseline file (no 'promptkit_baseline' key); write one "
                          "with `promptkit baseline save`", filename, 1)
    fmt = data["promptkit_baseline"]
    if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > BASELINE_FORMAT:
        raise ConfigError(f"baseline format {fmt} is newer than this promptkit supports "
                          f"({BASELINE_FORMAT}); upgrade promptkit", filename, 1,
                          "promptkit_baseline")
    if fmt not in READABLE_FORMATS or isinstance(fmt, bool):
        raise ConfigError(f"unknown baseline format {fmt!r} (this promptkit reads "
                          f"{', '.join(map(str, READABLE_FORMATS))})", filename, 1,
                          "promptkit_baseline")
    try:
        model = _BaselineModel.model_validate(data)
    except ValidationError as exc:
        try:
            doc = YamlDocument(text, filename)  # JSON is YAML: finds the line of the key
        except ConfigError:
            doc = YamlDocument("{}", filename)
        raise validation_error(exc, doc) from None
    rows = []
    for r in model.rows:
        row = SideRow(r.prompt, r.provider, r.model, r.template, r.template_sha256, r.params)
        if row.label in {other.label for other in rows}:
            raise ConfigError(f"row {row.label} appears twice", filename)
        for c in r.cases:
            if c.id in row.cases:
                raise ConfigError(f"duplicate case id {c.id!r} in row {row.label}", filename)
            if c.category is not None and fmt < CATEGORY_FORMAT:
                raise ConfigError(f"case {c.id!r} of row {row.label} has a category, which "
                                  f"baseline format {fmt} does not keep (format "
                                  f"{CATEGORY_FORMAT} does)", filename)
            row.cases[c.id] = c.outcome(fmt)
        rows.append(row)
    return Side(filename, rows, model.run_id, model.eval, gate=model.gate)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"duplicate key {key!r}")
        data[key] = value
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a baseline may hold")


def resolve_side(ref: str, store_paths: list[Path]) -> Side:
    """A baseline file when ``ref`` names a file (or ends in ``.json``), else a run.

    Args:
        ref: A file path, or a run id, unique prefix or ``last``.
        store_paths: Run databases to look for the run in (see ``find_run_stores``).

    Raises:
        PromptkitError: a missing or invalid file, or no such run (the message lists
            recent runs).
    """
    if Path(ref).is_file() or ref.endswith(".json"):
        return load_baseline(ref)
    store, run = find_run(ref, store_paths)
    with store:
        return side_from_run(store, run)
