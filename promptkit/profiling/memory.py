"""Memory while a level runs: the local server's peak RSS, a server's KV-cache usage.

:class:`RssWatcher` reads ``/proc/<pid>/status`` of the embedded llama.cpp server (a child
process promptkit started): before each level it resets the kernel's high-water mark
(writing ``5`` to ``/proc/<pid>/clear_refs``), so ``VmHWM`` after the level is that level's
peak; where the reset is not allowed it samples ``VmRSS`` instead. Linux only; elsewhere
there is no figure.

:class:`KvCacheWatcher` samples a server's Prometheus ``/metrics`` (the base URL without
``/v1``): vLLM's ``vllm:kv_cache_usage_perc`` (``vllm:gpu_cache_usage_perc`` before
v0.10) and llama.cpp's ``llamacpp:kv_cache_usage_ratio`` (``llama-server --metrics``),
all fractions of 1, kept as the level's peak in percent. A server without them has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

SAMPLE_SECONDS = 0.05  # between RSS samples (only where the high-water mark cannot reset)
METRICS_SECONDS = 0.25  # between /metrics fetches
METRICS_TIMEOUT = 2.0
MAX_METRICS_BYTES = 4_000_000
KV_CACHE_METRICS = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
                    "llamacpp:kv_cache_usage_ratio")
_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)(?:\{[^}]*\})?\s+(?P<value>\S+)")


class Watcher(Protocol):
    """Something measured while a level runs: reset, sampled every ``interval`` seconds,
    read at the end."""

    interval: float

    def begin(self) -> None: ...

    async def sample(self) -> None: ...

    def end(self) -> float | None: ...


class RssWatcher:
    """The peak resident set size of process ``pid`` during each level, in MB."""

    interval = SAMPLE_SECONDS

    def __init__(self, pid: int):
        self.status = Path(f"/proc/{pid}/status")
        self.clear_refs = Path(f"/proc/{pid}/clear_refs")
        self.resets = False
        self.peak_kb = 0

    def begin(self) -> None:
        """Start a level: reset the high-water mark (or note that it cannot be reset)."""
        try:
            self.clear_refs.write_text("5")
            self.resets = True
        except OSError:
            self.resets = False
        self.peak_kb = self._read("VmRSS") or 0

    async def sample(self) -> None:
        if not self.resets:
            self.peak_kb = max(self.peak_kb, self._read("VmRSS") or 0)

    def end(self) -> float | None:
        """The level's peak RSS in MB (None when /proc could not be read)."""
        if self.resets:
            self.peak_kb = max(self.peak_kb, self._read("VmHWM") or 0)
        else:
            self.peak_kb = max(self.peak_kb, self._read("VmRSS") or 0)
        return self.peak_kb / 1024 if self.peak_kb else None

    def _read(self, key: str) -> int | None:
        try:
            for line in self.status.read_text().splitlines():
                if line.startswith(f"{key}:"):
                    return int(line.split()[1])  # "VmRSS:   123456 kB"
        except (OSError, ValueError, IndexError):
            return None
        return None


def kv_cache_usage(text: str) -> float | None:
    """The KV-cache usage (a fraction of 1) a Prometheus text exposition reports: the first
    of :data:`KV_CACHE_METRICS` present, its highest series (one per model or engine)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] not in KV_CACHE_METRICS:
            continue
        with contextlib.suppress(ValueError):
            value = float(match["value"])
            if value == value:  # not NaN
                found[match["name"]] = max(found.get(match["name"], value), value)
    return next((found[name] for name in KV_CACHE_METRICS if name in found), None)


def metrics_url(base_url: str) -> str:
    """``http://host:8000/v1`` → ``http://host:8000/metrics``."""
    root = base_url.rstrip("/").removesuffix("/v1")
    return f"{root}/metrics"


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=METRICS_TIMEOUT) as reply:
            if reply.status != 200:
                return None
            return reply.read(MAX_METRICS_BYTES).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None


class KvCacheWatcher:
    """The peak KV-cache usage of a server during each level, in percent."""

    interval = METRICS_SECONDS

    def __init__(self, url: str):
        self.url = url
        self.peak: float | None = None

    @classmethod
    async def find(cls, base_url: str) -> KvCacheWatcher | None:
        """A watcher when the server's ``/metrics`` reports KV-cache usage, else None."""
        url = metrics_url(base_url)
        text = await asyncio.to_thread(_fetch, url)
        if text is None or kv_cache_usage(text) is None:
            return None
        return cls(url)

    def begin(self) -> None:
        self.peak = None

    async def sample(self) -> None:
        text = await asyncio.to_thread(_fetch, self.url)
        usage = kv_cache_usage(text) if text is not None else None
        if usage is not None:
            self.peak = usage if self.peak is None else max(self.peak, usage)

    def end(self) -> float | None:
        return None if self.peak is None else self.peak * 100
