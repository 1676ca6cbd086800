"""What requests cost before they are sent: a budget's limits and a dry run's estimate.

A :class:`Budget` is checked before each request is sent (a cache hit is free and never
checked): the request goes out only while the budget covers it together with the worst
case of the requests already in flight, so neither limit is ever passed, however many
requests run at once. The worst case of a request is its input tokens (promptkit's own
count) at the input price plus its ``max_tokens`` at the output price; when its answer
comes, the reservation is settled with what the answer's usage says it cost. (A server
whose tokenizer counts more input tokens than promptkit's counter could charge more than
that worst case; the budget then refuses the next request.)

A request counts once however many times it is retried (the retries are the client's way
of getting one answer), a request that failed counts as sent, and a judge's requests count
like the model's (embeddings requests do not). When the budget refuses a request, the
runner raises :class:`BudgetReached`: that case is not stored (``--resume`` runs it, its
earlier answers from the cache), its worker stops, and the run ends ``interrupted`` once
the requests in flight have finished and been stored.

Budgets are per invocation: a resumed run gets a fresh budget of the settings given then.

A dry run (:func:`estimate_row`) counts the same way: its cost ranges from no output to
every request's output cap, the worst case a budget reserves.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigError, GraderOutage, warn
from ..tokens import count_prompt_tokens, count_tokens
from .providers import Provider, request_params
from .turns import case_turns, converses

if TYPE_CHECKING:
    from .client import EndpointClient, RequestOutcome
    from .plan import EvalPlan
    from .spec import EvalSpec, PromptVariant

__all__ = ["Budget", "BudgetReached", "EstimateRow", "budget_for", "check_budget",
           "estimate_row", "send", "worst_case_cost"]

# Float sums of prices drift by far less than this; a budget met exactly is not "passed".
_SLACK = 1e-12


class BudgetReached(GraderOutage):
    """The budget cannot cover the next request: the run stops (it is not an error).

    A :class:`~promptkit.errors.GraderOutage` so that scoring passes it on untouched when
    it comes from a judge's request (a refused judge is no verdict on the output); the
    runner catches it before any outage handler, so it never becomes a case's error.
    """


class Budget:
    """At most ``max_requests`` requests and ``max_cost`` USD (each None: no limit).

    Args:
        max_requests: Requests that may be sent (a request with its retries counts once).
        max_cost: USD that may be spent, counted from token prices; providers without a
            price per token cost nothing here.
        requests_sent, cost_spent: What an earlier part of a longer job already spent.

    Raises:
        ConfigError: a limit below 1 request or not above $0.
    """

    def __init__(self, max_requests: int | None = None, max_cost: float | None = None, *,
                 requests_sent: int = 0, cost_spent: float = 0.0):
        if max_requests is not None and (isinstance(max_requests, bool)
                                         or not isinstance(max_requests, int)
                                         or max_requests < 1):
            raise ConfigError(f"max_requests must be a whole number of at least 1, not "
                              f"{max_requests!r}")
        if max_cost is not None and not (isinstance(max_cost, int | float)
                                         and 0 < max_cost < float("inf")):
            raise ConfigError(f"max_cost must be a number of USD above 0, not {max_cost!r}")
        self.max_requests = max_requests
        self.max_cost = None if max_cost is None else float(max_cost)
        self.requests_sent = requests_sent
        self.cost_spent = cost_spent
        self.in_flight_cost = 0.0  # the worst case of the requests reserved, not settled
        self._refused: tuple[Literal["requests", "cost"], float] | None = None
        # Called after each reservation, before the request goes out: a caller that must
        # not lose count in a crash (promptkit optimize) saves what was spent there.
        self.on_reserve: Callable[[], None] | None = None

    @property
    def counts_cost(self) -> bool:
        """Whether requests need their worst-case cost (only with ``max_cost``)."""
        return self.max_cost is not None

    def reserve(self, worst_cost: float = 0.0) -> bool:
        """Count one request about to be sent, reserving its worst-case cost in USD.

        Returns:
            False, reserving nothing, when the requests sent or the dollars spent and in
            flight leave no room for it.
        """
        if self.max_requests is not None and self.requests_sent >= self.max_requests:
            self._refused = ("requests", worst_cost)
            return False
        if self.max_cost is not None and (self.cost_spent + self.in_flight_cost + worst_cost
                                          > self.max_cost + _SLACK):
            self._refused = ("cost", worst_cost)
            return False
        self.requests_sent += 1
        self.in_flight_cost += worst_cost
        if self.on_reserve is not None:
            self.on_reserve()
        return True

    def release(self, worst_cost: float = 0.0) -> None:
        """Undo a reservation whose request was never sent (its endpoint was already
        known to be unreachable)."""
        self.requests_sent -= 1
        self.in_flight_cost = max(0.0, self.in_flight_cost - worst_cost)

    def settle(self, worst_cost: float, cost: float | None = None) -> None:
        """A reserved request is over: spend ``cost`` (what its usage says it cost), or
        its worst case when that is unknown (it failed, or the server gave no usage)."""
        self.in_flight_cost = max(0.0, self.in_flight_cost - worst_cost)
        self.cost_spent += worst_cost if cost is None else cost

    @property
    def exhausted(self) -> str | None:
        """Why the budget refused a request, for messages (None while it has refused
        none): ``budget reached: 40 of 40 requests sent`` or ``budget reached: $0.4987 of
        $0.50 spent (the next request could cost up to $0.0021)``."""
        if self._refused is None:
            return None
        limit, worst = self._refused
        if limit == "requests":
            return f"budget reached: {self.requests_sent} of {self.max_requests} requests sent"
        return (f"budget reached: {dollars(self.cost_spent)} of {dollars(self.max_cost or 0)}"
                f" spent (the next request could cost up to {dollars(worst)})")


def dollars(value: float) -> str:
    """USD with cents, and the digits a small amount needs: $0.50, $0.4987, $0.000044."""
    whole, _, cents = f"{value:.6f}".rstrip("0").partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


@dataclass
class EstimateRow:
    """What one prompt × provider would send."""

    prompt_id: str
    provider_id: str
    requests: int
    input_tokens: int
    cost_low: float | None  # USD, no output tokens
    cost_high: float | None  # USD, every request's worst case (None: no output cap)


def estimate_row(plan: EvalPlan, variant: PromptVariant, provider: Provider,
                 limit: int | None) -> EstimateRow:
    """What a dry run counts for one prompt × provider: its requests and input tokens,
    and its cost between no output and every request's output cap."""
    spec = plan.spec
    tokens = asked = 0
    for case in plan.cases(limit):
        values = plan.variables(variant, case, offline=True)
        prompt = plan.prompt(variant, provider, values)
        tokens += count_prompt_tokens(prompt, provider.model) * plan.samples(variant)
        asked += plan.samples(variant)
        if converses(case.reserved):  # at least one request per later turn and tool loop
            loops = bool(case.reserved.get("tool_results") or case.reserved.get("tool_handler"))
            asked += len(case_turns(case.reserved.get("turns"))) + loops
            warn("a conversation case is counted at its fewest requests (one per turn, one "
                 "more for a tool loop) and its first prompt's input tokens")
    requests = asked * spec.repeat
    low = high = None
    if provider.price is not None:
        low = provider.price.cost(tokens * spec.repeat, 0)
        max_out = output_cap(plan.body(variant, provider, ""))
        if max_out is not None:
            high = provider.price.cost(tokens * spec.repeat, requests * max_out)
    return EstimateRow(variant.id, provider.id, requests, tokens * spec.repeat, low, high)


def budget_for(spec: EvalSpec, max_requests: int | None = None,
               max_cost: float | None = None) -> Budget | None:
    """The budget of one invocation: each limit given here, else the spec's key."""
    max_requests = max_requests if max_requests is not None else spec.max_requests
    max_cost = max_cost if max_cost is not None else spec.max_cost
    if max_requests is None and max_cost is None:
        return None
    return Budget(max_requests, max_cost)


def token_priced(provider: Provider) -> bool:
    """Whether the provider's answers have a cost per token (not by the hour, not free)."""
    price = provider.price
    return price is not None and price.per_hour is None and bool(
        price.input_per_mtok or price.output_per_mtok)


def output_cap(body: dict[str, Any]) -> int | None:
    """The most output tokens one request may produce: its ``max_completion_tokens`` or
    ``max_tokens``, times ``n`` choices."""
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        return None
    choices = body.get("n")
    return cap * (choices if isinstance(choices, int) and choices > 1 else 1)


def worst_case_cost(body: dict[str, Any], provider: Provider) -> float:
    """The most a request can cost: its input tokens (the prompt counted with promptkit's
    counter, plus its tools and response format) at the input price and its output cap at
    the output price; 0 for a provider without a price per token."""
    price = provider.price
    if price is None or not token_priced(provider):
        return 0.0
    model = provider.model
    tokens = count_prompt_tokens(body.get("messages") or body.get("prompt") or "", model)
    for key in ("tools", "response_format", "grammar"):
        if body.get(key):
            tokens += count_tokens(json.dumps(body[key], ensure_ascii=False), model)
    return price.cost(tokens, output_cap(body) or 0) or 0.0


async def send(budget: Budget | None, client: EndpointClient, body: dict[str, Any]
               ) -> RequestOutcome:
    """Send one request (with its retries) if the budget covers it, and settle its cost.

    Raises:
        BudgetReached: the budget refused it; nothing was sent.
    """
    if budget is None:
        return await client.request(body)
    provider = client.provider
    worst = worst_case_cost(body, provider) if budget.counts_cost else 0.0
    if not budget.reserve(worst):  # no await between the check and the reservation
        raise BudgetReached(budget.exhausted or "budget reached")
    cost, sent = None, True  # cost unknown until usage says it: the worst case is spent
    try:
        outcome = await client.request(body)
        sent = outcome.attempts > 0
        answer, price = outcome.completion, provider.price
        if answer is not None and not answer.usage_estimated and price is not None \
                and token_priced(provider):
            cost = price.cost(answer.input_tokens, answer.output_tokens)
    finally:
        if sent:
            budget.settle(worst, cost)
        else:
            budget.release(worst)
    return outcome


def check_budget(plan: EvalPlan, budget: Budget | None) -> None:
    """Before any request: with ``max_cost``, every request of a provider priced per token
    must cap its output (``max_tokens``), or its worst case is unbounded; providers
    without a price per token are warned about, once, as not counted.

    Raises:
        ConfigError: a priced provider (or judge) × prompt that sends no ``max_tokens``.
    """
    if budget is None or not budget.counts_cost:
        return
    spec = plan.spec
    providers = spec.providers
    asked = [(provider, f"provider {provider.id!r} with prompt {variant.id!r}",
              request_params(provider.api, plan.templates[variant.id].params,
                             provider.params, variant.params))
             for provider in providers for variant in spec.prompts]
    asked += [(grader, f"grader {grader.id!r}", grader.params) for grader in spec.graders]
    for provider, what, params in asked:
        price = provider.price
        if price is not None and price.per_hour is None and price.output_per_mtok \
                and output_cap(params) is None:
            raise ConfigError(f"max_cost needs the worst case of every request, and {what} "
                              "sends no max_tokens: set params.max_tokens (the provider's, "
                              "the prompt's or its template's)", str(plan.loaded.path))
    free = [p.id for p in [*providers, *spec.graders] if not token_priced(p)]
    if free:
        warn(f"max_cost counts no cost for {', '.join(free)}: no price per token (free, "
             "unpriced or priced by the hour), so their requests are not counted in "
             "dollars")
