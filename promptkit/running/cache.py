"""The response cache (``cache.db``): successful answers by request, never by API key."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from ..errors import PromptkitError
from .database import Database, Migration

CACHE_MIGRATIONS: list[Migration] = [
    (  # 1: responses by cache key
        """CREATE TABLE responses (
            key TEXT PRIMARY KEY,
            record TEXT NOT NULL,        -- JSON object, as given to put()
            created_at REAL NOT NULL     -- unix time
        )""",
    ),
]

def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ResponseCache(Database):
    """Cache of successful endpoint responses (SPEC §6).

    The runner decides what may be cached (never errors, truncated streams or invalid
    JSON); the cache stores any JSON object under a key from :meth:`key`.

    Args:
        path: The SQLite file; missing parent folders are created.
    """

    migrations = CACHE_MIGRATIONS

    @staticmethod
    def key(base_url: str, model: str, api: str, body: Mapping[str, Any],
            sample_index: int | None = None) -> str:
        """The cache key of one request: a sha256 hex digest.

        The key hashes canonical JSON (sorted keys), so dict ordering does not matter,
        and ``base_url`` without trailing slashes. It never includes an API key: pass the
        request body only, never headers or auth.

        Args:
            base_url: The endpoint URL.
            model: The model name sent to the endpoint.
            api: ``"chat"`` or ``"completions"``.
            body: The exact JSON request body (no auth headers).
            sample_index: The repeat number when sampling, so repeats get distinct
                answers; ``None`` when the request is deterministic.
        """
        material = {"base_url": base_url.rstrip("/"), "model": model, "api": api,
                    "body": body, "sample": sample_index}
        return hashlib.sha256(_canonical_json(material).encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response record for ``key``, or ``None`` on a miss."""
        row = self.conn.execute("SELECT record FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            record = json.loads(row[0])
        except ValueError as exc:
            raise PromptkitError(f"{self.path}: cache entry {key} is not valid JSON ({exc}); "
                                 "delete the file or run with --no-cache") from exc
        if not isinstance(record, dict):
            raise PromptkitError(f"{self.path}: cache entry {key} is not a JSON object")
        return record

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        """Store (or replace) the response record for ``key``; committed on return."""
        self._write(
            "INSERT OR REPLACE INTO responses (key, record, created_at) VALUES (?, ?, ?)",
            (key, json.dumps(dict(record), ensure_ascii=False), time.time()))

    def clear(self) -> int:
        """Remove every entry; returns how many there were."""
        return self.conn.execute("DELETE FROM responses").rowcount

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
