"""Few-shot pools: where examples come from, read and checked against the settings.

A pool is a JSONL or CSV file (read with the dataset checks of :mod:`promptkit.datasets`,
so a bad row names its file and line) or a list of mappings given from Python.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..datasets import iter_rows
from ..errors import ConfigError
from .fewshot_settings import FewShotSettings, PoolSource

__all__ = ["check_names_occur", "load_pool", "pool_path"]


def load_pool(source: PoolSource, base_dir: Path | None = None) -> list[dict[str, Any]]:
    """Read an example pool.

    Args:
        source: A list of mappings, or the path of a ``.jsonl`` or ``.csv`` file.
        base_dir: Where a relative path is looked up (default: the working directory).

    Returns:
        The rows as new dicts, in order.

    Raises:
        ConfigError: A missing or unsupported file, a row that is not an object (with its
            file and line), or a list item that is not a mapping.
    """
    if isinstance(source, str | os.PathLike):
        return [dict(row) for _, row in iter_rows(pool_path(source, base_dir))]
    rows = []
    for index, row in enumerate(source):
        if not isinstance(row, Mapping):
            raise ConfigError(f"each example must be a mapping, not {type(row).__name__}",
                              key_path=f"pool[{index}]")
        rows.append(dict(row))
    return rows


def pool_path(source: str | os.PathLike[str], base_dir: Path | None) -> Path:
    path = Path(source)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return path


def check_names_occur(pool: list[dict[str, Any]], settings: FewShotSettings,
                       filename: str | None) -> None:
    """Refuse ``fields`` or a ``label`` that no example has: a typo would compare nothing."""
    if not pool:
        return
    present: dict[str, None] = {}
    for row in pool:
        present.update(dict.fromkeys(row))
    wanted = [("fields", name) for name in settings.fields or ()]
    if settings.label is not None:
        wanted.append(("label", settings.label))
    for key, name in wanted:
        if name not in present:
            raise ConfigError(f"{name!r} is in none of the pool's {len(pool)} examples "
                              f"(their fields: {', '.join(present)})", filename,
                              key_path=key)
