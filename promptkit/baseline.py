"""One side of a comparison: a stored run or a committed baseline file, per case.

A :class:`Side` holds, for each prompt × provider, one :class:`CaseOutcome` per case id
(repeats of a case folded together), plus what produced it: the model, the template
version and its sha256, the params. :func:`side_from_run` reads one from the run store,
:func:`load_baseline` from a JSON file that :func:`save_baseline` wrote.

The baseline file is meant to be committed: keys in a fixed order, one line per case,
scores rounded to 4 decimals, so a re-saved baseline diffs line by line.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .config import YamlDocument, validation_error
from .errors import ConfigError, PromptkitError
from .report import spec_order
from .results import CaseResult, RunInfo
from .store import RunStore, find_run

BASELINE_FORMAT = 1
# Error kinds that say nothing about the prompt: the endpoint did not answer.
OUTAGES = frozenset({"rate_limit", "server", "timeout", "connection"})
DIGITS = 4  # scores are kept to 4 decimals: enough to compare, quiet in diffs
OUTPUT_CHARS = 2000  # outputs are kept to show next to a flipped case, not to re-score


@dataclass
class CaseOutcome:
    """One case of one prompt × provider: its samples folded into one outcome.

    With one sample ``passed`` is that sample's verdict; with several, a case passes
    when most of its samples pass. An error counts as a failure, as in the leaderboard;
    but when every sample failed for the endpoint's sake (rate limit, server error,
    timeout, lost connection) the case is not ``answered``, and comparisons leave it
    out rather than blame the prompt for an outage.
    """

    case_id: str
    passed: bool
    pass_rate: float
    score: float
    metrics: dict[str, float] = field(default_factory=dict)
    output: str | None = None
    error: str | None = None
    samples: int = 1
    answered: bool = True


@dataclass
class SideRow:
    """One prompt × provider of a side, and what produced its answers."""

    prompt_id: str
    provider_id: str
    model: str | None = None
    template: str | None = None
    template_sha256: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    cases: dict[str, CaseOutcome] = field(default_factory=dict)

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

    def row(self, prompt_id: str, provider_id: str) -> SideRow | None:
        return next((r for r in self.rows
                     if r.prompt_id == prompt_id and r.provider_id == provider_id), None)


# -- from a run ----------------------------------------------------------------------


def _fold(case_id: str, samples: list[CaseResult]) -> CaseOutcome:
    n = len(samples)
    passes = sum(r.passed and r.error is None for r in samples)
    metrics: dict[str, list[float]] = {}
    for r in samples:
        for name, value in r.metrics.items():
            metrics.setdefault(name, []).append(value)
    first = samples[0]
    # Rounded as the baseline file is, so a run and its saved baseline compare equal.
    return CaseOutcome(
        case_id, passed=passes * 2 > n, pass_rate=round(passes / n, DIGITS),
        score=round(sum(r.score for r in samples) / n, DIGITS),
        metrics={name: round(sum(values) / len(values), DIGITS)
                 for name, values in metrics.items()},
        output=first.output, error=next((r.error for r in samples if r.error), None),
        samples=n, answered=any(r.error_kind not in OUTAGES for r in samples))


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
    return Side(f"run {run.run_id}", rows, run.run_id, run.eval_path, store.path)


# -- the baseline file -----------------------------------------------------------------


class _CaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    passed: bool
    pass_rate: float | None = None
    score: float
    metrics: dict[str, float] = {}
    output: str | None = None
    error: str | None = None
    samples: int = 1
    answered: bool = True


class _RowModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str
    provider: str
    model: str | None = None
    template: str | None = None
    template_sha256: list[str] = []
    params: dict[str, Any] = {}
    cases: list[_CaseModel]


class _BaselineModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    promptkit_baseline: int
    eval: str | None = None
    run_id: str | None = None
    saved_at: str | None = None
    rows: list[_RowModel]


def _case_json(case: CaseOutcome) -> str:
    data: dict[str, Any] = {"id": case.case_id, "passed": case.passed}
    if case.samples > 1:
        data["pass_rate"] = round(case.pass_rate, DIGITS)
        data["samples"] = case.samples
    data["score"] = round(case.score, DIGITS)
    if case.metrics:
        data["metrics"] = {name: round(value, DIGITS) for name, value in case.metrics.items()}
    if case.error is not None:
        data["error"] = case.error[:OUTPUT_CHARS]
    if not case.answered:
        data["answered"] = False
    if case.output is not None:
        data["output"] = case.output[:OUTPUT_CHARS]
    return json.dumps(data, ensure_ascii=False)


def baseline_text(side: Side, eval_path: str | None = None) -> str:
    """The baseline file's text: a header, then each row with one line per case."""
    head = {"promptkit_baseline": BASELINE_FORMAT, "eval": eval_path or side.eval_path,
            "run_id": side.run_id,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
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
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8", errors="backslashreplace")
        os.replace(temporary, path)
    except OSError as exc:
        raise PromptkitError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)


def load_baseline(path: str | Path) -> Side:
    """Read a baseline file.

    Raises:
        ConfigError: unreadable, not JSON, or not a baseline; names the file and the
            line or key.
    """
    filename = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("baseline file not found", filename) from None
    except OSError as exc:
        raise ConfigError(f"cannot read baseline: {exc.strerror}", filename) from None
    except UnicodeDecodeError:
        raise ConfigError("not a baseline file: not UTF-8 text", filename) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", filename, exc.lineno) from None
    if not isinstance(data, dict) or "promptkit_baseline" not in data:
        raise ConfigError("not a baseline file (no 'promptkit_baseline' key); write one "
                          "with `promptkit baseline save`", filename, 1)
    if isinstance(data["promptkit_baseline"], int) and data["promptkit_baseline"] > \
            BASELINE_FORMAT:
        raise ConfigError(f"baseline format {data['promptkit_baseline']} is newer than this "
                          f"promptkit supports ({BASELINE_FORMAT}); upgrade promptkit",
                          filename, 1, "promptkit_baseline")
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
        for c in r.cases:
            if c.id in row.cases:
                raise ConfigError(f"duplicate case id {c.id!r} in row {row.label}", filename)
            pass_rate = c.pass_rate if c.pass_rate is not None else float(c.passed)
            row.cases[c.id] = CaseOutcome(c.id, c.passed, pass_rate, c.score, c.metrics,
                                          c.output, c.error, c.samples, c.answered)
        rows.append(row)
    return Side(filename, rows, model.run_id, model.eval)


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
