"""The profile loop: for each target, each workload, each concurrency level, send the
level's requests with at most that many in flight, and summarize what they measured.

Targets are profiled one after another (a local server is started for its target and
stopped before the next, so its memory is its own), and so are levels: a level's wall
time runs from its first request to its last byte. One warm-up request (``warmup``) goes
first and is not measured; when it fails the run records why and sends nothing more (exit
3). :func:`profile` is the library call: it prints nothing and returns a
:class:`ProfileReport`; ``progress`` hears one line per level.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExitCode, RunError, collecting_warnings
from ..redact import add_secret, strip_userinfo
from ..running.client import sdk_client_for
from ..running.local import DEFAULT_CTX, LocalServer
from ..running.providers import Provider
from .measure import RequestRecord, timed_request
from .memory import KvCacheWatcher, RssWatcher, Watcher
from .metrics import LevelResult, max_concurrency_meeting_slo, summarize_level
from .settings import ProfileSettings
from .workload import Target, Workload, input_tokens_of

FORMAT_VERSION = 1
DEFAULT_MAX_TOKENS = 128
Progress = Callable[[str], None]


@dataclass
class ProfileRun:
    """One provider and workload: a :class:`LevelResult` per concurrency level.

    ``error`` says why the run stopped (its server did not start, the warm-up failed);
    the levels measured before are kept.
    """

    provider: str
    model: str | None
    base_url: str
    api: str
    workload: str
    input_tokens: int | None
    engine: str | None = None
    levels: list[LevelResult] = field(default_factory=list)
    error: str | None = None

    @property
    def tokens_from(self) -> str:
        """Where output token counts came from: ``usage``, ``counted`` or ``mixed``."""
        sources = {level.tokens_from for level in self.levels} - {"none"}
        return sources.pop() if len(sources) == 1 else ("mixed" if sources else "none")

    @property
    def max_concurrency_meeting_slo(self) -> int | None:
        return max_concurrency_meeting_slo(self.levels)

    def record(self) -> dict[str, Any]:
        fields = {key: value for key, value in self.__dict__.items() if key != "levels"}
        return {**fields, "tokens": self.tokens_from,
                "max_concurrency_meeting_slo": self.max_concurrency_meeting_slo,
                "levels": [level.record() for level in self.levels]}


@dataclass
class ProfileReport:
    """What :func:`profile` returns: every run, the settings and the warnings given."""

    runs: list[ProfileRun]
    settings: ProfileSettings
    started_at: float
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0, or 3 when a run could not complete."""
        return ExitCode.RUN_INCOMPLETE if any(run.error for run in self.runs) else ExitCode.OK

    @property
    def providers(self) -> list[str]:
        return list(dict.fromkeys(run.provider for run in self.runs))

    def record(self) -> dict[str, Any]:
        settings = self.settings
        return {"format_version": FORMAT_VERSION, "started_at": self.started_at,
                "settings": {"concurrency": list(settings.concurrency),
                             "requests": settings.requests, "max_tokens": settings.max_tokens,
                             "warmup": settings.warmup, "ignore_eos": settings.ignore_eos},
                "slo_ms": dict(settings.slo), "runs": [run.record() for run in self.runs]}


@dataclass
class Endpoint:
    """A target's open connection: the SDK client, and a local server when it has one."""

    provider: Provider
    client: Any
    base_url: str
    engine: str | None = None
    server: LocalServer | None = None
    watchers: list[Watcher] = field(default_factory=list)

    @property
    def path(self) -> str:
        return "/chat/completions" if self.provider.api == "chat" else "/completions"

    async def close(self) -> None:
        await self.client.close()
        if self.server is not None:
            self.server.stop()


class QueueingServer(LocalServer):
    """The local server as a profile runs it. llama-cpp-python's server drops the answer it
    is streaming when another request arrives (its ``interrupt_requests`` setting), which
    would fail every overlapping request; with that off, requests wait their turn."""

    def command(self, model: Path) -> list[str]:
        command = super().command(model)
        if self.engine is not None and self.engine.name == "llama-cpp-python":
            command += ["--interrupt_requests", "false"]
        return command


def profile(targets: Sequence[Target], settings: ProfileSettings,
            progress: Progress | None = None) -> ProfileReport:
    """Profile every target with every workload at every concurrency level.

    Raises:
        ConfigError: the local engine or model is not installed, or an API key is not set
            (found before any request).
    """
    for target in targets:  # find what would fail a target before anything runs
        if target.provider.is_local:
            LocalServer(target.provider.local_model).check()
        else:
            target.provider.api_key()
    started = time.time()
    with collecting_warnings() as warnings:
        runs = asyncio.run(_profile_all(targets, settings, progress or (lambda line: None)))
    return ProfileReport(runs, settings, started, list(warnings))


async def _profile_all(targets: Sequence[Target], settings: ProfileSettings,
                       progress: Progress) -> list[ProfileRun]:
    runs: list[ProfileRun] = []
    for target in targets:
        try:
            endpoint = await open_endpoint(target, settings)
        except RunError as exc:
            runs += [_run_of(target.provider, workload, target.provider.base_url or "",
                             error=str(exc)) for workload in target.workloads]
            continue
        try:
            for workload in target.workloads:
                runs.append(await _profile_workload(endpoint, workload, settings, progress))
        finally:
            await endpoint.close()
    return runs


def _run_of(provider: Provider, workload: Workload, base_url: str, engine: str | None = None,
            error: str | None = None) -> ProfileRun:
    return ProfileRun(provider.id, provider.model, strip_userinfo(base_url), provider.api,
                      workload.label, workload.input_tokens, engine, error=error)


async def open_endpoint(target: Target, settings: ProfileSettings) -> Endpoint:
    """Connect to the target: start its local server (sized for the largest level and
    prompt), or read its API key; look for KV-cache figures at ``/metrics``.

    Raises:
        LocalServerError: the local server did not start.
    """
    provider = target.provider
    server = None
    if provider.is_local:
        largest = max((w.input_tokens or 0 for w in target.workloads), default=0)
        ctx = max(DEFAULT_CTX, int(largest * 1.5) + (settings.max_tokens or
                                                      DEFAULT_MAX_TOKENS) + 64)
        server = QueueingServer(provider.local_model, parallel=max(settings.concurrency),
                                ctx=ctx)
        server.start()
        base_url, api_key = server.base_url, "unused"
    else:
        base_url, api_key = provider.base_url or "", provider.api_key()
    add_secret(api_key)
    for value in provider.headers.values():
        add_secret(value)
    endpoint = Endpoint(provider, sdk_client_for(base_url, api_key, provider.headers),
                        base_url, server=server)
    if server is not None and server.process is not None:
        endpoint.engine = server.describe()
        endpoint.watchers.append(RssWatcher(server.process.pid))
    kv_cache = await KvCacheWatcher.find(base_url)
    if kv_cache is not None:
        endpoint.watchers.append(kv_cache)
    return endpoint


def request_body(workload: Workload, index: int, settings: ProfileSettings
                 ) -> dict[str, Any]:
    """Request ``index``'s body: the workload's, with ``max_tokens`` (``--max-tokens``,
    else the body's own, else 128) and ``ignore_eos`` when asked for."""
    body = workload.body(index)
    body["max_tokens"] = settings.max_tokens or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    if settings.ignore_eos:
        body["ignore_eos"] = True
    return body


async def _profile_workload(endpoint: Endpoint, workload: Workload, settings: ProfileSettings,
                            progress: Progress) -> ProfileRun:
    run = _run_of(endpoint.provider, workload, endpoint.base_url, endpoint.engine)
    numbers = itertools.count()
    for _ in range(settings.warmup):
        warm = await _send(endpoint, request_body(workload, next(numbers), settings))
        if not warm.ok:
            run.error = f"{run.provider}: the warm-up request failed: {warm.error}"
            progress(run.error)
            return run
    for concurrency in settings.concurrency:
        bodies = [request_body(workload, next(numbers), settings)
                  for _ in range(settings.requests_at(concurrency))]
        level = await run_level(endpoint, bodies, concurrency, settings)
        run.levels.append(level)
        progress(f"{run.provider} · {run.workload} · concurrency {concurrency}: "
                 f"{level.completed} completed, {level.failed} failed in "
                 f"{level.duration:.1f}s")
    return run


async def run_level(endpoint: Endpoint, bodies: list[dict[str, Any]], concurrency: int,
                    settings: ProfileSettings) -> LevelResult:
    """Send ``bodies`` with at most ``concurrency`` in flight; the level's figures."""
    model = endpoint.provider.model
    counted = [input_tokens_of(body, model) for body in bodies]  # before the clock starts
    pending: Iterator[tuple[dict[str, Any], int]] = iter(zip(bodies, counted, strict=True))
    records: list[RequestRecord] = []

    async def worker() -> None:
        for body, input_tokens in pending:  # shared: each request is taken once
            record = await _send(endpoint, body)
            if record.ok and record.input_tokens is None:
                record.input_tokens = input_tokens
            records.append(record)

    for watcher in endpoint.watchers:
        watcher.begin()
    samplers = [asyncio.create_task(_keep_sampling(w)) for w in endpoint.watchers]
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(bodies)))))
    finally:
        duration = time.perf_counter() - started
        for task in samplers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    level = summarize_level(records, concurrency, duration, settings.slo,
                            endpoint.provider.price)
    for watcher in endpoint.watchers:
        value = watcher.end()
        if isinstance(watcher, RssWatcher):
            level.peak_rss_mb = value
        else:
            level.kv_cache_usage_pct = value
    return level


async def _keep_sampling(watcher: Watcher) -> None:
    while True:
        await watcher.sample()
        await asyncio.sleep(watcher.interval)


async def _send(endpoint: Endpoint, body: dict[str, Any]) -> RequestRecord:
    provider = endpoint.provider
    return await timed_request(endpoint.client, endpoint.path, body,
                               chat=provider.api == "chat", timeout=provider.timeout)
