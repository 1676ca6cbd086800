"""Candidates scored on cases, through the normal runner.

:class:`Trials` turns a list of candidates into an eval of its own — the spec's prompt
variant once per candidate (each a version in the scratch store), the one provider being
optimized for, only the cases asked for — and runs it with the runner: the eval's cache,
retries, concurrency, costs and budget, its assertions as the score. Each call is a run
in the optimization's own run store (``<store>/optimize/runs.db``, apart from the eval's
runs, so ``promptkit eval --resume`` and ``last`` never pick one up); the cache is the
eval's, so the written winner re-scores from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EndpointError
from ..results import CaseResult, RunInfo
from ..running.budget import Budget, BudgetReached, worst_case_cost
from ..running.local import LocalServer
from ..running.plan import EvalPlan, plan_eval
from ..running.runner import FinishedRun, RunOptions, run_eval, run_sync
from ..running.spec import InlineCase, LoadedSpec, PromptVariant, Provider
from ..templates.template import PromptTemplate
from .versions import PROPOSER_TEMPLATE, Candidate, ScratchStore


@dataclass
class Outcome:
    """How one candidate did on one case (repeats averaged).

    Attributes:
        passed: The fraction of its samples that passed (0 or 1 without repeats).
        score: The mean assertion score (0–1).
        output: The answer (the first sample's), for the proposer to read.
        reasons: The failed assertions' reasons.
        error: Why it has no answer, when it has none.
    """

    passed: float
    score: float
    output: str = ""
    reasons: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def value(self) -> float:
        """What the search maximizes: a pass counts 1, the score breaks ties (up to 0.01
        per case, so pass rates decide between sets of fewer than 100 cases)."""
        return self.passed + self.score / 100


Scores = dict[str, dict[str, Outcome]]  # candidate key -> case id -> outcome


def mean_value(outcomes: dict[str, Outcome]) -> float:
    """The mean :attr:`Outcome.value` over cases (0 with none)."""
    return sum(o.value for o in outcomes.values()) / len(outcomes) if outcomes else 0.0


@dataclass
class Cost:
    """Requests and dollars, worst case or spent."""

    requests: int = 0
    dollars: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.requests + other.requests, self.dollars + other.dollars)


@dataclass
class Allowance:
    """What the search may plan to spend: the budget minus the reserve kept for the
    validation and the test scoring. Rounds are charged their worst case, cached or not,
    so the search takes the same steps however much the cache answers."""

    max_requests: int | None
    max_dollars: float | None
    charged: Cost = field(default_factory=Cost)

    def fits(self, cost: Cost) -> bool:
        """Whether ``cost`` fits what is left (nothing is charged)."""
        total = self.charged + cost
        return ((self.max_requests is None or total.requests <= self.max_requests)
                and (self.max_dollars is None or total.dollars <= self.max_dollars + 1e-12))

    def covers(self, cost: Cost) -> bool:
        """Charge ``cost`` and say yes when it fits what is left; else charge nothing."""
        if not self.fits(cost):
            return False
        self.charged = self.charged + cost
        return True


class Trials:
    """Scores candidates of one prompt variant on one provider, through the runner."""

    def __init__(self, loaded: LoadedSpec, variant: PromptVariant, provider: Provider,
                 parent: PromptTemplate, scratch: ScratchStore, examples_var: str | None,
                 runs_dir: Path, cache_dir: Path, budget: Budget,
                 on_result: Callable[[CaseResult], None] | None = None,
                 on_start: Callable[[RunInfo, int, int], None] | None = None):
        self.loaded = loaded
        self.variant = variant
        self.provider = provider
        self.parent = parent
        self.scratch = scratch
        self.examples_var = examples_var
        self.runs_dir = runs_dir
        self.cache_dir = cache_dir  # the eval's: the written winner re-scores from it
        self.budget = budget
        self.on_result = on_result
        self.on_start = on_start  # each candidate run starting (a progress display)
        self.servers: dict[str, LocalServer] = {}
        self.on_spent: Callable[[], None] | None = None  # after each run: save the spent
        self.on_event: Callable[[str], None] | None = None
        self.log: list[tuple[str, list[str]]] = []  # (phase, case ids) of each scoring
        self.run_ids: list[str] = []
        self.case_vars: dict[str, dict[str, Any]] = {}

    def plan(self, candidates: Iterable[Candidate]) -> EvalPlan:
        """The eval of ``candidates``: one prompt each (the variant's settings, the
        candidate's version), the provider being optimized for."""
        spec = self.loaded.spec.model_copy(deep=True)
        variants = []
        for candidate in candidates:
            reference = self.scratch.reference(self.parent, candidate, self.examples_var)
            variant = self.variant.model_copy(deep=True, update={
                "id": candidate.key, "template": reference})
            if self.examples_var and candidate.examples is not None:
                variant.vars.pop(self.examples_var, None)
            variants.append(variant)
        spec.prompts = variants
        spec.providers = [self.provider]
        spec.templates = str(self.scratch.folder.resolve())
        spec.threshold = None
        spec.gate = None
        return plan_eval(LoadedSpec(spec, self.loaded.path, self.loaded.doc))

    def worst_case(self, candidates: list[Candidate], case_ids: list[str]) -> Cost:
        """Requests and dollars the candidates would cost on the cases if nothing came
        from the cache: samples × turns requests per case, each at its worst-case cost."""
        plan = self.plan(candidates)
        wanted = set(case_ids)
        cost = Cost()
        for case in plan.cases():
            if case.id not in wanted:
                continue
            for variant in plan.spec.prompts:
                cost += self._case_cost(plan, variant, case)
        return cost

    def _case_cost(self, plan: EvalPlan, variant: PromptVariant, case: Any) -> Cost:
        """One case's worst case: samples × turns requests, each at its worst cost, and a
        request per judged assertion (a judge's worst cost: the prompt and the answer's
        max_tokens at its input price, its own max_tokens at its output price)."""
        answers = plan.samples(variant) * plan.spec.repeat
        if case.reserved.get("turns") or case.reserved.get("tool_results") \
                or case.reserved.get("tool_handler"):
            answers *= plan.max_turns(variant)
        judges = [a for a in plan.assertions(variant, case)
                  if a.registered_type.provider is not None and a.provider]
        dollars = 0.0
        if self.budget.counts_cost:
            prompt = plan.prompt(variant, self.provider,
                                 plan.variables(variant, case, offline=True))
            body = plan.body(variant, self.provider, prompt)
            dollars = worst_case_cost(body, self.provider) * answers
            graders = {g.id: g for g in plan.spec.graders}
            for assertion in judges:
                grader = graders.get(assertion.provider)
                if grader is not None:
                    judged = {"model": grader.model, "messages": prompt if isinstance(
                        prompt, list) else [{"role": "user", "content": prompt}],
                              **grader.params}
                    dollars += worst_case_cost(judged, grader) * answers
        return Cost(answers * (1 + len(judges)), dollars)

    def score(self, candidates: list[Candidate], case_ids: list[str], phase: str) -> Scores:
        """Run the candidates on the cases; their outcomes by candidate key and case id.

        Raises:
            BudgetReached: the budget stopped the run (its finished cases are stored and
                cached; the caller stops searching).
            EndpointError: the provider could not be reached.
        """
        plan = self.plan(candidates)
        self.log.append((phase, list(case_ids)))
        if self.on_event is not None and phase in ("search", "validation"):
            keys = ", ".join(c.key for c in candidates)
            where = "train" if phase == "search" else "validation"
            self.on_event(f"{phase}: {keys} on {len(case_ids)} {where} cases "
                          f"({self.budget.requests_sent} requests sent so far)")
        finished = self._run(plan, frozenset(case_ids), self.on_result)
        if finished.unreachable:
            provider, why = next(iter(finished.unreachable.items()))
            raise EndpointError(f"{provider} could not be reached: {why}")
        scores = _outcomes(finished.results())
        outcomes = [o for cases in scores.values() for o in cases.values()]
        if outcomes and all(o.error for o in outcomes):  # not a verdict on the prompts
            raise EndpointError(f"every request of the {phase} scoring failed (first: "
                                f"{outcomes[0].error}); nothing can be compared")
        return scores

    def _run(self, plan: EvalPlan, case_ids: frozenset[str] | None,
             on_result: Callable[[CaseResult], None] | None) -> FinishedRun:
        """One run of the runner with the eval's cache, the budget and the shared local
        servers, stored in the optimization's run store; what was spent is saved.

        Raises:
            BudgetReached: the budget stopped it.
        """
        options = RunOptions(use_cache=True, case_ids=case_ids, store_dir=self.runs_dir,
                             cache_dir=self.cache_dir, budget=self.budget,
                             servers=self.servers, on_result=on_result,
                             on_start=self.on_start if on_result else None)
        finished = run_sync(lambda: run_eval(plan, options))
        self.run_ids.append(finished.run.run_id)
        if self.on_spent is not None:
            self.on_spent()
        if finished.budget_reached:
            raise BudgetReached(finished.budget_reached)
        return finished

    def case_inputs(self, case_id: str, max_chars: int) -> dict[str, Any]:
        """A train case's variables, each cut to ``max_chars``, for the proposer to read."""
        if not self.case_vars:
            plan = self.plan([])
            self.case_vars = {case.id: case.vars for case in plan.cases()}
        return {key: str(value)[:max_chars]
                for key, value in self.case_vars.get(case_id, {}).items()}

    def ask_cost(self, provider: Provider, text: str) -> Cost:
        """The worst case of asking ``provider`` ``text`` (one request)."""
        plan = self._proposer_plan(provider, text)
        variant = plan.spec.prompts[0]
        prompt = plan.prompt(variant, provider, {"request": text})
        dollars = worst_case_cost(plan.body(variant, provider, prompt), provider) \
            if self.budget.counts_cost else 0.0
        return Cost(1, dollars)

    def ask(self, provider: Provider, text: str) -> tuple[str | None, str | None]:
        """Ask ``provider`` (the proposer) ``text`` through the runner (cached, retried,
        budgeted): ``(answer, None)``, or ``(None, why)`` when it gave no answer.

        Raises:
            BudgetReached: the budget refused the request.
        """
        finished = self._run(self._proposer_plan(provider, text), None, None)
        result = next(finished.results(), None)
        if result is None or result.error:
            return None, result.error if result else "no answer"
        return result.output or "", None

    def _proposer_plan(self, provider: Provider, text: str) -> EvalPlan:
        spec = self.loaded.spec.model_copy(deep=True)
        spec.prompts = [PromptVariant(id="proposer", template=f"{PROPOSER_TEMPLATE}@1")]
        spec.providers = [provider]
        spec.assert_ = []
        spec.dataset, spec.cases = None, [InlineCase.model_validate({"request": text})]
        spec.templates = str(self.scratch.folder.resolve())
        spec.threshold, spec.gate, spec.category_field, spec.repeat = None, None, None, 1
        return plan_eval(LoadedSpec(spec, self.loaded.path, self.loaded.doc))

    def close(self) -> None:
        """Stop the local servers the trials started."""
        for server in self.servers.values():
            server.stop()


def _outcomes(results: Iterable[CaseResult]) -> Scores:
    samples: dict[str, dict[str, list[CaseResult]]] = {}
    for result in results:
        samples.setdefault(result.prompt_id, {}).setdefault(result.case_id, []).append(result)
    scores: Scores = {}
    for key, cases in samples.items():
        scores[key] = {}
        for case_id, results in cases.items():
            first = results[0]
            reasons = [str(a.get("reason") or a.get("type")) for r in results
                       for a in (r.assertions or []) if not a.get("passed")]
            scores[key][case_id] = Outcome(
                passed=sum(bool(r.passed) for r in results) / len(results),
                score=sum(r.score or 0.0 for r in results) / len(results),
                output=first.output or "", reasons=reasons[:5], error=first.error)
    return scores
