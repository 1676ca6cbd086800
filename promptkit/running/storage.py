"""The run store (``runs.db``): runs and their per-case results, and finding them.

It lives in ``.promptkit/`` beside the eval by default (:func:`default_paths`, beside the
response cache of :mod:`.cache`), as a :class:`~.database.Database`. Every result is
committed as it arrives. It never holds an API key: callers pass resolved specs without
secrets.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from ..errors import ConfigError, PromptkitError, StoreError
from ..redact import strip_userinfo
from ..results import RESULT_FORMAT, CaseResult, RunInfo, RunStatus
from .cache import ResponseCache
from .database import Database, Migration

if TYPE_CHECKING:
    from .spec import EvalSpec

RUN_MIGRATIONS: list[Migration] = [
    (  # 1: runs and their per-case results
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            eval_path TEXT NOT NULL,
            spec_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            planned INTEGER,
            config TEXT NOT NULL,        -- JSON object: the resolved spec
            format INTEGER NOT NULL
        )""",
        "CREATE INDEX runs_by_eval ON runs (eval_path, started_at)",
        # Scalar columns are what reports filter and aggregate on; ``record`` is the
        # whole CaseResult. Scores and costs may be NULL: SQLite stores NaN as NULL.
        """CREATE TABLE results (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            prompt_id TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            case_id TEXT NOT NULL,
            repeat INTEGER NOT NULL,
            case_index INTEGER NOT NULL,
            passed INTEGER NOT NULL,
            score REAL,
            error TEXT,
            error_kind TEXT,
            latency_s REAL,
            ttft_s REAL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cost REAL,
            cached INTEGER NOT NULL,
            format INTEGER NOT NULL,
            record TEXT NOT NULL,        -- JSON object: CaseResult.to_dict()
            PRIMARY KEY (run_id, prompt_id, provider_id, case_id, repeat)
        )""",
        # Lets results() stream in report order without a sort.
        """CREATE INDEX results_in_order
            ON results (run_id, prompt_id, provider_id, case_index, repeat)""",
    ),
    (  # 2: the Batch API jobs a run sent (see batches.py), so --resume waits for them
        """CREATE TABLE batches (
            batch_id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            provider_id TEXT NOT NULL,
            status TEXT NOT NULL,        -- sent, imported
            created_at REAL NOT NULL
        )""",
    ),
]


Shard = tuple[int, int]  # (I, N): shard I (1-based) of N

# Keys a run's stored config holds beside the resolved spec (the spec has neither key):
# a shard run's {"index": I, "count": N}, and a merged run's shards and source runs.
SHARD_KEY = "shard"
MERGED_KEY = "merged"


def run_shard(run: RunInfo) -> Shard | None:
    """The shard ``(I, N)`` a run ran (``promptkit eval --shard I/N``), or ``None``."""
    tag = run.config.get(SHARD_KEY)
    if not isinstance(tag, dict):
        return None
    return int(tag["index"]), int(tag["count"])


def _ran(run: RunInfo, shard: Shard | None) -> bool:
    """Whether ``run`` is a run of ``shard`` (``None``: unsharded), not a merged one."""
    return run_shard(run) == shard and MERGED_KEY not in run.config


def default_paths(eval_file: Path, store_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Where an eval keeps its stores: ``(<eval dir>/.promptkit/runs.db, .../cache.db)``,
    or in ``store_dir`` when given."""
    folder = Path(eval_file).parent / ".promptkit" if store_dir is None else Path(store_dir)
    return folder / "runs.db", folder / "cache.db"


def find_run_stores(store_dir: str | Path | None = None, root: str | Path = ".") -> list[Path]:
    """The run databases commands such as ``promptkit runs list`` look in.

    ``store_dir``'s when given; else ``./.promptkit/runs.db`` and ``*/.promptkit/runs.db``
    one folder down (``evals/.promptkit/``, where evals in ``evals/`` keep their runs),
    those that exist.
    """
    if store_dir is not None:
        return [Path(store_dir) / "runs.db"]
    root = Path(root)
    candidates = [root / ".promptkit" / "runs.db", *sorted(root.glob("*/.promptkit/runs.db"))]
    return [path for path in candidates if path.is_file()]


def list_runs(store_dir: str | Path | None = None, limit: int = 20
              ) -> list[tuple[RunInfo, int, Path]]:
    """The newest runs of every run store found (see :func:`find_run_stores`), newest
    first, each with its number of stored results and its store."""
    found = []
    for path in find_run_stores(store_dir):
        if not path.is_file():
            continue
        with RunStore(path) as store:
            found += [(run, store.count_results(run.run_id), path)
                      for run in store.list_runs(limit=limit)]
    return sorted(found, key=lambda item: -item[0].started_at)


def find_run(ref: str, paths: list[Path]) -> tuple[RunStore, RunInfo]:
    """Open the store holding run ``ref`` (an id, a unique prefix, or ``last``).

    With ``last``, the newest run of all the stores. The returned store is open; the
    caller closes it.

    Raises:
        PromptkitError: no store, no run, or a run id matching in several stores.
    """
    if not paths:
        raise PromptkitError("no run store found (looked for .promptkit/runs.db here and one "
                             "folder down); run an eval first or pass --store-dir")
    found: list[tuple[RunStore, RunInfo]] = []
    errors: list[str] = []
    for path in paths:
        store = RunStore(path)
        try:
            found.append((store, store.get_run(ref)))
        except PromptkitError as exc:
            store.close()
            errors.append(str(exc))
    if ref in ("last", "latest") and found:
        found.sort(key=lambda item: (item[1].started_at, item[1].run_id))
        for store, _ in found[:-1]:
            store.close()
        return found[-1]
    if len(found) == 1:
        return found[0]
    for store, _ in found:
        store.close()
    if found:
        raise PromptkitError(f"run {ref!r} is in several stores: "
                             f"{', '.join(str(store.path) for store, _ in found)}; "
                             "pick one with --store-dir")
    raise PromptkitError("; ".join(errors))


_RUN_COLUMNS = "run_id, eval_path, spec_hash, status, started_at, finished_at, config, planned, " \
    "format"

_INSERT_RESULT = (
    "INSERT OR REPLACE INTO results (run_id, prompt_id, provider_id, case_id, repeat, "
    "case_index, passed, score, error, error_kind, latency_s, ttft_s, input_tokens, "
    "output_tokens, cost, cached, format, record) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


class RunStore(Database):
    """Runs and their per-case results; every result is committed as it arrives.

    Args:
        path: The SQLite file; missing parent folders are created. Another process may
            have it open (one writing a run while another lists runs).
    """

    migrations = RUN_MIGRATIONS

    def create_run(self, eval_path: str, spec_hash: str, config: Mapping[str, Any],
                   planned: int | None = None) -> RunInfo:
        """Start a run with status ``running``.

        Its id is the UTC start time plus 4 random hex digits, e.g.
        ``20261128T121803-3f9a``: sortable, readable, and short to type as a prefix.

        Args:
            eval_path: The eval spec file, as the caller wants to find it again.
            spec_hash: A hash of the spec, to refuse resuming after the spec changed.
            config: The resolved spec as JSON-compatible data, without secrets.
            planned: The expected number of results, when known.
        """
        started_at = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started_at))
        config_json = json.dumps(dict(config), ensure_ascii=False, default=str)
        for _ in range(10):  # two runs started in the same second may draw the same suffix
            run_id = f"{stamp}-{secrets.token_hex(2)}"
            try:
                self._write(
                    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, eval_path, spec_hash, "running", started_at, None, config_json,
                     planned, RESULT_FORMAT))
            except sqlite3.IntegrityError:
                continue
            return RunInfo(run_id, eval_path, spec_hash, "running", started_at,
                           config=json.loads(config_json), planned=planned)
        raise StoreError(f"{self.path}: could not draw a unique run id")

    def add_result(self, run_id: str, result: CaseResult) -> None:
        """Save one result, replacing any earlier one with the same key (a resumed retry).

        The row is committed before this returns. Values that JSON cannot hold (dates
        in ``vars``, say) are stored as strings.
        """
        record = json.dumps(result.to_dict(), ensure_ascii=False, default=str)
        row = (run_id, result.prompt_id, result.provider_id, result.case_id, result.repeat,
               result.case_index, result.passed, result.score, result.error,
               result.error_kind, result.latency_s, result.ttft_s, result.input_tokens,
               result.output_tokens, result.cost, result.cached, RESULT_FORMAT, record)
        try:
            try:
                self._write(_INSERT_RESULT, row)
            except UnicodeEncodeError:  # text UTF-8 cannot hold (a lone surrogate): escape it
                record = json.dumps(result.to_dict(), ensure_ascii=True, default=str)
                row = tuple(value.encode("utf-8", "backslashreplace").decode("utf-8")
                            if isinstance(value, str) else value for value in row[:-1])
                self._write(_INSERT_RESULT, (*row, record))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"{self.path}: cannot store result {result.key} of run "
                             f"{run_id}: {exc}") from exc

    @contextlib.contextmanager
    def run_lock(self, run_id: str) -> Iterator[None]:
        """Hold an exclusive lock on ``run_id`` while running it.

        A second process that tries to run (resume) the same run at the same time is
        refused instead of asking every case twice. The lock is an ``flock`` on a file
        beside the database, so a killed process releases it.

        Raises:
            PromptkitError: another process holds the run.
        """
        lock_path = self.path.with_name(f"{self.path.name}.{run_id}.lock")
        try:
            handle = open(lock_path, "a+")  # noqa: SIM115 - closed in the finally below
        except OSError as exc:
            raise StoreError(f"{lock_path}: cannot create the run lock: "
                             f"{exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise PromptkitError(f"run {run_id} is being run by another process right "
                                     "now; wait for it to end, then --resume if it did not "
                                     "finish") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    lock_path.unlink()
        finally:
            handle.close()

    def done_keys(self, run_id: str) -> set[tuple[str, str, str, int]]:
        """Keys ``(prompt_id, provider_id, case_id, repeat)`` of results without an error.

        These are what ``--resume`` must not request again.
        """
        rows = self.conn.execute(
            "SELECT prompt_id, provider_id, case_id, repeat FROM results "
            "WHERE run_id = ? AND error IS NULL", (run_id,))
        return {(p, m, c, int(r)) for p, m, c, r in rows}

    def finish_run(self, run_id: str, status: RunStatus) -> None:
        """Record how a run ended (``finished``, ``interrupted`` or ``failed``) and when."""
        if status not in get_args(RunStatus):
            raise PromptkitError(f"unknown run status {status!r}")
        self._update(run_id, "status = ?, finished_at = ?", (status, time.time()))

    def _update(self, run_id: str, assignments: str, values: tuple[Any, ...]) -> None:
        cursor = self._write(f"UPDATE runs SET {assignments} WHERE run_id = ?",
                             (*values, run_id))
        if cursor.rowcount == 0:
            raise PromptkitError(f"{self.path}: no run {run_id!r}")

    def get_run(self, ref: str) -> RunInfo:
        """Find a run by exact id, unique id prefix, or ``last`` / ``latest`` (the newest).

        Raises:
            PromptkitError: No run or several runs match; the message lists recent ids.
        """
        select = f"SELECT {_RUN_COLUMNS} FROM runs"
        if ref in ("last", "latest"):
            rows = self.conn.execute(
                f"{select} ORDER BY started_at DESC, run_id DESC LIMIT 1").fetchall()
        else:
            rows = self.conn.execute(f"{select} WHERE run_id = ?", (ref,)).fetchall()
            if not rows and ref:
                rows = self.conn.execute(
                    f"{select} WHERE substr(run_id, 1, ?) = ? ORDER BY run_id LIMIT 6",
                    (len(ref), ref)).fetchall()
        if len(rows) == 1:
            return self._run_info(rows[0])
        if rows:
            ids = ", ".join(row[0] for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise PromptkitError(f"run {ref!r} is ambiguous: it matches {ids}; "
                                 "type more of the id")
        recent = [run.run_id for run in self.list_runs(limit=5)]
        hint = f"recent runs: {', '.join(recent)} (or 'last')" if recent else "no runs yet"
        raise PromptkitError(f"no run {ref!r} in {self.path}; {hint}")

    def last_unfinished(self, eval_path: str, shard: Shard | None = None) -> RunInfo | None:
        """The newest run of ``eval_path`` whose status is not ``finished``, if any: of
        shard ``shard`` (``None``: an unsharded run); a merged run is never one."""
        cursor = self.conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE eval_path = ? AND status != 'finished' "
            "ORDER BY started_at DESC, run_id DESC", (eval_path,))
        with contextlib.closing(cursor):
            for row in cursor:
                run = self._run_info(row)
                if _ran(run, shard):
                    return run
        return None

    def run_to_resume(self, eval_path: str, spec_hash: str, shard: Shard | None,
                      spec_file: Path, limit: int | None = None) -> RunInfo:
        """The run ``--resume`` continues: the newest unfinished one of this eval (and
        shard), asked for the same spec.

        Raises:
            PromptkitError: there is none (the message says what there is).
            ConfigError: the spec changed since that run.
        """
        run = self.last_unfinished(eval_path, shard)
        which = "" if shard is None else f" for shard {shard[0]}/{shard[1]}"
        if run is None:
            last = [r for r in self.list_runs(eval_path, limit=-1) if _ran(r, shard)]
            what = (f"the last run of {spec_file}{which} ({last[0].run_id}) finished" if last
                    else f"{spec_file} has no runs{which} in {self.path}")
            raise PromptkitError(f"nothing to resume: {what}; run without --resume to start "
                                 "a new run")
        if run.spec_hash != spec_hash:
            raise ConfigError(f"the spec changed since run {run.run_id}; resume needs the "
                              "same spec (run without --resume to start a new run)",
                              str(spec_file))
        ran_limit = (run.config.get(SHARD_KEY) or {}).get("limit") if shard else limit
        if shard is not None and ran_limit != limit:
            given = "no --limit" if ran_limit is None else f"--limit {ran_limit}"
            raise ConfigError(f"run {run.run_id} is shard {shard[0]}/{shard[1]} run with "
                              f"{given}: resume it with the same (its shard's cases depend "
                              "on it)", str(spec_file))
        return run

    def list_runs(self, eval_path: str | None = None, limit: int = 20) -> list[RunInfo]:
        """Runs, newest first, optionally of one eval only; a negative limit lists all."""
        where, params = ("WHERE eval_path = ?", (eval_path,)) if eval_path is not None \
            else ("", ())
        rows = self.conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs {where} "
            "ORDER BY started_at DESC, run_id DESC LIMIT ?", (*params, limit))
        return [self._run_info(row) for row in rows]

    def _run_info(self, row: tuple[Any, ...]) -> RunInfo:
        run_id, eval_path, spec_hash, status, started_at, finished_at, config, planned, \
            fmt = row
        try:
            config_data = json.loads(config)
        except ValueError as exc:
            raise PromptkitError(f"{self.path}: run {run_id}: the stored config is not "
                                 f"valid JSON ({exc})") from exc
        return RunInfo(run_id, eval_path, spec_hash, status, started_at, finished_at,
                       config_data, planned, fmt)

    def results(self, run_id: str, prompt_id: str | None = None,
                provider_id: str | None = None) -> Iterator[CaseResult]:
        """Stream a run's results ordered by prompt, provider, case index and repeat.

        Rows are read one at a time from a cursor, so a 100,000-result run never sits
        in memory at once.

        Raises:
            PromptkitError: A stored record is not valid JSON or is from a newer
                promptkit; the message names the run and the result key.
        """
        sql = "SELECT prompt_id, provider_id, case_id, repeat, format, record FROM results " \
            "WHERE run_id = ?"
        params: list[Any] = [run_id]
        if prompt_id is not None:
            sql += " AND prompt_id = ?"
            params.append(prompt_id)
        if provider_id is not None:
            sql += " AND provider_id = ?"
            params.append(provider_id)
        sql += " ORDER BY prompt_id, provider_id, case_index, repeat"
        cursor = self.conn.execute(sql, params)
        try:
            for *key, fmt, record in cursor:
                yield self._case_result(run_id, tuple(key), fmt, record)
        finally:
            cursor.close()

    def _case_result(self, run_id: str, key: tuple[Any, ...], fmt: int,
                     record: str) -> CaseResult:
        where = f"{self.path}: run {run_id}, result {key}"
        if fmt > RESULT_FORMAT:
            raise PromptkitError(f"{where}: record format {fmt} is newer than this promptkit "
                                 f"supports ({RESULT_FORMAT}); upgrade promptkit")
        try:
            data = json.loads(record)
            return CaseResult.from_dict(data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise PromptkitError(f"{where}: the stored record is unreadable ({exc})") from exc

    def count_results(self, run_id: str) -> int:
        """How many results a run has stored (with or without errors)."""
        return int(self.conn.execute("SELECT COUNT(*) FROM results WHERE run_id = ?",
                                     (run_id,)).fetchone()[0])


def open_stores(spec_path: Path, store_dir: Path | None, use_cache: bool,
                cache_dir: Path | None = None) -> tuple[RunStore, ResponseCache | None]:
    """The run store and (with ``use_cache``) the response cache of an eval: beside the
    spec, or in ``store_dir`` (the cache in ``cache_dir`` when given)."""
    runs_path, cache_path = default_paths(spec_path, store_dir)
    if cache_dir is not None:
        cache_path = cache_dir / cache_path.name
    created = not runs_path.parent.exists()
    runs = RunStore(runs_path)
    if created:  # a folder promptkit made holds local state only: keep it out of commits
        try:
            (runs_path.parent / ".gitignore").write_text("*\n")
        except OSError as exc:
            runs.close()
            raise StoreError(f"cannot write {runs_path.parent}: {exc.strerror or exc}") from None
    try:
        return runs, ResponseCache(cache_path) if use_cache else None
    except BaseException:
        runs.close()
        raise


def hourly_prices(config: Mapping[str, Any]) -> dict[str, float]:
    """Provider id → USD per hour, for the providers of a run's stored config (its resolved
    spec, ``RunInfo.config``) priced by the hour."""
    prices = {}
    for provider in config.get("providers", []):
        price = provider.get("price") or {}
        if price.get("per_hour") is not None:
            prices[str(provider.get("id"))] = float(price["per_hour"])
    return prices


def run_config(spec: EvalSpec, shard: Shard | None = None, limit: int | None = None
               ) -> dict[str, Any]:
    """The resolved spec as stored with a run: no secrets (header names only, base URLs
    (each replica's too) without userinfo; API keys are never in a spec, only the variable
    names); a shard run's config also holds its tag (:data:`SHARD_KEY`), with the
    ``limit`` it applied."""
    config = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    if shard is not None:
        config[SHARD_KEY] = {"index": shard[0], "count": shard[1]}
        if limit is not None:
            config[SHARD_KEY]["limit"] = limit
    for provider in [*config.get("providers", []), *config.get("graders", [])]:
        if provider.get("headers"):
            provider["headers"] = sorted(provider["headers"])
        if isinstance(provider.get("base_url"), list):  # replicas
            provider["base_url"] = [strip_userinfo(url) for url in provider["base_url"]]
        elif provider.get("base_url"):
            provider["base_url"] = strip_userinfo(provider["base_url"])
    return config
