"""The eval loop: cases → render → request → score → store.

Each provider gets its own pool of workers (its ``concurrency``) reading the
dataset as a stream, so a slow endpoint never starves a fast one and memory does
not grow with the dataset. Every result is committed to the run store as it
finishes; failures are recorded per case and never stop the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..datasets import Case
from ..errors import GraderOutage, PromptkitError, RunError, StoreError, warn
from ..redact import redact
from ..results import CaseResult, RunInfo
from ..scoring.context import Output, ScoringContext
from ..scoring.engine import AssertionResult, CaseScore, merge_scores, score
from .batches import Batching, RunBatches, batching_for, check_batch
from .budget import BudgetReached, check_budget, send
from .cache import ResponseCache
from .checks import turn_assertions
from .client import RETRYABLE, EndpointClient, RequestOutcome, record_answers
from .local import LocalServer, local_servers
from .options import FinishedRun, RunOptions
from .plan import EvalPlan, check_api_keys
from .replicas import ReplicaSet, provider_client, sdk_clients_of, served_by_replicas
from .responses import Completion, asks_json_output, breaks_json_output
from .spec import PromptVariant, Provider
from .storage import RunStore, open_stores, run_config
from .turns import case_turns, converse, converses

if TYPE_CHECKING:
    from ..scoring.assertion import Assertion

class Runner:
    """Runs one plan spec against its providers."""

    def __init__(self, plan: EvalPlan, options: RunOptions, runs: RunStore,
                 cache: ResponseCache | None, servers: dict[str, LocalServer] | None = None,
                 providers: list[Provider] | None = None):
        self.plan = plan
        # The providers as run (see local_servers); the spec's own stay as validated.
        self.providers = providers if providers is not None else list(plan.spec.providers)
        self.options = options
        self.runs = runs
        self.cache = cache
        self.servers = servers or {}
        self.clients: dict[str, EndpointClient] = {}
        self.sdk_clients: dict[tuple[Any, ...], Any] = {}
        self.done: set[tuple[str, str, str, int]] = set()
        self.budget_reached = False  # the budget refused a request: the run stops
        self.batching: Batching | None = None  # batch mode (providers with batch: true)
        # Selection by embeddings waits on the event loop from a thread. It gets threads of
        # its own: in asyncio's default pool, waiting threads would starve the DNS lookups
        # (getaddrinfo runs there) of the very requests they wait for.
        self.selection_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="promptkit-fewshot")

    def client_for(self, provider: Provider) -> EndpointClient | ReplicaSet:
        """The provider's client (a :class:`ReplicaSet` for several replicas); providers
        on the same endpoint share one AsyncOpenAI.

        A ``local`` provider's server starts here, when its first request is not in the
        cache: a fully cached run never starts it. Starting blocks the event loop for
        the few seconds the model takes to load, as it would before the run.
        """
        if provider.id not in self.clients:
            server = self.servers.get(provider.id)
            if server is not None and not server.launched:
                server.start()
                if self.options.on_local:
                    self.options.on_local(provider.id, server)
            urls = [server.base_url] if server else provider.replicas or [""]
            self.clients[provider.id] = provider_client(provider, urls, provider.api_key(),
                                                        self.sdk_clients)
        return self.clients[provider.id]

    async def run(self, run: RunInfo) -> None:
        spec = self.plan.spec
        for provider in [*self.providers, *spec.graders]:
            if provider.id not in self.servers:
                self.client_for(provider)
        for embedder in self.plan.embedders:
            embedder.loop = asyncio.get_running_loop()
            embedder.client = self.client_for(embedder.provider)
        try:
            await _all_or_none(*(self._provider_rounds(run, p) for p in self.providers))
        finally:
            for embedder in self.plan.embedders:
                embedder.loop = embedder.client = None
            self.selection_pool.shutdown(wait=False, cancel_futures=True)
            await asyncio.gather(*(c.close() for c in self.sdk_clients.values()),
                                 return_exceptions=True)

    def _items(self, provider: Provider) -> Iterator[tuple[Case, PromptVariant, int]]:
        spec = self.plan.spec
        for case in filter(self.options.runs_case, self.plan.cases(self.options.limit)):
            for variant, repeat in itertools.product(spec.prompts, range(spec.repeat)):
                if (variant.id, provider.id, case.id, repeat) not in self.done:
                    yield case, variant, repeat

    async def _provider_pool(self, run: RunInfo, provider: Provider) -> None:
        items = self._items(provider)  # shared by the workers: each takes the next item

        async def worker() -> None:
            for case, variant, repeat in items:
                try:
                    result = await self.run_case(provider, variant, case, repeat)
                except BudgetReached:
                    self.budget_reached = True
                    return  # this case stays undone (--resume runs it); take no more
                except RunError:
                    raise  # the run cannot go on (a local server died at start, ...)
                except Exception as exc:
                    # A bug or a resource limit hit by one case must not end the run.
                    result = CaseResult(variant.id, provider.id, case.id, case.index, repeat,
                                        vars=case.vars, category=self.plan.category(case),
                                        error_kind="internal",
                                        error=redact(f"{type(exc).__name__}: {exc}")[:500])
                if result.error_kind == "deferred":
                    continue  # its answer comes with a batch: a later pass scores it
                self.runs.add_result(run.run_id, result)  # StoreError ends the run
                if self.options.on_result:
                    self.options.on_result(result)

        await _all_or_none(*(worker() for _ in range(provider.concurrency)))

    async def _provider_rounds(self, run: RunInfo, provider: Provider) -> None:
        """A provider's cases; in batch mode, pass after pass until its batches answered
        all (each pass puts off what the cache cannot answer yet)."""
        if not (provider.batch and self.batching is not None):
            return await self._provider_pool(run, provider)
        sdks = [] if self.batching.export_to or self.batching.importing else \
            sdk_clients_of(self.client_for(provider))

        async def one_pass() -> None:
            self.done = self.runs.done_keys(run.run_id)
            await self._provider_pool(run, provider)

        await self.batching.rounds(provider, sdks, one_pass)

    async def run_case(self, provider: Provider, variant: PromptVariant, case: Case,
                       repeat: int) -> CaseResult:
        """One case: its request(s) and scores; every failure ends up in the result."""
        plan = self.plan
        template = plan.templates[variant.id]
        result = CaseResult(variant.id, provider.id, case.id, case.index, repeat,
                            vars=case.vars, template_sha256=template.sha256,
                            category=plan.category(case))
        try:
            if variant.fewshot and variant.fewshot.embeddings:
                # selection waits for an HTTP call: keep it off the loop (in this task's
                # context, so the warnings it gives reach the caller's collection)
                values = await asyncio.get_running_loop().run_in_executor(
                    self.selection_pool, contextvars.copy_context().run, plan.variables,
                    variant, case)
            else:
                values = plan.variables(variant, case)
            prompt = plan.prompt(variant, provider, values)
            result.prompt = prompt
            if variant.fewshot is not None:
                result.examples = values.get(variant.fewshot.var)
        except GraderOutage as exc:
            result.error, result.error_kind = str(exc), "grader"
            return result
        except PromptkitError as exc:
            result.error, result.error_kind = redact(str(exc)), "render"
            return result
        except (RecursionError, MemoryError) as exc:  # selection or rendering blew a limit
            result.error = f"the prompt could not be built: {type(exc).__name__}"
            result.error_kind = "render"
            return result
        if converses(case.reserved):
            return await self._converse(result, provider, variant, case, repeat,
                                        (prompt, values))
        body = plan.body(variant, provider, prompt)
        samples = plan.samples(variant)
        sampled = samples > 1 or plan.sampling(variant, provider)
        if samples > 1:
            body["temperature"] = plan.cots[variant.id].temperature
        answers = await asyncio.gather(*(
            self._request(body, provider, repeat * samples + i if sampled else None)
            for i in range(samples)), return_exceptions=True)
        if failed := [a for a in answers if isinstance(a, BaseException)]:
            raise failed[0]  # once every sample in flight has its answer (and is cached)
        completions = record_answers(result, answers, samples)
        if result.error is not None:
            return result
        result.input_tokens = sum(c.input_tokens or 0 for c in completions)
        result.output_tokens = sum(c.output_tokens or 0 for c in completions)
        if provider.price is not None:
            result.cost = provider.price.cost(result.input_tokens, result.output_tokens)
        scored_text, agreement = self._answer(variant, completions, result)
        result.tool_calls = completions[0].tool_calls
        result.finish_reason = completions[0].finish_reason
        await self._score(result, variant, values, [
            (Output(scored_text, tool_calls=result.tool_calls or [],
                    finish_reason=result.finish_reason), plan.assertions(variant, case), None)])
        if agreement is not None:
            result.metrics["agreement"] = agreement
        return result

    def _answer(self, variant: PromptVariant, completions: list[Completion],
                result: CaseResult) -> tuple[str, float | None]:
        """The text the assertions see (the output, or the extracted or voted answer),
        and the samples' agreement under self-consistency."""
        cot = self.plan.cots.get(variant.id)
        result.output = redact(completions[0].text)
        result.reasoning = completions[0].reasoning
        result.usage_estimated = any(c.usage_estimated for c in completions)
        if cot is None:
            return result.output.strip(), None
        from ..builders.answers import majority_vote, normalize_answer

        answers = [cot.extract(c.text) for c in completions]
        if len(completions) == 1:
            result.answer = answers[0]
            return result.answer or "", None
        vote = majority_vote(answers)
        result.answer, result.votes = vote.answer, dict(vote.votes)
        for completion, answer in zip(completions, answers, strict=True):
            if answer is not None and normalize_answer(answer) == vote.answer:
                result.output = redact(completion.text)  # a sample that gave the winner
                result.reasoning = completion.reasoning
                break
        return vote.answer or "", vote.agreement

    async def _request(self, body: dict[str, Any], provider: Provider, sample: int | None
                       ) -> tuple[Completion | None, RequestOutcome | None]:
        """One answer: from the cache (no outcome) or from the endpoint."""
        key = self._cache_key(body, provider, sample) if self.cache is not None else ""
        if self.cache is not None and (record := self.cache.get(key)) is not None:
            return Completion(**{k: v for k, v in record.items()
                                 if k in Completion.__dataclass_fields__}), None
        if provider.batch and self.batching is not None:
            return self.batching.answer(key, body, provider)  # its batch answers it
        outcome = await send(self.options.budget, self.client_for(provider), body)
        if outcome.completion is not None:
            outcome.completion.latency_s = outcome.latency_s
            outcome.completion.ttft_s = outcome.ttft_s
            if self.cache is not None and self._cacheable(body, outcome.completion):
                self.cache.put(key, outcome.completion.to_record())
        return outcome.completion, outcome

    def _cacheable(self, body: dict[str, Any], completion: Completion) -> bool:
        # an answer that breaks the requested JSON output is not kept
        return not (asks_json_output(body) and breaks_json_output(completion))

    def _cache_key(self, body: dict[str, Any], provider: Provider, sample: int | None) -> str:
        # A local server gets a new port each run; its model file is what identifies it.
        # Replicas come and go; the model they serve is what identifies them.
        server = self.servers.get(provider.id)
        where = (f"local:{server.model_path.name}" if server
                 else provider.replicas_key or self.client_for(provider).base_url)
        return ResponseCache.key(where, provider.model or provider.id, provider.api,
                                 body, sample)

    async def _converse(self, result: CaseResult, provider: Provider, variant: PromptVariant,
                        case: Case, repeat: int, rendered: tuple[Any, dict[str, Any]]
                        ) -> CaseResult:
        """A conversation case: the prompt, tool results and later turns, each answer
        asked for in turn; scored on its last answer and each turn's own assertions."""
        plan = self.plan
        prompt, values = rendered
        sample = repeat if plan.sampling(variant, provider) else None

        async def ask(messages: list[dict[str, Any]]) -> Any:
            return await self._request(plan.body(variant, provider, messages), provider,
                                       sample)

        turns = case_turns(case.reserved.get("turns"))
        talk = await converse(prompt, turns, case.reserved, values, plan.max_turns(variant),
                              ask)
        result.conversation = talk.messages
        record_answers(result, talk.answers, len(talk.answers), sequential=True)
        if result.error is not None:
            return result
        completions = talk.completions
        result.input_tokens = sum(c.input_tokens or 0 for c in completions)
        result.output_tokens = sum(c.output_tokens or 0 for c in completions)
        if provider.price is not None:
            result.cost = provider.price.cost(result.input_tokens, result.output_tokens)
        last = completions[-1]
        result.output, result.reasoning = redact(last.text), last.reasoning
        result.finish_reason = last.finish_reason
        result.usage_estimated = any(c.usage_estimated for c in completions)
        result.tool_calls = [call for _, calls in talk.turn_answers for call in calls] or None
        text, calls = talk.turn_answers[-1]
        graded = [(Output(text.strip(), tool_calls=calls, finish_reason=last.finish_reason),
                   plan.assertions(variant, case), None)]
        for index, turn in enumerate(turns):  # turn 1 answers the prompt: turns[0] is 2
            if turn.asserts and index + 1 < len(talk.turn_answers):
                text, calls = talk.turn_answers[index + 1]
                graded.append((Output(text.strip(), tool_calls=calls),
                               turn_assertions(plan, case, index), index + 2))
        stopped = None
        if talk.stopped:  # a failed check of its own, scored with the others
            stopped = AssertionResult("max-turns", "max-turns", False, 0.0, 1.0,
                                      f"max_turns ({plan.max_turns(variant)}) reached "
                                      f"{talk.stopped}")
        await self._score(result, variant, values, graded, stopped)
        return result

    async def _score(self, result: CaseResult, variant: PromptVariant,
                     variables: dict[str, Any],
                     graded: list[tuple[Output, list[Assertion], int | None]],
                     stopped: AssertionResult | None = None) -> None:
        """Score each output with its assertions (the last answer's, then each turn's)
        into ``result``; an assertion of a later turn is marked with ``turn`` (2, 3...);
        ``stopped``, a conversation cut short by ``max_turns``, fails with the others."""
        template = self.plan.templates[variant.id]
        context = ScoringContext(vars=variables, render=self.plan.store.render_string,
                                 judge=self._judge, embed=self._embed,
                                 tools=list(getattr(template, "tools", None) or []),
                                 output_schema=getattr(template, "output_schema", None))
        scores = []
        try:
            for output, assertions, _ in graded:
                output.latency_s, output.ttft_s = result.latency_s, result.ttft_s
                output.input_tokens, output.output_tokens = (result.input_tokens,
                                                             result.output_tokens)
                output.cost = result.cost
                scores.append(await score(output, assertions, context))
        except BudgetReached:
            raise  # a judge's request was refused: the case is not scored at all
        except GraderOutage as exc:
            result.error, result.error_kind = str(exc), "grader"
            return
        except PromptkitError as exc:
            result.error, result.error_kind = redact(str(exc)), "scoring"
            return
        extra = [] if stopped is None else [CaseScore(False, 0.0, [stopped])]
        scored = merge_scores([*scores, *extra])
        result.passed, result.score = scored.passed, scored.score
        result.metrics = dict(scored.metrics)
        result.assertions = [dict(r.__dict__) for r in scores[0].results]
        for (_, _, turn), turn_score in zip(graded[1:], scores[1:], strict=True):
            result.assertions += [{**r.__dict__, "turn": turn} for r in turn_score.results]
        if stopped is not None:
            result.assertions.append(dict(stopped.__dict__))

    def _grader(self, provider_id: str) -> EndpointClient:
        spec = self.plan.spec
        provider = next(p for p in [*spec.graders, *self.providers] if p.id == provider_id)
        return self.client_for(provider)

    async def _judge(self, provider_id: str, messages: list[dict[str, Any]], *,
                     response_format: dict[str, Any] | None = None) -> str:
        """Ask a judge (the chat API); its verdict is constrained to ``response_format``
        (a JSON schema) unless the provider's ``params`` set ``response_format: null``."""
        client = self._grader(provider_id)
        body: dict[str, Any] = {"model": client.provider.model, "messages": messages,
                                "temperature": 0}
        if response_format is not None:
            body["response_format"] = response_format
        body.update(client.provider.params)
        body = {key: value for key, value in body.items() if value is not None}
        outcome = await send(self.options.budget, client, body)
        if outcome.completion is None:
            message = f"judge {provider_id} failed: {outcome.error}"
            if outcome.error_kind in RETRYABLE:
                raise GraderOutage(message)  # the judge did not answer: say nothing of the case
            # It answered, refusing this output (too long, a content policy, ...): the
            # assertion fails, as it would if the model's endpoint had refused.
            raise PromptkitError(message)
        return redact(outcome.completion.text)

    async def _embed(self, provider_id: str, texts: list[str]) -> list[list[float]]:
        return await self._grader(provider_id).embed(texts)


async def _all_or_none(*coroutines: Any) -> None:
    """Run coroutines together; the first to raise cancels the others, then re-raises
    (``asyncio.gather`` would leave them running, e.g. requesting after a full disk)."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            raise task.exception()


async def run_eval(plan: EvalPlan, options: RunOptions) -> FinishedRun:
    """Run (or resume) an eval; results are committed as they finish.

    ``local`` providers get an embedded llama.cpp server, started on the first request
    the cache cannot answer and stopped when the run ends.

    Returns:
        The run record and where its results are stored. A run interrupted (or stopped
        by its budget: ``budget_reached``) is marked so and continues with ``resume=True``.
    """
    loaded, spec = plan.loaded, plan.spec
    runs, cache = open_stores(loaded.path, options.store_dir, options.use_cache,
                              options.cache_dir)
    eval_path = str(loaded.path.resolve())
    spec_hash = loaded.spec_hash()
    planned = sum(map(options.runs_case, plan.cases(options.limit))) * len(spec.prompts) \
        * len(spec.providers) * spec.repeat
    try:
        if options.batch_export is None:  # an export sends nothing
            check_api_keys(plan)
        check_budget(plan, options.budget)
        check_batch(spec.providers, cache is not None)
        run = runs.run_to_resume(eval_path, spec_hash, options.shard, loaded.path,
                                 options.limit) if options.resume else None
        providers, servers = local_servers(spec.providers, options.servers)
        if run is None:
            run = runs.create_run(eval_path, spec_hash,
                                  run_config(spec, options.shard, options.limit), planned)
    except BaseException:
        runs.close()
        if cache is not None:
            cache.close()
        raise
    status, ended = "failed", False
    runner = Runner(plan, options, runs, cache, servers, providers)
    try:
        runner.batching = batching_for(options, RunBatches(runs, run.run_id), cache,
                                       runner.providers)
        with runs.run_lock(run.run_id):
            if options.resume:
                runner.done = runs.done_keys(run.run_id)
            if options.on_start:
                options.on_start(run, planned, len(runner.done))
            await runner.run(run)
        incomplete = runner.budget_reached or bool(runner.batching and
                                                     runner.batching.incomplete)
        status, ended = "interrupted" if incomplete else "finished", True
    except (KeyboardInterrupt, asyncio.CancelledError, StoreError):
        status = "interrupted"  # --resume continues it
        raise
    finally:
        died = {pid: f"{server.exit_status()}; its last log lines:\n{server.log_tail()}"
                for pid, server in servers.items() if server.launched and server.exit_status()}
        for pid, server in servers.items():
            if options.servers is None or pid not in options.servers:
                server.stop()
        with contextlib.suppress(StoreError):  # a full disk may refuse this too
            runs.finish_run(run.run_id, status)
        if cache is not None:
            cache.close()
        if runner.batching is not None:
            runner.batching.close()
            if runner.batching.incomplete:
                warn(f"batch: {runner.batching.incomplete}")
        if not ended:
            runs.close()
    with runs:
        return _finished(runner, runs.get_run(run.run_id), runs.path, servers, died)


def _finished(runner: Runner, run: RunInfo, store_path: Path,
              servers: dict[str, LocalServer], died: dict[str, str]) -> FinishedRun:
    """What a run that ended reports: its endpoints' news, its budget's, its replicas'."""
    unreachable = {pid: c.unreachable for pid, c in runner.clients.items() if c.unreachable}
    unreachable.update(died)  # a crashed local server explains its lost connections
    engines = {pid: server.describe() for pid, server in servers.items() if server.launched}
    budget = runner.options.budget
    reached = budget.exhausted if budget and runner.budget_reached else None
    return FinishedRun(run, store_path, unreachable, engines, reached,
                       served_by_replicas(runner.clients))


def run_sync(make: Callable[[], Any]) -> Any:
    """Run a coroutine to the end, also from code that already runs an event loop (a
    notebook): then in a thread of its own, with this context (warnings collected here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, lambda: asyncio.run(make())).result()
