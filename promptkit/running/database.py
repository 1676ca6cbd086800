"""One SQLite file as promptkit uses it: WAL mode, a busy timeout, versioned migrations.

A committed row survives a ``kill -9`` of the process (WAL with ``synchronous=NORMAL``),
and another process can read while a run writes. Schemas evolve through an append-only
list of migrations; ``PRAGMA user_version`` records how many have been applied, and a
database from a newer promptkit is refused rather than misread. Writes that fail (a full
disk, a read-only file) raise :class:`~promptkit.errors.StoreError` (exit 3).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from ..errors import PromptkitError, StoreError

BUSY_TIMEOUT_S = 30.0


# Append-only: never edit a migration that has shipped, add a new one at the end.
# Migration N (1-based) is applied to databases whose user_version is below N.
Migration = tuple[str, ...]



class Database:
    """One SQLite file: connection settings, migrations, closing."""

    migrations: ClassVar[list[Migration]] = []

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path.parent}: cannot create the store folder: "
                             f"{exc.strerror or exc}") from None
        # isolation_level=None: a statement outside BEGIN is its own transaction, committed
        # when execute() returns. WAL + synchronous=NORMAL keeps such a commit through a
        # kill -9 (not through power loss) without an fsync per result.
        try:
            self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S,
                                        isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the database: {exc}") from None
        try:
            if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise StoreError(f"{self.path}: cannot open the database: {exc}") from None
        except BaseException:
            self.conn.close()
            raise

    def _schema_version(self) -> int:
        version: int = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(self.migrations):
            raise PromptkitError(
                f"{self.path}: database schema version {version} is newer than this "
                f"promptkit supports ({len(self.migrations)}); upgrade promptkit or use "
                "another store folder")
        return version

    def _migrate(self) -> None:
        if self._schema_version() == len(self.migrations):
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have migrated meanwhile.
            for statements in self.migrations[self._schema_version():]:
                for statement in statements:
                    self.conn.execute(statement)
            self.conn.execute(f"PRAGMA user_version = {len(self.migrations)}")
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run one writing statement; a full disk or a read-only file is a StoreError."""
        try:
            return self.conn.execute(sql, params)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write {self.path}: {exc}") from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Write together: what is written inside is committed at the end, or not at all
        when anything inside raises. Other processes still read meanwhile (WAL)."""
        self._write("BEGIN IMMEDIATE")
        try:
            yield
            self._write("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection (committed data is already on disk)."""
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
