"""``promptkit optimize``: search for a better version of a prompt; prints nothing.

:func:`optimize` splits the eval's cases (train / validation / test, seeded, stratified),
searches candidates on train minibatches (examples, instructions or both), picks the
winner on validation, scores the winner and the starting version once on the test split
with a paired comparison, writes the winner as the template's next version and, when
asked and the comparison allows, moves a label to it. It returns an
:class:`OptimizeReport`; the command line presents it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..comparing.stats import min_detectable_drop, paired_bootstrap, paired_pass_test
from ..errors import ConfigError, ExitCode, collecting_warnings
from ..files import atomic_write
from ..results import CaseResult, RunInfo
from ..running.budget import BudgetReached, check_budget
from ..running.plan import plan_eval
from ..running.spec import LoadedSpec, load_spec
from ..running.storage import default_paths
from ..templates.store import TemplateStore
from .fewshot_search import FINALISTS, ROUND_SIZE, search_examples
from .instructions import PROPOSER_PROMPT, Proposals, ProposerCall, search_instructions
from .setup import (
    OptimizeSettings,
    check_label,
    check_writable,
    examples_input,
    make_budget,
    pick_proposer,
    pick_provider,
    pick_variant,
    read_pool,
)
from .splits import Split, parse_fractions, split_cases
from .trials import Allowance, Cost, Outcome, Trials, mean_value
from .versions import Candidate, ScratchStore, strip_header_comment, write_winner

__all__ = ["OptimizeReport", "OptimizeSettings", "optimize"]


@dataclass
class OptimizeReport:
    """What an optimization did and found.

    Attributes:
        parent: The starting version (``summarize@2``).
        written: The version written (``summarize@3``), or None when no candidate beat
            the start on validation (or on a dry run).
        split: Case counts of train, validation and test.
        validation: Candidate key → (pass rate, mean score) on the validation split.
        winner: The chosen candidate's key (``start`` when none beat it).
        test: The test comparison (start and winner pass rates and scores, the one-sided
            p-values, the interval on the pass-rate difference), when it ran.
        promoted: Whether ``--promote`` moved the label; ``promote_note`` says why not.
        budget_used: Requests sent and USD spent by this optimization (all sessions).
        discarded: Proposals discarded, each with why.
        events: What happened, in order, for a presenter.
        dry_run: The plan only (nothing sent): the reserve and the allowance.
    """

    parent: str
    written: str | None = None
    split: dict[str, int] = field(default_factory=dict)
    validation: dict[str, tuple[float, float]] = field(default_factory=dict)
    winner: str = "start"
    test: dict[str, Any] = field(default_factory=dict)
    promoted: bool = False
    promote_note: str = ""
    budget_used: dict[str, float] = field(default_factory=dict)
    discarded: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    dry_run: dict[str, Any] | None = None
    stopped: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 done (a version written, or none better found); 1 ``--promote`` was refused
        (the version is written, the label not moved); 3 the budget or an endpoint
        stopped it (``--resume`` continues)."""
        if self.stopped:
            return ExitCode.RUN_INCOMPLETE
        refused = self.written is not None and self.promote_note and not self.promoted
        return ExitCode.FAILED if refused else ExitCode.OK


def optimize(spec: str | Path | LoadedSpec, settings: OptimizeSettings, *,
             on_event: Callable[[str], None] | None = None,
             on_result: Callable[[CaseResult], None] | None = None,
             on_start: Callable[[RunInfo, int, int], None] | None = None,
             dry_run: bool = False) -> OptimizeReport:
    """Optimize one prompt of an eval for one provider (see the module docstring).

    Raises:
        PromptkitError: invalid input (exit 2), found before any request; a run that
            could not complete (exit 3).
    """
    with collecting_warnings() as collected:
        loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
        job = _Job(loaded, settings, on_event or (lambda _: None), on_result)
        job.on_start = on_start
        try:
            report = job.run(dry_run)
        finally:
            job.close()
    report.warnings += collected
    return report


class _Job:
    """One optimization: its checks, state, phases and report."""

    def __init__(self, loaded: LoadedSpec, settings: OptimizeSettings,
                 on_event: Callable[[str], None],
                 on_result: Callable[[CaseResult], None] | None):
        self.loaded, self.settings, self.on_event = loaded, settings, on_event
        self.on_result = on_result
        self.on_start: Callable[[RunInfo, int, int], None] | None = None
        self.trials: Trials | None = None

    def close(self) -> None:
        """Stop the local servers and remove the scratch store (rebuilt on --resume)."""
        if self.trials is not None:
            self.trials.close()
            shutil.rmtree(self.trials.scratch.folder, ignore_errors=True)

    def event(self, text: str) -> None:
        self.report.events.append(text)
        self.on_event(text)

    # --- checks, before any request ---------------------------------------------------

    def prepare(self) -> None:
        s, loaded = self.settings, self.loaded
        fractions = parse_fractions(s.split)
        store = TemplateStore(loaded.templates_dir)
        self.variant = pick_variant(loaded, store, s.prompt)
        self.provider = pick_provider(loaded, s.provider)
        self.proposer = pick_proposer(loaded, s.strategy, s.proposer)
        narrowed = loaded.spec.model_copy(deep=True)
        narrowed.prompts, narrowed.providers = [self.variant], [self.provider]
        self.plan = plan_eval(LoadedSpec(narrowed, loaded.path, loaded.doc))
        self.parent = self.plan.templates[self.variant.id]
        self.store = self.plan.store
        self.examples_var, fields = examples_input(self.parent, self.variant, s.strategy)
        self.fields = fields
        stratum = "category" if self.plan.spec.category_field or any(
            case.reserved.get("category") is not None for case in self.plan.cases()) else (
            "label" if any("label" in case.vars for case in self.plan.cases()) else None)
        pairs = [(case.id, self.plan.category(case) if stratum == "category"
                  else None if stratum is None else str(case.vars.get("label")))
                 for case in self.plan.cases()]
        self.split: Split = split_cases(pairs, fractions, s.seed, stratum)
        self.inputs = set(self.parent.inputs) - {self.examples_var}
        self.pool = read_pool(s.pool, fields, self.plan, self.split.train,
                              self.split.validation + self.split.test, self.inputs) \
            if self.examples_var else []
        if self.examples_var and s.k > len(self.pool):
            raise ConfigError(f"--k {s.k} is more than the {len(self.pool)} examples of the "
                              "pool")
        check_label(s.promote)
        check_writable(self.store, self.parent.name, s.promote)
        priced = [self.provider, *([self.proposer] if self.proposer else []),
                  *self.plan.spec.graders]
        self.budget = make_budget(s, self.state_spent(), priced)
        self.budget.on_reserve = lambda: self.save_state("running")
        check_budget(self.plan, self.budget)
        start_examples = None
        if self.examples_var:
            default = self.parent.inputs[self.examples_var].default
            given = self.variant.vars.get(self.examples_var, default)
            start_examples = tuple(given) if isinstance(given, list) else None
        self.start = Candidate("start", strip_header_comment(self.parent.body), start_examples)
        self.open_trials()

    @property
    def store_dir(self) -> Path:
        """Where the eval keeps its runs and cache (the optimization's go in optimize/)."""
        if self.settings.store_dir:
            return Path(self.settings.store_dir)
        return default_paths(self.loaded.path)[0].parent

    def open_trials(self) -> None:
        store_dir = self.store_dir
        folder = store_dir / "optimize"
        folder.mkdir(parents=True, exist_ok=True)
        scratch = ScratchStore(self.store, folder / f"{self.session}-templates",
                               self.parent.name)
        self.trials = Trials(self.loaded, self.variant, self.provider, self.parent, scratch,
                             self.examples_var, folder, store_dir, self.budget,
                             on_result=self.on_result, on_start=self.on_start)

    @property
    def session(self) -> str:
        """What identifies this optimization for --resume (not its budget)."""
        s = self.settings
        pool_hash = hashlib.sha256(Path(s.pool).read_bytes()).hexdigest() if s.pool else ""
        key = [self.loaded.spec_hash(), s.prompt, s.provider, s.strategy, s.seed, s.split,
               s.k, pool_hash, s.proposer, s.minibatch]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]

    def state_path(self) -> Path:
        return self.store_dir / "optimize" / f"{self.session}.json"

    def state_spent(self) -> dict[str, Any]:
        path = self.state_path()
        if not self.settings.resume:
            return {}
        if not path.is_file():
            raise ConfigError("nothing to resume: no earlier optimization of this prompt, "
                              "provider and settings; run without --resume")
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("status") == "finished":
            raise ConfigError(f"nothing to resume: that optimization finished and wrote "
                              f"{state.get('written') or 'no version'}; run without --resume")
        return {"requests_sent": int(state["requests_sent"]),
                "cost_spent": float(state["cost_spent"])}

    def save_state(self, status: str) -> None:
        path = self.state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as file:
            # in flight counts as spent: a crash must not forget what was sent
            json.dump({"status": status, "requests_sent": self.budget.requests_sent,
                       "cost_spent": self.budget.cost_spent + self.budget.in_flight_cost,
                       "written": self.report.written}, file)

    # --- the phases -------------------------------------------------------------------

    def reserve(self) -> Cost:
        """The worst case of the validation and test scoring, kept from the search."""
        trials, split = self.trials, self.split
        longest = self.start
        if self.examples_var and self.pool:
            by_size = sorted(self.pool, key=lambda e: -len(json.dumps(e, ensure_ascii=False)))
            longest = Candidate("longest", self.start.body,
                                tuple(by_size[:self.settings.k]), "estimate")
        test = trials.worst_case([self.start, longest], split.test)
        if self.settings.strategy == "instructions":
            return test  # GEPA scores on validation as it searches
        validation = trials.worst_case([self.start, *[longest] * FINALISTS], split.validation)
        return test + validation

    def run(self, dry_run: bool) -> OptimizeReport:
        self.report = OptimizeReport(parent="")
        self.prepare()
        self.report.parent = self.parent.ref
        self.report.split = self.split.sizes()
        reserve = self.reserve()
        budget = self.budget
        # The plan is the same on --resume (what was spent is not subtracted): rounds are
        # charged their worst case, so a resumed search replays its steps from the cache.
        left_requests = None if budget.max_requests is None else \
            budget.max_requests - reserve.requests
        left_dollars = None if budget.max_cost is None else budget.max_cost - reserve.dollars
        first = self.first_step()
        allowance = Allowance(left_requests, left_dollars)
        if not allowance.fits(first):
            raise ConfigError(self.too_small(reserve, first))
        if dry_run:
            self.report.dry_run = {"reserve": reserve, "allowance": None if left_requests is None
                                   else Cost(left_requests, left_dollars or 0.0),
                                   "round": first, "pool": len(self.pool)}
            return self.report
        self.save_state("running")
        self.trials.on_spent = lambda: self.save_state("running")
        self.trials.on_event = self.event
        try:
            winner, outcomes = self.search(allowance)
            self.finish(winner, outcomes)
        except BudgetReached as exc:
            self.report.stopped = f"{exc}; continue with --resume (and a larger budget)"
            self.save_state("interrupted")
            return self.report
        except BaseException:  # Ctrl+C, an endpoint gone: --resume continues
            self.save_state("interrupted")
            raise
        self.report.budget_used = {"requests": budget.requests_sent,
                                   "cost_usd": round(budget.cost_spent, 6)}
        self.save_state("finished")
        return self.report

    def first_step(self) -> Cost:
        """The worst case of the least search that can find anything: a random round
        (the start and its candidates on a minibatch) for examples; GEPA's scoring of the
        start on validation, one proposal and two minibatch runs for instructions; both,
        with ``both`` (each half of the allowance must cover its own)."""
        s, trials, split = self.settings, self.trials, self.split
        batch = split.train[:s.minibatch]
        fewshot = trials.worst_case([self.start] * (ROUND_SIZE + 1), batch)
        if s.strategy == "fewshot":
            return fewshot
        ask = ProposerCall(trials, self.proposer).cost(
            PROPOSER_PROMPT.format(template=self.start.body, cases=""))
        step = trials.worst_case([self.start], batch)
        instructions = trials.worst_case([self.start], split.validation) + ask + step + step
        if s.strategy == "instructions":
            return instructions
        bigger = max(fewshot, instructions, key=lambda c: (c.requests, c.dollars))
        return bigger + bigger

    def too_small(self, reserve: Cost, first: Cost) -> str:
        need = reserve + first
        budget = self.budget
        if budget.max_requests is not None and need.requests > budget.max_requests:
            return (f"the budget of {budget.max_requests} requests is too small for one "
                    f"candidate: a search round needs {first.requests}, the validation and "
                    f"test scoring {reserve.requests} (worst case); raise --max-requests to "
                    f"at least {need.requests}")
        return (f"the budget of ${budget.max_cost} is too small for one candidate: a "
                f"search round may cost ${first.dollars:.4f}, the validation and test "
                f"scoring ${reserve.dollars:.4f} (worst case); raise --max-cost")

    def search(self, allowance: Allowance) -> tuple[Candidate, dict[str, dict[str, Outcome]]]:
        """Search, then choose on validation: the winner and each validated candidate's
        outcomes there."""
        s, split = self.settings, self.split
        validated: dict[str, tuple[Candidate, dict[str, Outcome]]] = {}
        start = self.start
        if s.strategy in ("instructions", "both"):
            share = allowance
            if s.strategy == "both":  # half for the rewrite, the rest for the examples
                share = Allowance(_half(allowance.max_requests), _half(allowance.max_dollars))
            self.event(f"instructions: GEPA from {self.parent.ref}, proposer "
                       f"{self.proposer.id}")
            proposals = Proposals()
            validated = search_instructions(
                self.trials, start, split.train, split.validation, share, s.seed,
                s.minibatch, ProposerCall(self.trials, self.proposer), proposals)
            self.report.discarded = proposals.discarded
            allowance.charged = allowance.charged + share.charged
            if validated and s.strategy == "both":
                start = _best(validated)  # the examples are searched for the best rewrite
        if s.strategy in ("fewshot", "both"):
            if s.pool is None:
                self.bootstrap(start, allowance)
            self.event(f"fewshot: {len(self.pool)} examples in the pool, k={s.k}")
            finalists = search_examples(self.trials, start, self.pool, s.k, split.train,
                                        allowance, s.seed, s.minibatch)
            todo = [c for c in [self.start, start, *finalists] if c.key not in validated]
            todo = list({c.key: c for c in todo}.values())
            scores = self.trials.score(todo, split.validation, phase="validation")
            for cand in todo:
                validated[cand.key] = (cand, scores.get(cand.key, {}))
        if "start" not in validated:
            scores = self.trials.score([self.start], split.validation, phase="validation")
            validated["start"] = (self.start, scores.get("start", {}))
        for key, (_, outcomes) in validated.items():
            self.report.validation[key] = _rates(outcomes)
        winner = _best(validated)
        self.report.winner = winner.key
        return winner, {key: outcomes for key, (_, outcomes) in validated.items()}

    def bootstrap(self, start: Candidate, allowance: Allowance) -> None:
        """Without --pool, the examples are the train cases the starting version passes
        (scored first, when the allowance covers it; else every train case)."""
        train = self.split.train
        if not allowance.covers(self.trials.worst_case([start], train)):
            self.event("bootstrap: the budget does not cover scoring the train split; every "
                       "train case is a candidate example")
            return
        outcomes = self.trials.score([start], train, phase="bootstrap").get(start.key, {})
        passing = [case for case in train if case in outcomes and outcomes[case].passed >= 1]
        if len(passing) < self.settings.k:
            self.event(f"bootstrap: {len(passing)} train cases pass, fewer than k; every "
                       "train case is a candidate example")
            return
        self.pool = read_pool(None, self.fields, self.plan, passing,
                              self.split.validation + self.split.test, self.inputs)
        self.event(f"bootstrap: the {len(passing)} train cases {start.key} passes are the "
                   "candidate examples")

    def finish(self, winner: Candidate, outcomes: dict[str, dict[str, Outcome]]) -> None:
        """Score the start and the winner once on the test split, write the winner and
        promote it when asked and the comparison allows."""
        if winner.key == "start":
            self.event("no candidate beat the starting version on validation; nothing "
                       "written")
            return
        split = self.split
        self.event(f"test: {self.start.key} and {winner.key} on {len(split.test)} cases")
        scores = self.trials.score([self.start, winner], split.test, phase="test")
        before = [scores["start"][c].passed for c in split.test if c in scores["start"]
                  and c in scores[winner.key]]
        after = [scores[winner.key][c].passed for c in split.test if c in scores["start"]
                 and c in scores[winner.key]]
        p_worse, p_better, test_name = paired_pass_test(before, after, seed=self.settings.seed)
        interval = paired_bootstrap(before, after, seed=self.settings.seed)
        start_rates, winner_rates = _rates(scores["start"]), _rates(scores[winner.key])
        self.report.test = {
            "cases": len(before), "start": start_rates, "winner": winner_rates,
            "p_worse": p_worse, "p_better": p_better, "test": test_name,
            "difference": interval.mean, "interval": (interval.low, interval.high),
            "detectable": min_detectable_drop(len(before), self.settings.alpha)}
        provenance = {"optimizer": self.provenance(winner)}
        written = write_winner(self.store, self.parent, winner, self.examples_var, provenance)
        self.report.written = written.ref
        self.event(f"wrote {written.filename} ({written.ref}) and locked it")
        self.promote(written.version, p_worse, interval.mean)

    def provenance(self, winner: Candidate) -> dict[str, Any]:
        s, test = self.settings, self.report.test
        validation = self.report.validation
        return {
            "strategy": s.strategy, "seed": s.seed, "eval": self.loaded.path.name,
            "prompt": self.variant.id, "provider": self.provider.id,
            "split": self.split.sizes(),
            "budget_used": {"requests": self.budget.requests_sent,
                            "cost_usd": round(self.budget.cost_spent, 6)},
            "validation": {"pass_rate": round(validation[winner.key][0], 4),
                           "score": round(validation[winner.key][1], 4),
                           "parent_pass_rate": round(validation["start"][0], 4),
                           "parent_score": round(validation["start"][1], 4)},
            "test": {"cases": test["cases"], "pass_rate": round(test["winner"][0], 4),
                     "parent_pass_rate": round(test["start"][0], 4),
                     "score": round(test["winner"][1], 4),
                     "parent_score": round(test["start"][1], 4),
                     "p_worse": round(test["p_worse"], 6),
                     "p_better": round(test["p_better"], 6)}}

    def promote(self, version: int, p_worse: float, difference: float) -> None:
        label = self.settings.promote
        if label is None:
            return
        if p_worse <= self.settings.alpha:
            self.report.promote_note = (f"{label} left where it was: the new version is "
                                        f"significantly worse on the test split "
                                        f"(p={p_worse:.3g})")
        elif difference <= 0:
            self.report.promote_note = (f"{label} left where it was: the new version does "
                                        f"not pass more test cases ({difference:+.1%})")
        else:
            self.store.set_label(self.parent.name, label, version)
            self.report.promoted = True
            self.report.promote_note = f"{label} now points at {self.parent.name}@{version}"
        self.event(self.report.promote_note)


def _best(validated: dict[str, tuple[Candidate, dict[str, Outcome]]]) -> Candidate:
    """The highest mean value on validation; a tie keeps the start (no change without a
    gain), then the earlier candidate."""
    def rank(key: str) -> tuple[float, bool, int, str]:
        number = int(key[1:]) if key[1:].isdigit() else 0
        return (-mean_value(validated[key][1]), key != "start", number, key)

    return validated[min(validated, key=rank)][0]


def _rates(outcomes: dict[str, Outcome]) -> tuple[float, float]:
    if not outcomes:
        return 0.0, 0.0
    count = len(outcomes)
    return (sum(o.passed for o in outcomes.values()) / count,
            sum(o.score for o in outcomes.values()) / count)


def _half(value: float | int | None) -> Any:
    if value is None:
        return None
    return value // 2 if isinstance(value, int) else value / 2
