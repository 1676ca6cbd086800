"""A provider's replicas: one model behind several endpoints (``base_url`` given as a list).

:class:`ReplicaSet` holds one :class:`~promptkit.running.client.EndpointClient` per replica
(each its own ``AsyncOpenAI`` and adaptive limit) and sends each attempt of a request to
the healthy replica with the fewest requests in flight (ties in turn). Its retries follow
the client's rules, with these for health:

* A replica whose attempt fails to connect (refused, reset, dropped) is taken out at
  once; one that fails three retryable attempts in a row (5xx, timeouts) too. It is out
  for 30 seconds, doubled each time it fails again when it is back (up to 5 minutes);
  an answer puts it back to normal.
* A request whose replica failed to connect goes to another healthy replica at once,
  without spending a retry: one dead replica never fails a case while another is up.
  Other retryable failures spend a retry, and go to another healthy replica without
  waiting.
* When every replica is out, a request waits its backoff (or until the first replica is
  due back, if sooner) and tries the one due back first. A set none of whose replicas
  ever answered is marked unreachable as one endpoint would be, so the remaining cases
  fail at once.

Each replica counts the answers it served (:attr:`ReplicaSet.served`), by its URL
without userinfo, for the leaderboard.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .client import (
    RETRYABLE,
    EndpointClient,
    RequestClient,
    RequestOutcome,
    attempt_timeout,
    backoff,
    sdk_client_for,
    wait_to_retry,
)
from .responses import RequestError
from .spec import Provider

COOL_DOWN = 30.0  # seconds a replica is out the first time
MAX_COOL_DOWN = 300.0
FAILURES_TO_TAKE_OUT = 3  # retryable failures in a row
# What says a replica is unwell; a rate limit says it is busy (its limit halves instead).
UNWELL: frozenset[str] = RETRYABLE - {"rate_limit"}


@dataclass
class Replica:
    """One replica of a set: its client, its load and its health."""

    client: EndpointClient
    index: int  # its place in base_url's list
    in_flight: int = 0  # attempts sent to it and not yet over
    served: int = 0  # answers it gave
    failures: int = 0  # retryable failures in a row
    down_until: float = 0.0  # time.monotonic() from which it may be tried again
    cool_down: float = 0.0  # how long it was last taken out; 0 once it answers
    why: str | None = None  # the failure that last took it out

    @property
    def url(self) -> str:
        """Its URL without userinfo."""
        return self.client.shown_url

    def up(self, now: float) -> bool:
        return self.down_until <= now

    def answered(self) -> None:
        """Count an answer: the replica is well (back, if it was out)."""
        self.served += 1
        self.failures = 0
        self.cool_down = self.down_until = 0.0

    def failed(self, error: RequestError, now: float, cool_down: float,
               max_cool_down: float) -> None:
        """Count a failed attempt; take the replica out when it says so."""
        if error.kind not in UNWELL:
            if error.kind != "rate_limit":
                self.failures = 0  # it answered, refusing this request: it is up
            return
        self.failures += 1
        if not self.up(now):  # tried while out (every replica was): out for longer
            self.down_until = now + self.cool_down
        elif error.kind == "connection" or self.failures >= FAILURES_TO_TAKE_OUT:
            self.cool_down = min(max(2 * self.cool_down, cool_down), max_cool_down)
            self.down_until = now + self.cool_down
            self.failures = 0
            self.why = error.message


class ReplicaSet(RequestClient):
    """Requests to a provider's replicas, each attempt to the least-loaded healthy one.

    Has what the runner uses of an :class:`EndpointClient`: :meth:`request`,
    :meth:`embed`, ``provider``, ``base_url`` and ``client`` (the first replica's, where
    one URL is needed), ``answered`` and ``unreachable``.

    Args:
        provider: The provider's settings (its ``retries``, ``timeout``...).
        replicas: One client per replica, in the order ``base_url`` lists them.
        cool_down: Seconds a replica is out the first time it is taken out.
        max_cool_down: The longest it is out.
    """

    def __init__(self, provider: Provider, replicas: list[EndpointClient], *,
                 cool_down: float = COOL_DOWN, max_cool_down: float = MAX_COOL_DOWN):
        if not replicas:
            raise ValueError("a replica set needs at least one replica")
        self.provider = provider
        self.replicas = [Replica(client, index) for index, client in enumerate(replicas)]
        self.base_url = replicas[0].base_url
        self.client = replicas[0].client
        self.unreachable: str | None = None
        self.cool_down, self.max_cool_down = cool_down, max_cool_down
        self._turn = 0  # where the round robin among equally loaded replicas stands

    @property
    def served(self) -> dict[str, int]:
        """Each replica's URL (without userinfo) → the answers it served."""
        return {replica.url: replica.served for replica in self.replicas}

    @property
    def answered(self) -> bool:
        """Whether any replica ever answered."""
        return any(replica.client.answered for replica in self.replicas)

    def down(self) -> dict[str, str]:
        """The replicas out now: URL → the failure that took it out."""
        now = time.monotonic()
        return {r.url: r.why or "" for r in self.replicas if not r.up(now)}

    async def request(self, body: dict[str, Any], path: str | None = None) -> RequestOutcome:
        """Send ``body`` with retries across the replicas; never raises for endpoint
        trouble. ``path`` ``/embeddings`` asks for embeddings."""
        provider = self.provider
        deadline = time.monotonic() + provider.total_timeout if provider.total_timeout else None
        outcome = RequestOutcome()
        retries, failovers = 0, len(self.replicas)
        last: Replica | None = None
        while not self.unreachable:
            replica = self._pick(avoid=last)
            outcome.attempts += 1
            error = await self._attempt(replica, body, path, outcome, deadline)
            if error is None:
                return outcome
            outcome.error, outcome.error_kind = error.message, error.kind
            if error.kind not in RETRYABLE:
                return outcome
            elsewhere = self._others_up(replica)
            if error.kind == "connection" and elsewhere and failovers:
                failovers -= 1  # another replica is up: this costs no retry
                delay = 0.0
            elif retries == provider.retries:
                break
            else:  # to another replica at once; to the same one (or one out) after a backoff
                delay = 0.0 if elsewhere else backoff(error, retries, provider)
                retries += 1
                if (due := self._due_in()) is not None:
                    delay = min(delay, due)
            if not await wait_to_retry(outcome, delay, deadline):
                break
            last = replica
        if self.unreachable:
            outcome.error, outcome.error_kind = self.unreachable, "connection"
        elif not self.answered and outcome.error_kind in ("connection", "timeout"):
            urls = ", ".join(replica.url for replica in self.replicas)
            self.unreachable = f"every replica unreachable ({urls}): {outcome.error}"
        return outcome

    async def _attempt(self, replica: Replica, body: dict[str, Any], path: str | None,
                       outcome: RequestOutcome, deadline: float | None
                       ) -> RequestError | None:
        """One attempt on ``replica``, counted in its load and its health; an error's
        message names the replica."""
        timeout = attempt_timeout(self.provider, deadline)
        if timeout <= 0:  # not the replica's fault: leave its health alone
            return RequestError("timeout", "total timeout reached")
        replica.in_flight += 1
        try:
            error = await replica.client.attempt(body, path, outcome, timeout)
        finally:
            replica.in_flight -= 1
        if error is None:
            replica.answered()
            return None
        replica.failed(error, time.monotonic(), self.cool_down, self.max_cool_down)
        return RequestError(error.kind, f"{error.message} (replica {replica.url})",
                            error.retry_after)

    def _pick(self, avoid: Replica | None = None) -> Replica:
        """The healthy replica with the fewest requests in flight (ties in turn), other
        than ``avoid`` when another is healthy; when none is, the one due back first."""
        now = time.monotonic()
        healthy = [r for r in self.replicas if r.up(now) and r is not avoid] or \
            [r for r in self.replicas if r.up(now)]
        if not healthy:
            return min(self.replicas, key=lambda r: r.down_until)
        count = len(self.replicas)
        chosen = min(healthy, key=lambda r: (r.in_flight, (r.index - self._turn) % count))
        self._turn = chosen.index + 1
        return chosen

    def _others_up(self, replica: Replica) -> bool:
        now = time.monotonic()
        return any(r.up(now) for r in self.replicas if r is not replica)

    def _due_in(self) -> float | None:
        """Seconds until the first replica is due back when every one is out, else
        ``None``."""
        now = time.monotonic()
        if any(r.up(now) for r in self.replicas):
            return None
        return max(0.0, min(r.down_until for r in self.replicas) - now)


def served_by_replicas(clients: Mapping[str, RequestClient]) -> dict[str, dict[str, int]]:
    """Provider id → replica URL (without userinfo) → the answers it served, for the
    providers among ``clients`` (the runner's, by provider id) given a list of replicas."""
    return {provider_id: client.served for provider_id, client in clients.items()
            if isinstance(client, ReplicaSet)}


def provider_client(provider: Provider, urls: list[str], api_key: str,
                    sdk_clients: dict[tuple[Any, ...], Any]) -> EndpointClient | ReplicaSet:
    """The client of a provider served at ``urls``: an :class:`EndpointClient` for one URL,
    a :class:`ReplicaSet` for several. Each URL's ``AsyncOpenAI`` comes from
    ``sdk_clients`` (by URL, key and headers), where a new one is added: providers on the
    same endpoint share one, and its owner closes them all."""
    endpoints = []
    for url in urls:
        endpoint = (url, api_key, tuple(sorted(provider.headers.items())))
        if endpoint not in sdk_clients:
            sdk_clients[endpoint] = sdk_client_for(url, api_key, provider.headers)
        endpoints.append(EndpointClient(provider, url, api_key, sdk_clients[endpoint]))
    return endpoints[0] if len(endpoints) == 1 else ReplicaSet(provider, endpoints)


def sdk_clients_of(client: Any) -> list[Any]:
    """The ``AsyncOpenAI`` clients behind a provider's client: one per replica."""
    if isinstance(client, ReplicaSet):
        return [replica.client.client for replica in client.replicas]
    return [client.client]
