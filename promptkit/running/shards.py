"""One eval split across machines (``eval --shard I/N``), and its shards merged into one run.

A case belongs to shard ``int(sha256(case id), 16) mod N + 1`` (:func:`shard_of`): the
same on every machine and in every run, whatever the order of the dataset. A shard run
stores its tag ``(I, N)`` with its config (:data:`~.storage.SHARD_KEY`); ``--resume``
continues a shard's own run. :func:`merge_shards` takes the newest shard run of each
store given, checks that together they are the whole eval (one spec, one N, each shard
once, none missing or unfinished unless partial merges are allowed) and writes their
results, each exactly once, as one new run, in one transaction: a refused merge writes
nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PromptkitError
from ..results import RunInfo
from .storage import MERGED_KEY, SHARD_KEY, RunStore, Shard, open_stores, run_shard

MAX_SHARDS = 10_000


def shard_of(case_id: str, count: int) -> int:
    """The shard (1 to ``count``) of the case with id ``case_id``: the sha256 of the id's
    UTF-8 bytes, read as a base-16 integer, modulo ``count``, plus one."""
    digest = hashlib.sha256(case_id.encode("utf-8", "surrogatepass")).hexdigest()
    return int(digest, 16) % count + 1


def check_shard(shard: Sequence[int]) -> Shard:
    """``(I, N)`` as given, when ``1 <= I <= N <= 10,000``.

    Raises:
        PromptkitError: any other value.
    """
    if (len(shard) != 2 or not all(isinstance(part, int) for part in shard)
            or not 1 <= shard[0] <= shard[1] <= MAX_SHARDS):
        raise PromptkitError(f"shard {tuple(shard)!r}: give (I, N), shard I of N "
                             f"(1 <= I <= N <= {MAX_SHARDS:,})")
    return int(shard[0]), int(shard[1])


def parse_shard(text: str) -> Shard:
    """``"I/N"`` (``--shard``) as ``(I, N)``.

    Raises:
        PromptkitError: not ``I/N`` with ``1 <= I <= N <= 10,000``.
    """
    match = re.fullmatch(r"\s*([0-9]{1,6})\s*/\s*([0-9]{1,6})\s*", text)
    if match is None or not 1 <= int(match[1]) <= int(match[2]) <= MAX_SHARDS:
        raise PromptkitError(f"--shard {text!r}: give I/N, shard I of N "
                             f"(1 <= I <= N <= {MAX_SHARDS:,}), e.g. 2/4")
    return int(match[1]), int(match[2])


def store_path(source: str | Path) -> Path:
    """The run database an argument of ``promptkit merge`` names: a store folder's
    ``runs.db``, or the file itself."""
    path = Path(source)
    return path / "runs.db" if path.is_dir() else path


@dataclass
class ShardRun:
    """The shard run a store holds for merging: where it is, the run and its shard."""

    source: str
    path: Path
    run: RunInfo
    shard: Shard

    @property
    def name(self) -> str:
        return f"{self.source} (run {self.run.run_id}, shard {self.shard[0]}/{self.shard[1]})"


def newest_shard_run(source: str | Path) -> ShardRun:
    """The newest run of ``eval --shard`` in a store (a folder or a ``runs.db``).

    Raises:
        PromptkitError: no run store there, or no shard run in it.
    """
    path = store_path(source)
    if not path.is_file():
        raise PromptkitError(f"{source}: no run store (give a folder holding runs.db, or a "
                             "runs.db file)")
    with RunStore(path) as store:
        for run in store.list_runs(limit=-1):  # newest first
            if (shard := run_shard(run)) is not None:
                return ShardRun(str(source), path, run, shard)
    raise PromptkitError(f"{source}: no shard run in {path} (`promptkit eval SPEC --shard "
                         "I/N` stores one)")


def check_shards(picks: Sequence[ShardRun], allow_partial: bool = False) -> list[int]:
    """Refuse shard runs that are not one eval's shards; the shards missing (allowed only
    with ``allow_partial``, as are unfinished runs).

    Raises:
        PromptkitError: different specs, shard counts or ``--limit``; a shard twice; a
            shard missing or unfinished without ``allow_partial``.
    """
    first = picks[0]
    for pick in picks[1:]:
        if pick.run.spec_hash != first.run.spec_hash:
            raise PromptkitError(
                f"cannot merge runs of different specs: {first.name} has spec "
                f"{first.run.spec_hash[:12]}, {pick.name} has {pick.run.spec_hash[:12]}")
        if pick.shard[1] != first.shard[1]:
            raise PromptkitError(f"cannot merge shards of different counts: {first.name} "
                                 f"and {pick.name}")
        if _limit(pick) != _limit(first):
            raise PromptkitError(f"cannot merge shards run with different --limit: "
                                 f"{first.name} ({_limit(first) or 'none'}) and {pick.name} "
                                 f"({_limit(pick) or 'none'})")
    seen: dict[int, ShardRun] = {}
    for pick in picks:
        if pick.shard[0] in seen:
            raise PromptkitError(f"shard {pick.shard[0]}/{pick.shard[1]} twice: "
                                 f"{seen[pick.shard[0]].name} and {pick.name}")
        seen[pick.shard[0]] = pick
    count = first.shard[1]
    missing = [index for index in range(1, count + 1) if index not in seen]
    if missing and not allow_partial:
        raise PromptkitError(f"shard{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(f'{i}/{count}' for i in missing)} missing from "
                             f"{', '.join(p.source for p in picks)}; merge every shard, or "
                             "pass --allow-partial")
    for pick in picks:
        if pick.run.status != "finished" and not allow_partial:
            raise PromptkitError(f"{pick.name} is {pick.run.status}; finish it (`promptkit "
                                 f"eval SPEC --resume --shard {pick.shard[0]}/{count}`) or "
                                 "pass --allow-partial")
    return missing


def _limit(pick: ShardRun) -> int | None:
    limit = pick.run.config[SHARD_KEY].get("limit")
    return None if limit is None else int(limit)


def merge_shards(sources: Sequence[str | Path], store_dir: str | Path | None = None,
                 allow_partial: bool = False) -> tuple[RunInfo, Path]:
    """Merge the newest shard run of each source into one new run.

    The merged run has the shards' eval path, spec hash and config, the tag
    :data:`~.storage.MERGED_KEY` (its shard count, the shards merged and their runs) in
    place of a shard tag, ``planned`` the shards' sum, and every shard's results; it is
    ``finished``, or ``interrupted`` when a shard is missing or unfinished.

    Args:
        sources: Store folders (holding ``runs.db``) or run database files.
        store_dir: The folder whose ``runs.db`` gets the merged run (default: the first
            source's database).
        allow_partial: Merge despite missing or unfinished shards.

    Returns:
        The merged run and the database holding it.

    Raises:
        PromptkitError: see :func:`check_shards`; a result in two shards. Nothing is
            written then.
    """
    if not sources:
        raise PromptkitError("give the run stores of the shards to merge")
    picks = [newest_shard_run(source) for source in sources]
    missing = check_shards(picks, allow_partial)
    partial = bool(missing) or any(p.run.status != "finished" for p in picks)
    first = picks[0]
    planned = [p.run.planned for p in picks]
    with _target(store_dir, first.path) as out, out.transaction():
        run = out.create_run(first.run.eval_path, first.run.spec_hash, _config(picks),
                             None if None in planned else sum(p or 0 for p in planned))
        seen: dict[tuple[str, str, str, int], ShardRun] = {}
        templates: dict[str, tuple[str, ShardRun]] = {}  # prompt id -> version sha256
        for pick in picks:
            with RunStore(pick.path) as store:  # its own reader, even of out's file
                for result in store.results(pick.run.run_id):
                    if result.key in seen:
                        raise PromptkitError(f"result {result.key} is in both "
                                             f"{seen[result.key].name} and {pick.name}")
                    _same_template(templates, result, pick)
                    seen[result.key] = pick
                    out.add_result(run.run_id, result)
        out.finish_run(run.run_id, "interrupted" if partial else "finished")
        return out.get_run(run.run_id), out.path


def _same_template(templates: dict[str, tuple[str, ShardRun]], result: Any,
                   pick: ShardRun) -> None:
    """Refuse shards whose prompt rendered another template file (the spec hash covers
    the spec's YAML, not the template files it names)."""
    sha = result.template_sha256
    if not sha:
        return
    known = templates.setdefault(result.prompt_id, (sha, pick))
    if known[0] != sha:
        raise PromptkitError(f"prompt {result.prompt_id!r} ran another template file in "
                             f"{known[1].name} ({known[0][:12]}) than in {pick.name} "
                             f"({sha[:12]}): the template changed between shards; run them "
                             "again with one version")


def _target(store_dir: str | Path | None, first: Path) -> RunStore:
    if store_dir is None:
        return RunStore(first)
    folder = Path(store_dir)
    return open_stores(folder / "runs.db", folder, use_cache=False)[0]


def _config(picks: Sequence[ShardRun]) -> dict[str, Any]:
    """The first shard's config, its shard tag replaced by the merged tag."""
    config = {key: value for key, value in picks[0].run.config.items() if key != SHARD_KEY}
    config[MERGED_KEY] = {
        "count": picks[0].shard[1],
        "shards": sorted(pick.shard[0] for pick in picks),
        "runs": [{"shard": pick.shard[0], "run_id": pick.run.run_id, "store": str(pick.path)}
                 for pick in sorted(picks, key=lambda pick: pick.shard[0])]}
    return config
