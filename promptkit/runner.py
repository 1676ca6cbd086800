"""The eval loop: cases → render → request → score → store.

Each provider gets its own pool of workers (its ``concurrency``) reading the
dataset as a stream, so a slow endpoint never starves a fast one and memory does
not grow with the dataset. Every result is committed to the run store as it
finishes; failures are recorded per case and never stop the run.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import Completion, EndpointClient, sdk_client_for
from .datasets import Case, count_cases, iter_cases
from .errors import ConfigError, PromptkitError
from .local import MODEL_ALIAS, LocalServer, find_engine
from .results import CaseResult, RunInfo
from .scoring import Output, ScoringContext, check_assertions, score
from .spec import EvalSpec, LoadedSpec, PromptVariant, Provider
from .store import ResponseCache, RunStore, default_paths
from .templates import PromptTemplate, TemplateStore

LOCAL_CONCURRENCY = 4  # parallel slots for a native llama-server on a small machine


@dataclass
class RunOptions:
    """How to run (not what): the CLI's flags."""

    use_cache: bool = True
    resume: bool = False
    limit: int | None = None
    store_dir: Path | None = None
    on_result: Callable[[CaseResult], None] | None = None
    on_start: Callable[[RunInfo, int, int], None] | None = None  # run, planned, already done
    on_local: Callable[[str, LocalServer], None] | None = None  # a local server is up


@dataclass
class RunOutcome:
    """A finished (or interrupted) run, for reporting and exit codes."""

    run: RunInfo
    runs: RunStore
    unreachable: dict[str, str] = field(default_factory=dict)  # provider id -> why
    engines: dict[str, str] = field(default_factory=dict)  # local provider id -> engine, model


@dataclass
class Prepared:
    """A spec with templates loaded and inputs checked: ready to run or dry-run."""

    loaded: LoadedSpec
    store: TemplateStore
    templates: dict[str, PromptTemplate]

    @property
    def spec(self) -> EvalSpec:
        return self.loaded.spec

    def cases(self, limit: int | None = None) -> Iterator[Case]:
        return iter_cases(self.loaded.dataset_path, self.spec.cases, limit)

    def count(self, limit: int | None = None) -> int:
        return count_cases(self.loaded.dataset_path, self.spec.cases, limit)

    def variables(self, variant: PromptVariant, case: Case) -> dict[str, Any]:
        return {**case.vars, **variant.vars}

    def prompt(self, variant: PromptVariant, provider: Provider, case: Case
               ) -> str | list[dict[str, str]]:
        template = self.templates[variant.id]
        values = self.variables(variant, case)
        return template.render(values) if provider.api == "chat" else template.render_text(values)

    def params(self, variant: PromptVariant, provider: Provider) -> dict[str, Any]:
        """Model params: the template's, then the provider's, then the variant's win."""
        return {**self.templates[variant.id].params, **provider.params, **variant.params}

    def body(self, variant: PromptVariant, provider: Provider, prompt: Any) -> dict[str, Any]:
        """The request body for one rendered prompt."""
        key = "messages" if provider.api == "chat" else "prompt"
        return {"model": provider.model or provider.id, key: prompt,
                **self.params(variant, provider)}

    def sampling(self, variant: PromptVariant, provider: Provider) -> bool:
        """Whether answers vary between requests (then each sample is cached apart)."""
        temperature = self.params(variant, provider).get("temperature", 1)
        return self.spec.repeat > 1 or temperature != 0


def prepare(loaded: LoadedSpec) -> Prepared:
    """Load templates and check everything that would fail every case.

    Raises:
        PromptkitError: unknown template, assertion problems, or a first case that
            cannot be rendered (usually a missing variable): invalid input, exit 2.
    """
    spec = loaded.spec
    store = TemplateStore(loaded.templates_dir)
    templates = {}
    for i, variant in enumerate(spec.prompts):
        try:
            templates[variant.id] = store.get(variant.template)
        except PromptkitError as exc:
            raise loaded.error(str(exc), ["prompts", i]) from None
    graders = {p.id for p in [*spec.providers, *spec.graders]}
    try:
        check_assertions(spec.assert_, graders)
    except ConfigError as exc:
        exc.filename = exc.filename or str(loaded.path)
        exc.args = (str(exc),)
        raise
    prepared = Prepared(loaded, store, templates)
    first = next(prepared.cases(1), None)
    if first is None:
        raise loaded.error("the dataset has no cases", ["dataset" if spec.dataset else "cases"])
    for variant in spec.prompts:
        for api in {p.api for p in spec.providers}:
            probe = Provider.model_construct(api=api, id="probe")
            try:
                prepared.prompt(variant, probe, first)
            except PromptkitError as exc:
                raise type(exc)(f"{exc} (case {first.id!r}, prompt {variant.id!r})") from None
    return prepared


class Runner:
    """Runs one prepared spec against its providers."""

    def __init__(self, prepared: Prepared, options: RunOptions, runs: RunStore,
                 cache: ResponseCache | None, servers: dict[str, LocalServer] | None = None):
        self.prepared = prepared
        self.options = options
        self.runs = runs
        self.cache = cache
        self.servers = servers or {}
        self.clients: dict[str, EndpointClient] = {}
        self.sdk_clients: dict[tuple[Any, ...], Any] = {}
        self.done: set[tuple[str, str, str, int]] = set()

    def client_for(self, provider: Provider) -> EndpointClient:
        """The provider's client; providers on the same endpoint share one AsyncOpenAI."""
        if provider.id not in self.clients:
            server = self.servers.get(provider.id)
            base_url = server.base_url if server else provider.base_url or ""
            api_key = provider.api_key()
            endpoint = (base_url, api_key, tuple(sorted(provider.headers.items())))
            if endpoint not in self.sdk_clients:
                self.sdk_clients[endpoint] = sdk_client_for(base_url, api_key, provider.headers)
            self.clients[provider.id] = EndpointClient(provider, base_url, api_key,
                                                       self.sdk_clients[endpoint])
        return self.clients[provider.id]

    async def run(self, run: RunInfo) -> None:
        spec = self.prepared.spec
        for provider in [*spec.providers, *spec.graders]:
            self.client_for(provider)  # fail on a missing API key before any request
        try:
            await asyncio.gather(*(self._provider_pool(run, p) for p in spec.providers))
        finally:
            await asyncio.gather(*(c.close() for c in self.sdk_clients.values()),
                                 return_exceptions=True)

    def _items(self, provider: Provider) -> Iterator[tuple[Case, PromptVariant, int]]:
        spec = self.prepared.spec
        for case in self.prepared.cases(self.options.limit):
            for variant, repeat in itertools.product(spec.prompts, range(spec.repeat)):
                if (variant.id, provider.id, case.id, repeat) not in self.done:
                    yield case, variant, repeat

    async def _provider_pool(self, run: RunInfo, provider: Provider) -> None:
        items = self._items(provider)  # shared by the workers: each takes the next item

        async def worker() -> None:
            for case, variant, repeat in items:
                result = await self.run_case(provider, variant, case, repeat)
                self.runs.add_result(run.run_id, result)
                if self.options.on_result:
                    self.options.on_result(result)

        await asyncio.gather(*(worker() for _ in range(provider.concurrency)))

    async def run_case(self, provider: Provider, variant: PromptVariant, case: Case,
                       repeat: int) -> CaseResult:
        """One request and its scores; every failure ends up in the result."""
        prepared = self.prepared
        template = prepared.templates[variant.id]
        result = CaseResult(variant.id, provider.id, case.id, case.index, repeat,
                            vars=case.vars, template_sha256=template.sha256)
        try:
            prompt = prepared.prompt(variant, provider, case)
        except PromptkitError as exc:
            result.error, result.error_kind = str(exc), "render"
            return result
        client = self.client_for(provider)
        body = prepared.body(variant, provider, prompt)
        completion = self._cached(client, body, variant, provider, repeat, result)
        if completion is None:
            outcome = await client.request(body)
            result.attempts = outcome.attempts
            result.latency_s, result.ttft_s = outcome.latency_s, outcome.ttft_s
            if outcome.completion is None:
                result.error, result.error_kind = outcome.error, outcome.error_kind
                return result
            completion = outcome.completion
            self._store_in_cache(client, body, variant, provider, repeat, completion)
        result.output = completion.text
        result.input_tokens, result.output_tokens = (completion.input_tokens,
                                                     completion.output_tokens)
        if provider.price is not None:
            result.cost = provider.price.cost(result.input_tokens, result.output_tokens)
        await self._score(result, completion, prepared.variables(variant, case))
        return result

    def _cache_key(self, client: EndpointClient, body: dict[str, Any], variant: PromptVariant,
                   provider: Provider, repeat: int) -> str:
        sample = repeat if self.prepared.sampling(variant, provider) else None
        # A local server gets a new port each run; its model file is what identifies it.
        server = self.servers.get(provider.id)
        where = f"local:{server.model_path.name}" if server else client.base_url
        return ResponseCache.key(where, provider.model or provider.id, provider.api,
                                 body, sample)

    def _cached(self, client: EndpointClient, body: dict[str, Any], variant: PromptVariant,
                provider: Provider, repeat: int, result: CaseResult) -> Completion | None:
        if self.cache is None:
            return None
        record = self.cache.get(self._cache_key(client, body, variant, provider, repeat))
        if record is None:
            return None
        result.cached = True
        result.requests = 0
        return Completion(**{k: v for k, v in record.items()
                             if k in Completion.__dataclass_fields__})

    def _store_in_cache(self, client: EndpointClient, body: dict[str, Any],
                        variant: PromptVariant, provider: Provider, repeat: int,
                        completion: Completion) -> None:
        if self.cache is None:
            return
        if self.prepared.templates[variant.id].output is not None:
            import json

            try:  # an answer that breaks the declared JSON output is not kept
                json.loads(completion.text)
            except ValueError:
                return
        self.cache.put(self._cache_key(client, body, variant, provider, repeat),
                       completion.to_record())

    async def _score(self, result: CaseResult, completion: Completion,
                     variables: dict[str, Any]) -> None:
        output = Output(text=completion.text.strip(), latency_s=result.latency_s,
                        ttft_s=result.ttft_s, input_tokens=result.input_tokens,
                        output_tokens=result.output_tokens, cost=result.cost)
        context = ScoringContext(vars=variables, render=self.prepared.store.render_string,
                                 judge=self._judge, embed=self._embed)
        try:
            scored = await score(output, self.prepared.spec.assert_, context)
        except PromptkitError as exc:
            result.error, result.error_kind = str(exc), "scoring"
            return
        result.passed, result.score = scored.passed, scored.score
        result.metrics = dict(scored.metrics)
        result.assertions = [dict(r.__dict__) for r in scored.results]

    def _grader(self, provider_id: str) -> EndpointClient:
        spec = self.prepared.spec
        provider = next(p for p in [*spec.graders, *spec.providers] if p.id == provider_id)
        return self.client_for(provider)

    async def _judge(self, provider_id: str, messages: list[dict[str, Any]]) -> str:
        client = self._grader(provider_id)
        body = {"model": client.provider.model, "messages": messages, "temperature": 0,
                **client.provider.params}
        outcome = await client.request(body)
        if outcome.completion is None:
            raise PromptkitError(f"judge {provider_id} failed: {outcome.error}")
        return outcome.completion.text

    async def _embed(self, provider_id: str, texts: list[str]) -> list[list[float]]:
        client = self._grader(provider_id)
        response = await client.client.embeddings.create(model=client.provider.model or "",
                                                         input=texts)
        return [item.embedding for item in response.data]


def open_stores(loaded: LoadedSpec, options: RunOptions) -> tuple[RunStore, ResponseCache | None]:
    runs_path, cache_path = default_paths(loaded.path)
    if options.store_dir is not None:
        runs_path, cache_path = (options.store_dir / runs_path.name,
                                 options.store_dir / cache_path.name)
    runs = RunStore(runs_path)
    ignore = runs_path.parent / ".gitignore"
    if not ignore.exists():  # run databases are local state, never commits
        ignore.write_text("*\n")
    return runs, ResponseCache(cache_path) if options.use_cache else None


def start_local_servers(providers: list[Provider],
                        on_start: Callable[[str, LocalServer], None] | None = None
                        ) -> dict[str, LocalServer]:
    """Start one llama.cpp server per ``local`` provider; stop them all on failure."""
    servers: dict[str, LocalServer] = {}
    try:
        for provider in providers:
            if not provider.is_local:
                continue
            engine = find_engine()
            if engine.name != "llama-server":
                provider.concurrency = 1  # llama-cpp-python's server answers one at a time
            elif "concurrency" not in provider.model_fields_set:
                provider.concurrency = LOCAL_CONCURRENCY
            provider.model = provider.model or MODEL_ALIAS
            server = LocalServer(provider.local_model, parallel=provider.concurrency)
            servers[provider.id] = server.start()
            if on_start:
                on_start(provider.id, server)
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


async def run_eval(prepared: Prepared, options: RunOptions) -> RunOutcome:
    """Run (or resume) an eval; results are committed as they finish.

    ``local`` providers get an embedded llama.cpp server for the length of the run.

    Returns:
        The run record and the store holding its results. An interrupted run is
        marked ``interrupted`` and can be continued with ``resume=True``.
    """
    loaded = prepared.loaded
    spec = prepared.spec
    runs, cache = open_stores(loaded, options)
    eval_path = str(loaded.path.resolve())
    spec_hash = loaded.spec_hash()
    planned = prepared.count(options.limit) * len(spec.prompts) * len(spec.providers) \
        * spec.repeat
    run = runs.last_unfinished(eval_path) if options.resume else None
    if run is not None and run.spec_hash != spec_hash:
        raise ConfigError(f"the spec changed since run {run.run_id}; resume needs the same "
                          "spec (run without --resume to start a new run)", str(loaded.path))
    servers = start_local_servers(spec.providers, options.on_local)
    status = "failed"
    try:
        if run is None:
            config = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
            run = runs.create_run(eval_path, spec_hash, config, planned)
        runner = Runner(prepared, options, runs, cache, servers)
        if options.resume:
            runner.done = runs.done_keys(run.run_id)
        if options.on_start:
            options.on_start(run, planned, len(runner.done))
        await runner.run(run)
        status = "finished"
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise
    finally:
        for server in servers.values():
            server.stop()
        if run is not None:
            runs.finish_run(run.run_id, status)
        if cache is not None:
            cache.close()
    unreachable = {pid: c.unreachable for pid, c in runner.clients.items() if c.unreachable}
    engines = {pid: server.describe() for pid, server in servers.items()}
    return RunOutcome(runs.get_run(run.run_id), runs, unreachable, engines)
