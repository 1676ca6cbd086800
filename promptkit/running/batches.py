"""Requests sent as OpenAI-style Batch jobs (``/v1/files`` + ``/v1/batches``).

A provider with ``batch: true`` (or ``--batch``) answers in rounds. In a round the runner
goes over the cases as usual; every answer the cache cannot give is not sent but written
as a line of a batch file (``custom_id`` is ``pk-`` + the request's cache key, so
identical requests are sent once and their answer shared) and the case is put off (not
stored). The files (split at 50,000 lines or 200 MB) are uploaded, one batch each; the
batches are polled with backoff until they end, their output is imported into the cache
(and their failures noted by key), and the next round goes over the cases again: now
answered from the cache, they are scored and stored, and a case that needs another answer
(a later turn of a conversation) puts it in the next round's batch.

The batch ids are stored with the run, so ``--resume`` waits for a batch still in progress
instead of sending its requests again. A batch that expires or is cancelled fails only
the cases it did not answer: they are left undone (the run ends interrupted, exit 3) and
``--resume`` sends just those. ``promptkit batch export`` writes a round's file without
sending it (for ``vllm run-batch``), and ``promptkit batch import`` reads such a run's
output file into the cache and stores the cases it answers as a run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError, RunError, warn
from ..redact import redact, redact_data
from .budget import Budget, BudgetReached, worst_case_cost
from .cache import ResponseCache
from .client import RequestOutcome, classify
from .providers import Provider
from .responses import (
    Completion,
    RequestError,
    asks_json_output,
    breaks_json_output,
    parse_response,
)

MAX_BATCH_LINES = 50_000
MAX_BATCH_BYTES = 200 * 1024 * 1024
POLL_FIRST, POLL_CAP = 1.0, 60.0
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})

__all__ = ["Batching", "RunBatches", "batching_for", "check_batch", "custom_id", "key_of"]


def custom_id(key: str) -> str:
    """A request's id in a batch file: its cache key (64 hex digits, within every batch
    API's limit on ids)."""
    return key


def key_of(identifier: object) -> str | None:
    """The cache key a ``custom_id`` carries (None for an id promptkit did not write)."""
    if isinstance(identifier, str) and len(identifier) == 64 and all(
            c in "0123456789abcdef" for c in identifier):
        return identifier
    return None


def endpoint_path(provider: Provider) -> str:
    return "/v1/chat/completions" if provider.api == "chat" else "/v1/completions"


class Spool:
    """One round's batch lines for one provider, on disk, each request once; a new file
    when the next line would pass the line or byte limit."""

    def __init__(self, folder: Path, provider: Provider):
        self.folder, self.provider = folder, provider
        self.files: list[Path] = []
        self.keys: set[str] = set()
        self._file: IO[bytes] | None = None
        self._lines = self._bytes = 0

    def add(self, key: str, body: dict[str, Any]) -> bool:
        """Write the request unless this round has it already; whether it was new."""
        if key in self.keys:
            return False
        line = json.dumps({"custom_id": custom_id(key), "method": "POST",
                           "url": endpoint_path(self.provider), "body": body},
                          ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        if self._file is None or self._lines >= MAX_BATCH_LINES or \
                self._bytes + len(line) > MAX_BATCH_BYTES:
            self._next_file()
        assert self._file is not None
        self._file.write(line)
        self._lines += 1
        self._bytes += len(line)
        self.keys.add(key)
        return True

    def _next_file(self) -> None:
        if self._file is not None:
            self._file.close()
        path = self.folder / f"{self.provider.id}-{len(self.files) + 1}.jsonl"
        self.files.append(path)
        self._file = path.open("wb")
        self._lines = self._bytes = 0

    def close(self) -> list[Path]:
        if self._file is not None:
            self._file.close()
            self._file = None
        return self.files


@dataclass
class Batching:
    """Batch mode of one run: what each round put off, and what the batches answered.

    Args:
        cache: The response cache (the batches' answers are imported into it).
        store: The run's batch records (:class:`~.storage.RunBatches`): the ids sent,
            so a resumed run waits for them instead of sending their requests again.
        budget: Counts each line as a request sent.
        export_to: Write the first round's lines here instead of sending them.
        on_progress: Hears ``(provider id, batch id, status, done, total)`` on each poll.
    """

    cache: ResponseCache
    store: Any = None
    budget: Budget | None = None
    export_to: Path | None = None
    on_progress: Callable[[str, str, str, int, int], None] | None = None
    poll: tuple[float, float] = (POLL_FIRST, POLL_CAP)
    answers: dict[str, Completion] = field(default_factory=dict)  # not cacheable, kept here
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> error, kind
    unanswered: dict[str, set[str]] = field(default_factory=dict)  # by provider id
    spools: dict[str, Spool] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)  # keys submitted in this invocation
    json_keys: set[str] = field(default_factory=set)  # requests asking for JSON output
    stops: list[str] = field(default_factory=list)  # why cases are left undone, per provider
    skipped: int = 0  # lines of a results file that are not promptkit's or not readable
    exported: int = 0
    importing: bool = False  # answers come from an imported file: nothing is sent
    notes: dict[str, str] = field(default_factory=dict)  # provider id -> why a batch failed

    def __post_init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="promptkit-batch-"))

    @property
    def incomplete(self) -> str | None:
        """Why some cases are left undone (then the run is interrupted), or None."""
        return "; ".join(self.stops) or None

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def answer(self, key: str, body: dict[str, Any], provider: Provider
               ) -> tuple[Completion | None, RequestOutcome | None]:
        """What a request the cache could not answer gets in batch mode: the batch's
        answer or failure when it had one, else it joins this round's batch (and the
        case waits: ``error_kind`` ``deferred``)."""
        if key in self.answers:
            return self.answers[key], None
        if key in self.failed:
            error, kind = self.failed[key]
            return None, RequestOutcome(error=error, error_kind=kind)  # type: ignore[arg-type]
        spool = self.spools.get(provider.id)
        if spool is None:
            spool = self.spools[provider.id] = Spool(self._folder, provider)
        if key not in spool.keys and self.budget is not None and self.export_to is None \
                and not self.importing:
            worst = worst_case_cost(body, provider) if self.budget.counts_cost else 0.0
            if not self.budget.reserve(worst):
                raise BudgetReached(self.budget.exhausted or "budget reached")
            self.budget.settle(worst, None)  # a batch's usage settles nothing in flight
        spool.add(key, body)
        if asks_json_output(body):
            self.json_keys.add(key)
        return None, RequestOutcome(error="waiting for its batch", error_kind="deferred")

    async def rounds(self, provider: Provider, sdks: list[Any],
                     one_pass: Callable[[], Awaitable[None]]) -> None:
        """Go over the cases, send what they put off as batches, import the answers, and
        again, until a pass puts nothing off (or a batch left requests unanswered).
        ``sdks`` are the provider's endpoints (its replicas): a batch goes to the first
        that takes it and is read back from the one that has it."""
        if self.store is not None and sdks:
            await self._finish_stored(provider, sdks)
        unanswered = self.unanswered.setdefault(provider.id, set())
        while True:
            await one_pass()
            spool = self.spools.pop(provider.id, None)
            files = spool.close() if spool is not None else []
            if not files or spool is None:
                return
            stop = self._stop(provider, spool.keys, unanswered)
            if stop is not None:
                self.stops.append(stop)
                if self.export_to is not None:
                    self._export(files)
                return
            self.sent |= spool.keys
            sent = [await self._submit(provider, sdks, path) for path in files]
            for sdk, batch_id in sent:
                await self._import(provider, sdk, await self._wait(provider, sdk, batch_id))

    def _stop(self, provider: Provider, keys: set[str], unanswered: set[str]) -> str | None:
        """Why this round's requests are not sent (None: send them)."""
        if self.export_to is not None:
            return f"{len(keys)} requests exported, not sent"
        if self.importing:
            return (f"{len(keys)} requests of {provider.id} have no answer in the imported "
                    "file (a later turn, or not in it): promptkit batch export writes them")
        if unanswered:  # the last batch left these: the pass scored the rest
            why = self.notes.get(provider.id) or "the batch expired, was cancelled or the " \
                "server failed them (5xx, 429)"
            return (f"{len(unanswered)} requests of {provider.id} were not answered ({why}); "
                    "--resume sends just those")
        again = keys & self.sent
        if again:  # answered, yet asked again: nothing more a batch can do
            return f"{len(again)} requests of {provider.id} got no usable answer from their batch"
        return None

    def load(self, path: Path) -> int:
        """Read a batch output file (``promptkit batch import``): answers into the cache,
        failures noted. Returns the lines it answered.

        Raises:
            ConfigError: the file cannot be read.
        """
        answered = 0
        try:
            with path.open(encoding="utf-8") as lines:
                for raw in lines:
                    answered += self.import_line(raw) is not None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the batch results: {exc}") from None
        if self.skipped:
            warn(f"{path}: {self.skipped} lines skipped (not JSON objects, or custom_ids "
                 "promptkit did not write)")
        self.importing = True
        return answered

    def _export(self, files: list[Path]) -> None:
        assert self.export_to is not None
        with self.export_to.open("ab") as out:
            for path in files:
                with path.open("rb") as lines:
                    for line in lines:
                        out.write(line)
                        self.exported += 1

    async def _finish_stored(self, provider: Provider, sdks: list[Any]) -> None:
        """Batches this run sent before (it is resumed): wait for those still running and
        import every one not imported yet; one no endpoint knows any more is given up
        (its requests are sent again)."""
        for batch_id, status in self.store.batches(provider.id):
            if status == "imported":
                continue
            for sdk in sdks:
                try:
                    await sdk.batches.retrieve(batch_id)
                except Exception:  # another replica may have it
                    continue
                await self._import(provider, sdk, await self._wait(provider, sdk, batch_id))
                break
            else:
                warn(f"{provider.id}: batch {batch_id} is known to no endpoint any more; "
                     "its requests are sent again")
                self.store.mark_batch(batch_id, "lost")
        self.unanswered.pop(provider.id, None)  # a resumed run sends them again

    async def _submit(self, provider: Provider, sdks: list[Any], path: Path
                      ) -> tuple[Any, str]:
        """Upload a file and start its batch at the first endpoint that takes them."""
        problem = "no endpoint"
        for sdk in sdks:
            try:
                with path.open("rb") as content:
                    uploaded = await sdk.files.create(file=(path.name, content),
                                                      purpose="batch")
                batch = await sdk.batches.create(
                    input_file_id=uploaded.id, endpoint=endpoint_path(provider),
                    completion_window="24h", metadata={"promptkit": "eval"})
            except Exception as exc:  # refused: the next replica may take it
                problem = str(classify(exc))
                continue
            if self.store is not None:
                self.store.add_batch(provider.id, batch.id)
            return sdk, batch.id
        raise RunError(f"{provider.id}: the batch could not be sent: {problem}")

    async def _wait(self, provider: Provider, sdk: Any, batch_id: str) -> Any:
        delay, cap = self.poll
        while True:
            try:
                batch = await sdk.batches.retrieve(batch_id)
            except Exception as exc:
                raise RunError(f"{provider.id}: batch {batch_id} could not be read: "
                               f"{classify(exc)}") from None
            counts = batch.request_counts
            if self.on_progress is not None:
                self.on_progress(provider.id, batch_id, batch.status,
                                 (counts.completed + counts.failed) if counts else 0,
                                 counts.total if counts else 0)
            if batch.status in ENDED:
                return batch
            await asyncio.sleep(delay)
            delay = min(cap, delay * 2)

    async def _import(self, provider: Provider, sdk: Any, batch: Any) -> None:
        """Answers into the cache, failures noted; what it did not answer is unanswered."""
        answered: set[str] = set()
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                async for raw in _lines(sdk, file_id):
                    key = self.import_line(raw)
                    if key is not None:
                        answered.add(key)
        if batch.status == "failed":  # refused as a whole (too many lines, a bad file)
            errors = getattr(batch.errors, "data", None) or []
            self.notes[provider.id] = "batch " + ("; ".join(
                f"{e.code}: {e.message}" for e in errors[:3]) or "failed")
        if batch.status != "completed" or batch.errors:
            # Which requests it held: ask its input file (ours to read back).
            unanswered = self.unanswered.setdefault(provider.id, set())
            async for raw in _lines(sdk, batch.input_file_id):
                line = _json_object(raw)
                key = key_of(line.get("custom_id")) if line else None
                if key is not None and key not in answered:
                    unanswered.add(key)
        if self.store is not None:
            self.store.mark_batch(batch.id, "imported")

    def import_line(self, raw: str) -> str | None:
        """One line of a batch output (or error) file: its answer into the cache, or its
        failure noted; the cache key it answers (None for a line to send again: the
        server's own trouble; or not promptkit's, or unreadable: counted in ``skipped``)."""
        if not raw.strip():
            return None
        line = _json_object(raw)
        key = key_of(line.get("custom_id")) if line else None
        response = line.get("response") if line else None
        if key is None or not isinstance(response or {}, dict):
            self.skipped += 1
            return None
        response = response or {}
        status, body = response.get("status_code"), response.get("body")
        if status == 200 and isinstance(body, dict):
            choices = body.get("choices")
            chat = isinstance(choices, list) and bool(choices) and isinstance(
                choices[0], dict) and "message" in choices[0]
            try:
                completion = parse_response(body, chat)
            except RequestError as exc:
                self.failed[key] = (redact(str(exc)), exc.kind)
                return key
            completion.text = redact(completion.text)
            if completion.tool_calls:
                completion.tool_calls = redact_data(completion.tool_calls)
            self.store_answer(key, completion)
            return key
        error = line.get("error") or (body.get("error") if isinstance(body, dict) else None)
        error = error if isinstance(error, dict) else {"message": str(error or body)}
        message, code = redact(str(error.get("message"))), error.get("code")
        if (isinstance(status, int) and (status >= 500 or status in (408, 409, 429))) or (
                status is None and code in ("batch_expired", "batch_cancelled")):
            return None  # the server's trouble, or never run: sent again on --resume
        self.failed[key] = (f"batch line failed ({status}): {message}"[:500], "http")
        return key

    def store_answer(self, key: str, completion: Completion) -> None:
        """Into the cache, unless it breaks the JSON output its request asked for (never
        cached, as in a run without batches): then it is kept for this run only."""
        if key in self.json_keys and breaks_json_output(completion):
            self.answers[key] = completion
            return
        self.cache.put(key, completion.to_record())


def _json_object(raw: str) -> dict[str, Any] | None:
    """A line of a batch file as a JSON object (None for anything else)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def _lines(sdk: Any, file_id: str) -> AsyncIterator[str]:
    """A file's lines as they are downloaded (a batch's output can be large)."""
    try:
        async with sdk.files.with_streaming_response.content(file_id) as response:
            async for line in response.iter_lines():
                yield line
    except Exception as exc:
        raise RunError(f"batch file {file_id} could not be read: {classify(exc)}") from None


class RunBatches:
    """The batch jobs of one run, in its run store."""

    def __init__(self, runs: Any, run_id: str):
        self.runs, self.run_id = runs, run_id

    def add_batch(self, provider_id: str, batch_id: str) -> None:
        self.runs._write("INSERT OR REPLACE INTO batches (batch_id, run_id, provider_id, "
                         "status, created_at) VALUES (?, ?, ?, 'sent', ?)",
                         (batch_id, self.run_id, provider_id, time.time()))

    def batches(self, provider_id: str) -> list[tuple[str, str]]:
        return list(self.runs.conn.execute(
            "SELECT batch_id, status FROM batches WHERE run_id = ? AND provider_id = ? "
            "ORDER BY created_at", (self.run_id, provider_id)))

    def pending(self) -> int:
        """Batches of the run (any provider) sent and not imported yet."""
        return int(self.runs.conn.execute(
            "SELECT COUNT(*) FROM batches WHERE run_id = ? AND status = 'sent'",
            (self.run_id,)).fetchone()[0])

    def mark_batch(self, batch_id: str, status: str) -> None:
        self.runs._write("UPDATE batches SET status = ? WHERE batch_id = ?", (status, batch_id))


def check_batch(providers: list[Provider], use_cache: bool) -> None:
    """Batch mode needs the cache (it holds the answers between rounds) and an endpoint.

    Raises:
        ConfigError: a local provider in batch mode, or batch mode without the cache.
    """
    batched = [p for p in providers if p.batch]
    if batched and not use_cache:
        raise ConfigError("batch mode needs the response cache (it holds a batch's answers "
                          "until they are scored): drop --no-cache")
    for provider in batched:
        if provider.is_local:
            raise ConfigError(f"provider {provider.id!r} is local: the embedded server has "
                              "no Batch API (batch: true needs a base_url endpoint)")


def batching_for(options: Any, records: RunBatches, cache: ResponseCache | None,
                 providers: list[Provider]) -> Batching | None:
    """Batch mode when a provider has ``batch: true`` (``--batch`` sets it on every
    provider), or to export or import a batch file (``options``: the run's
    :class:`~.options.RunOptions`); a resumed run without it whose batches still run is
    warned about (their answers would be asked for again)."""
    if cache is None or not any(p.batch for p in providers):
        if options.resume and records.pending():
            warn("this run has batches still pending: resume with --batch to collect their "
                 "answers instead of sending their requests again")
        return None
    batching = Batching(cache, records, options.budget, export_to=options.batch_export,
                        on_progress=options.on_batch)
    if options.batch_import is not None:
        try:
            batching.load(options.batch_import)
        except BaseException:
            batching.close()
            raise
    return batching
