"""Profiling endpoints: throughput, latency, goodput, memory and cost per concurrency level.

``promptkit profile`` sends streamed requests to each target (an eval's providers,
``--base-url``, the embedded local server) at each concurrency level and reports what
vLLM's serving benchmark reports, under its names. Modules, in the order data flows:
:mod:`.settings` (levels, SLOs), :mod:`.workload` (targets and their prompts),
:mod:`.measure` (one timed request), :mod:`.memory` (RSS, KV cache), :mod:`.metrics` (a
level's figures), :mod:`.profiler` (the loop; :func:`profile` prints nothing), and the
presenters: :mod:`.views`, :mod:`.console`, :mod:`.charts` and :mod:`.outputs`.
"""

from .metrics import LevelResult as LevelResult
from .profiler import ProfileReport as ProfileReport
from .profiler import ProfileRun as ProfileRun
from .profiler import profile as profile
from .settings import ProfileSettings as ProfileSettings
from .settings import parse_counts as parse_counts
from .settings import parse_slo as parse_slo
from .workload import Target as Target
from .workload import Workload as Workload
from .workload import build_targets as build_targets

__all__ = [
    "LevelResult",
    "ProfileReport",
    "ProfileRun",
    "ProfileSettings",
    "Target",
    "Workload",
    "build_targets",
    "parse_counts",
    "parse_slo",
    "profile",
]
