"""The instructions search: reflective rewriting of the template's text, run by ``gepa``.

GEPA (arXiv 2507.19457) keeps a Pareto front of candidates over the validation cases; each
step it picks a parent from the front, runs it on a train minibatch, shows a proposer model
the text with the failed cases (their answers and the assertions' reasons), takes the
rewrite it proposes, and keeps it when it beats the parent on that minibatch (then scores
it on the whole validation split). The ``gepa`` package (the ``[optimize]`` extra; its core
needs nothing else) runs that loop; this module is its adapter: candidates are scored by
:class:`~.trials.Trials` (the normal runner), the proposer is asked through the runner
too (cached, budgeted, retried), and a rewrite is kept only when it has exactly its
parent's variables, tags and chat roles (:mod:`.structure`). Every round is charged its
worst case against the allowance, so the search never spends the test reserve.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..running.budget import BudgetReached
from .structure import structure_problem
from .trials import Allowance, Cost, Outcome, Trials
from .versions import Candidate

COMPONENT = "template"

PROPOSER_PROMPT = """\
You improve prompt templates. Below is a Jinja template that is sent to a language model,
followed by cases where the model's answer failed the checks, with the reasons.

Rewrite the template's instructions so the model passes more of these checks. Rules:
- Keep every Jinja tag exactly as it is: each {{{{ ... }}}} expression, each {{% ... %}} tag
  (loops, conditions, message blocks) and their order. Change only the words around them.
- Do not mention specific cases; write instructions that generalize.
- Answer with the complete new template inside one ```jinja fenced block, nothing else.

Current template:
```jinja
{template}
```

Cases and what went wrong:
{cases}
"""

MAX_CASES_SHOWN = 6
MAX_FIELD_CHARS = 600


@dataclass
class Proposals:
    """What the proposer did: rewrites kept, and discarded with why."""

    kept: int = 0
    discarded: list[str] = field(default_factory=list)


class TemplateAdapter:
    """A ``gepa`` adapter whose one component is the template's body."""

    def __init__(self, trials: Trials, start: Candidate, allowance: Allowance,
                 validation: list[str], ask: Any, proposals: Proposals):
        self.trials = trials
        self.start = start
        self.allowance = allowance
        self.validation = set(validation)
        self.ask = ask
        self.proposals = proposals
        self.keys: dict[str, str] = {start.body: start.key}
        self.validated: dict[str, dict[str, Outcome]] = {}  # candidate key -> val outcomes
        self.case_vars: dict[str, dict[str, Any]] = {}
        self.spent = False  # the allowance could not cover a proposal

    def candidate(self, body: str) -> Candidate:
        if body not in self.keys:
            self.keys[body] = f"i{len(self.keys)}"
        return Candidate(self.keys[body], body, self.start.examples,
                         "start" if self.keys[body] == self.start.key else "proposed")

    def evaluate(self, batch: list[str], candidate: dict[str, str],
                 capture_traces: bool = False) -> Any:
        from gepa.core.adapter import EvaluationBatch

        cand = self.candidate(candidate[COMPONENT])
        if not self.allowance.covers(self.trials.worst_case([cand], list(batch))):
            raise OutOfAllowance()
        phase = "validation" if set(batch) == self.validation else "search"
        outcomes = self.trials.score([cand], list(batch), phase=phase).get(cand.key, {})
        missing = Outcome(0.0, 0.0, error="no result")
        rows = [outcomes.get(case_id, missing) for case_id in batch]
        if set(batch) == self.validation:
            self.validated[cand.key] = dict(zip(batch, rows, strict=True))
        return EvaluationBatch(outputs=[row.output for row in rows],
                               scores=[row.value for row in rows],
                               trajectories=[{"case": case_id, "outcome": row}
                                             for case_id, row in zip(batch, rows, strict=True)]
                               if capture_traces else None)

    def make_reflective_dataset(self, candidate: dict[str, str], eval_batch: Any,
                                components_to_update: list[str]) -> dict[str, list[dict]]:
        records = []
        for trace in eval_batch.trajectories or []:
            outcome: Outcome = trace["outcome"]
            if outcome.passed >= 1:
                continue
            records.append({"inputs": self.trials.case_inputs(trace["case"], MAX_FIELD_CHARS),
                            "answer": outcome.output[:MAX_FIELD_CHARS],
                            "problems": outcome.reasons or [outcome.error or "failed"]})
        return {COMPONENT: records[:MAX_CASES_SHOWN]}

    def propose_new_texts(self, candidate: dict[str, str], reflective_dataset: Any,
                components_to_update: list[str]) -> dict[str, str]:
        """Ask the proposer for a rewrite; a rewrite that changes the template's machinery
        is discarded (the parent's text is returned, which scores the same from the
        cache and is never accepted)."""
        parent = candidate[COMPONENT]
        cases = reflective_dataset.get(COMPONENT) or []
        if not cases:
            return {COMPONENT: parent}
        shown = "\n".join(json.dumps(case, ensure_ascii=False) for case in cases)
        request = PROPOSER_PROMPT.format(template=parent.strip(), cases=shown)
        if not self.allowance.covers(self.ask.cost(request)):
            self.spent = True  # gepa swallows a proposer's exceptions: the stopper ends it
            return {COMPONENT: parent}
        try:
            answer, error = self.ask(request)
        except BudgetReached:
            self.spent = True
            return {COMPONENT: parent}
        text = None if answer is None else extract_template(answer)
        problem = (f"the proposer gave no answer: {error}" if answer is None
                   else "the answer holds no template" if text is None else None)
        if text is not None and len(text) > 3 * max(len(parent), 200):
            problem = "it is more than three times as long as its parent"
        if problem is None and text is not None:
            problem = structure_problem(self.trials.scratch.store.env, parent, text)
        if problem is not None or text is None:
            self.proposals.discarded.append(problem or "no template")
            return {COMPONENT: parent}
        self.proposals.kept += 1
        if not text.endswith("\n") and parent.endswith("\n"):
            text += "\n"
        return {COMPONENT: text}


class ProposerCall:
    """The proposer, asked through the runner: ``cost(text)`` is the worst case of one
    request, calling it asks (``(answer, None)`` or ``(None, why)``)."""

    def __init__(self, trials: Trials, provider: Any):
        self.trials = trials
        self.provider = provider

    def cost(self, text: str) -> Cost:
        return self.trials.ask_cost(self.provider, text)

    def __call__(self, text: str) -> tuple[str | None, str | None]:
        return self.trials.ask(self.provider, text)


class OutOfAllowance(Exception):
    """The next step does not fit the search's allowance: the search ends there."""


def extract_template(answer: str) -> str | None:
    """The template in a proposer's answer: the last ```jinja (or plain ```) fenced block,
    what follows an opening fence that is never closed, or the whole answer without a
    fence; a front matter block at its start is dropped (the version keeps its parent's).
    None when nothing is left."""
    blocks = re.findall(r"```(?:jinja2?|j2|text)?[ \t]*\n(.*?)```", answer, flags=re.S)
    if blocks:
        text = blocks[-1]
    else:
        opened = re.search(r"```(?:jinja2?|j2|text)?[ \t]*\n", answer)
        text = answer[opened.end():] if opened else answer
    front = re.match(r"\A\s*---[ \t]*\n.*?\n---[ \t]*\n", text, flags=re.S)
    if front:
        text = text[front.end():]
    return text if text.strip() else None


def search_instructions(trials: Trials, start: Candidate, train: list[str],
                        validation: list[str], allowance: Allowance, seed: int,
                        minibatch: int, ask: Any, proposals: Proposals
                        ) -> dict[str, tuple[Candidate, dict[str, Outcome]]]:
    """Run GEPA from ``start``; returns every candidate scored on the whole validation
    split, by key, with its outcomes (the start among them when the allowance let it be
    scored).

    Raises:
        ConfigError: the ``gepa`` package is not installed (exit 2, with the install line).
    """
    try:
        import gepa
    except ImportError:
        raise ConfigError("--strategy instructions needs the gepa package: pip install "
                          "'promptkit-evals[optimize]' (or pip install gepa)") from None
    adapter = TemplateAdapter(trials, start, allowance, validation, ask, proposals)

    def stop(_state: Any) -> bool:  # a step needs a proposal and two minibatch runs
        step = trials.worst_case([start], train[:minibatch])
        left = ask.cost(PROPOSER_PROMPT.format(template=start.body, cases="")) + step + step
        return adapter.spent or not allowance.fits(left)

    with contextlib.suppress(OutOfAllowance):  # the allowance ended the search
        gepa.optimize(seed_candidate={COMPONENT: start.body}, trainset=list(train),
                      valset=list(validation), adapter=adapter,
                      reflection_minibatch_size=minibatch, stop_callbacks=[stop],
                      max_metric_calls=50 * (len(train) + len(validation)),
                      logger=_Silent(), seed=seed, raise_on_exception=True,
                      display_progress_bar=False, skip_perfect_score=True)
    found = {}
    for body, key in adapter.keys.items():
        if key in adapter.validated:
            found[key] = (adapter.candidate(body), adapter.validated[key])
    return found


class _Silent:
    """gepa's logger, kept quiet: the command line shows progress of its own."""

    def log(self, *args: Any, **kwargs: Any) -> None:
        return None
