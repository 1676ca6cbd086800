"""Everything ``promptkit optimize`` checks before it sends a request.

The prompt to optimize (a variant id of the spec, or a template reference), the provider
to optimize for, the proposer (declared under ``graders:``), the examples input and the
pool (every field the template reads of an example), the split (no empty part) and the
budget (enough for one candidate plus the validation and test scoring). Each problem is a
one-line :class:`~promptkit.errors.ConfigError` (exit 2).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..datasets import iter_rows
from ..errors import ConfigError, PromptkitError
from ..running.budget import Budget, token_priced
from ..running.plan import EvalPlan
from ..running.spec import LoadedSpec, PromptVariant, Provider
from ..templates.store import LABELS_FILE, TemplateStore, check_label_name
from ..templates.template import PromptTemplate
from .structure import example_fields

Strategy = Literal["fewshot", "instructions", "both"]


@dataclass
class OptimizeSettings:
    """What to optimize and how: ``promptkit optimize``'s options.

    Attributes:
        prompt: A prompt id of the spec, or a template reference (``summarize@2``).
        provider: The provider to optimize for (needed when the spec has several).
        strategy: ``fewshot`` (which examples), ``instructions`` (rewrite the text) or
            ``both`` (instructions first, then examples).
        pool: A JSONL or CSV file of candidate examples (default: the train split's cases).
        k: Examples shown at a time.
        max_requests, max_cost: The budget: requests sent (300 when not given, also with
            ``max_cost``) and USD (providers priced per token).
        proposer: The provider (under ``graders:``) that proposes rewrites.
        split: Train/validation/test fractions, e.g. ``0.5/0.25/0.25``.
        seed: Seeds the split and the search.
        minibatch: Train cases per search round.
        promote: A label to move to the new version if the test comparison allows.
        resume: Continue the last optimization of this setup, with its spent budget.
        store_dir: Where runs and the cache live (default: ``.promptkit/`` beside the spec).
        alpha: Level of the one-sided paired tests.
    """

    prompt: str
    provider: str | None = None
    strategy: Strategy = "fewshot"
    pool: str | None = None
    k: int = 3
    max_requests: int | None = None
    max_cost: float | None = None
    proposer: str | None = None
    split: str = "0.5/0.25/0.25"
    seed: int = 0
    minibatch: int = 8
    promote: str | None = None
    resume: bool = False
    store_dir: str | Path | None = None
    alpha: float = 0.05


DEFAULT_MAX_REQUESTS = 300


def pick_variant(loaded: LoadedSpec, store: TemplateStore, wanted: str) -> PromptVariant:
    """The spec's prompt variant ``wanted`` names (its id), or one for a template reference
    (the spec's variant of that version when it has one, with its settings)."""
    spec = loaded.spec
    for variant in spec.prompts:
        if variant.id == wanted:
            return variant
    try:
        name, version = store.resolve(wanted)
    except PromptkitError as exc:  # an unknown template or version: one line, exit 2
        ids = ", ".join(v.id for v in spec.prompts)
        raise ConfigError(f"--prompt {wanted!r} is neither a prompt id of {loaded.path} "
                          f"({ids}) nor a template of its store: {exc}") from None
    for variant in spec.prompts:
        try:
            if store.resolve(variant.template) == (name, version):
                return variant
        except Exception:
            continue
    return PromptVariant(id=f"{name}@{version}", template=f"{name}@{version}")


def pick_provider(loaded: LoadedSpec, wanted: str | None) -> Provider:
    providers = loaded.spec.providers
    if wanted is None:
        if len(providers) > 1:
            ids = ", ".join(p.id for p in providers)
            raise ConfigError(f"{loaded.path} has several providers ({ids}): name the one "
                              "to optimize for with --provider")
        return providers[0]
    for provider in providers:
        if provider.id == wanted:
            return provider
    ids = ", ".join(p.id for p in providers)
    raise ConfigError(f"--provider {wanted!r} is not a provider of {loaded.path} ({ids})")


def pick_proposer(loaded: LoadedSpec, strategy: Strategy, wanted: str | None
                  ) -> Provider | None:
    """The proposer for the instructions strategy: a provider under ``graders:`` (never a
    silent default)."""
    if strategy == "fewshot":
        return None
    if importlib.util.find_spec("gepa") is None:
        raise ConfigError(f"--strategy {strategy} needs the gepa package: pip install "
                          "'promptkit-evals[optimize]' (or pip install gepa)")
    graders = loaded.spec.graders
    ids = ", ".join(g.id for g in graders) or "none"
    if wanted is None:
        raise ConfigError(f"--strategy {strategy} needs --proposer, a provider declared "
                          f"under graders: in {loaded.path} (declared: {ids})")
    for grader in graders:
        if grader.id == wanted:
            return grader
    raise ConfigError(f"--proposer {wanted!r} is not declared under graders: in "
                      f"{loaded.path} (declared: {ids})")


def examples_input(template: PromptTemplate, variant: PromptVariant, strategy: Strategy
                   ) -> tuple[str | None, set[str]]:
    """The input the few-shot search fills and the fields the body reads of each example:
    ``examples`` (or the one list input the body loops over)."""
    if strategy == "instructions":
        return None, set()
    if variant.fewshot is not None:
        raise ConfigError(f"prompt {variant.id!r} selects examples per case (fewshot:); the "
                          "fewshot strategy chooses one fixed set: use a variant without "
                          "fewshot:, or --strategy instructions")
    env = template.store.env
    looped = {name: example_fields(env, template.body, name)
              for name, spec in template.inputs.items() if spec.type == "list"}
    looped = {name: fields for name, fields in looped.items() if fields}
    if "examples" in looped:
        return "examples", looped["examples"]
    if len(looped) == 1:
        return next(iter(looped.items()))
    raise ConfigError(f"{template.ref} has no examples input to fill (a list input the body "
                      "loops over, reading fields of each item, such as `examples`); use "
                      "--strategy instructions or a template with one")


def read_pool(path: str | None, fields: set[str], plan: EvalPlan, train: list[str],
              held_out: list[str], inputs: set[str]) -> list[dict[str, Any]]:
    """The candidate examples: the ``--pool`` file's rows, or the train split's cases; each
    cut to the fields the template reads. A row showing a validation or test case is left
    out, so no held-out case is ever an example: one whose fields that are also the
    template's inputs (the question, the article: ``inputs``) equal that case's, or, when
    the example shares no field with the inputs, all of whose fields do.

    Raises:
        ConfigError: the pool lacks a field the template reads, or is empty.
    """
    held = set(held_out)
    wanted = set(train)
    key_fields = (fields & inputs) or fields
    held_rows = set()
    rows: list[tuple[str, dict[str, Any]]] = []
    for case in plan.cases():
        if case.id in held:
            held_rows.add(_key(case.vars, key_fields))
        elif path is None and case.id in wanted:
            rows.append((f"{plan.loaded.path}: case {case.id!r} (the pool is the train "
                         "split's cases without --pool)", case.vars))
    source = "the train split's cases"
    if path is not None:
        source = path
        rows = [(f"{path}:{line}", row) for line, row in iter_rows(Path(path))]
    pool = []
    for where, row in rows:
        missing = sorted(fields - set(row))
        if missing:
            raise ConfigError(f"{where}: the example lacks {', '.join(missing)}, which the "
                              "template reads of each example")
        example = {name: row[name] for name in sorted(fields)}
        if _key(example, key_fields) not in held_rows:
            pool.append(example)
    if not pool:
        raise ConfigError(f"{source}: no examples to choose from (after leaving out the "
                          "validation and test cases)")
    return pool


def check_label(label: str | None) -> None:
    """A label ``--promote`` may move: a name, not a number, ``latest`` or ``vN`` (those
    read as versions in a reference)."""
    if label is not None:
        try:
            check_label_name(label)
        except ConfigError as exc:
            raise ConfigError(f"--promote: {exc}") from None


def check_writable(store: TemplateStore, name: str, promote: str | None) -> None:
    """The template's folder, the lock and (with ``--promote``) the labels file can be
    written (tried, not inferred from modes: root passes every mode check), so a run does
    not spend its budget to fail at the end."""
    folder = store.root / name
    probe = folder / f".promptkit-probe-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
        for path in [store.root / "promptkit.lock",
                     *([folder / LABELS_FILE] if promote is not None else [])]:
            if path.exists() or path.is_symlink():
                with open(path, "a", encoding="utf-8"):
                    pass  # opened for appending, nothing written: its content stays
    except OSError as exc:
        where = exc.filename or folder
        raise ConfigError(f"{where}: not writable ({exc.strerror or exc}); the new version "
                          "could not be written (checked before any request)") from None


def make_budget(settings: OptimizeSettings, spent: dict[str, Any],
                priced: list[Provider]) -> Budget:
    """The optimization's budget: ``--max-requests`` (300 by default, with or without
    ``--max-cost``) and ``--max-cost``, which needs a provider priced per token."""
    if settings.max_cost is not None and not any(token_priced(p) for p in priced):
        raise ConfigError("--max-cost counts dollars from prices per token, and no provider "
                          "this optimization asks has one: use --max-requests")
    max_requests = settings.max_requests if settings.max_requests is not None \
        else DEFAULT_MAX_REQUESTS
    return Budget(max_requests, settings.max_cost, **spent)


def _key(row: dict[str, Any], fields: set[str]) -> tuple[str, ...]:
    return tuple(str(row.get(name, "")).strip() for name in sorted(fields))
