"""A profile's output files: ``.json`` (every field of every level), ``.csv`` (a row per
provider × workload × level) and ``.html`` (one static page: the tables and the charts as
inline SVG, from the autoescaped Jinja templates in ``templates/``, with a
Content-Security-Policy allowing only its own inline style: no script, nothing loaded).

Files are written atomically (:func:`~promptkit.files.atomic_write`).
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import json
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import IO

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ..errors import OutputError, PromptkitError
from ..files import atomic_write
from ..reporting.outputs import csv_cell
from .charts import profile_charts
from .metrics import LATENCY_FIELDS
from .profiler import ProfileReport
from .settings import describe_slo
from .views import run_table, side_by_side

SUFFIXES = (".json", ".csv", ".html")
RUN_COLUMNS = ("provider", "model", "base_url", "api", "engine", "workload", "input_tokens",
               "tokens", "max_concurrency_meeting_slo", "error")
LEVEL_COLUMNS = (
    "max_concurrency", "num_prompts", "completed", "failed", "duration",
    "total_input_tokens", "total_output_tokens", "request_throughput", "output_throughput",
    "total_token_throughput", "request_goodput", "slo_attainment", *LATENCY_FIELDS,
    "peak_rss_mb", "kv_cache_usage_pct", "usd_per_1m_output_tokens", "token_cost_usd",
    "tokens_from", "errors")


@functools.cache
def _environment() -> Environment:
    """The page's Jinja environment (autoescaped), made when a page is first written."""
    environment = Environment(
        loader=PackageLoader(__package__, "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    environment.filters["f1"] = lambda value: f"{value:.1f}"
    # a terminal header folds where it says ("concur-\nrency"); a page's on its own
    environment.filters["heading"] = lambda text: text.replace("-\n", "").replace("\n", " ")
    return environment


@functools.cache
def _style() -> tuple[str, str]:
    """The page's style sheet and the Content-Security-Policy allowing only it."""
    style = (resources.files(__package__) / "templates" / "profile.css").read_text(
        "utf-8").strip()
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return style, (f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; "
                   "base-uri 'none'; form-action 'none'")


def check_output(path: str) -> None:
    """Refuse an output path before anything is measured.

    Raises:
        PromptkitError: an unsupported suffix or a missing folder (exit 2).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise PromptkitError(f"-o {path}: unsupported output format '{suffix}' (use .json, "
                             ".csv or .html)")
    target = Path(path)
    if path.endswith(("/", "\\")) or target.is_dir():
        raise PromptkitError(f"-o {path}: a folder, not a file name")
    if not target.resolve().parent.is_dir():
        raise PromptkitError(f"-o {path}: folder does not exist")
    if target.exists() and not _is_profile(target):
        raise PromptkitError(f"-o {path} exists and is not a profile written by promptkit "
                             "profile; refusing to overwrite it (a dataset, a baseline, a "
                             "report?): give a new path")
    try:  # find out now, not after every request has been sent
        with tempfile.TemporaryFile(dir=target.resolve().parent):
            pass
    except OSError as exc:
        raise PromptkitError(f"-o {path}: cannot write in {target.resolve().parent}: "
                             f"{exc.strerror or exc}") from None


def _is_profile(path: Path) -> bool:
    """Whether ``path`` holds what :func:`write_profile` writes (so a rerun may replace it)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    suffix = path.suffix.lower()
    if suffix == ".json":
        return head.startswith('{\n  "format_version"')  # as _write_json begins
    if suffix == ".csv":
        return head.startswith(",".join(RUN_COLUMNS + LEVEL_COLUMNS))
    return "<title>promptkit profile</title>" in head


def write_profile(path: str, report: ProfileReport) -> None:
    """Write ``report`` to ``path`` in the format its suffix names.

    Raises:
        OutputError: the file cannot be written (exit 3).
    """
    suffix = Path(path).suffix.lower()
    writer = {".json": _write_json, ".csv": _write_csv, ".html": _write_html}[suffix]
    try:
        with atomic_write(path) as file:
            writer(file, report)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_json(file: IO[str], report: ProfileReport) -> None:
    json.dump(report.record(), file, indent=2, ensure_ascii=False, allow_nan=False)
    file.write("\n")


def _write_csv(file: IO[str], report: ProfileReport) -> None:
    writer = csv.writer(file)
    writer.writerow(RUN_COLUMNS + LEVEL_COLUMNS)
    for run in report.runs:
        record = run.record()
        head = [record[column] for column in RUN_COLUMNS]
        for level in record["levels"]:
            level = {**level, "errors": "; ".join(f"{error} ({count})" for error, count
                                                  in level["errors"].items())}
            writer.writerow([csv_cell("" if value is None else value) for value in
                             head + [level[column] for column in LEVEL_COLUMNS]])


def _write_html(file: IO[str], report: ProfileReport) -> None:
    slo = report.settings.slo
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.started_at))
    style, csp = _style()
    template = _environment().get_template("profile.html")
    for chunk in template.generate(
            csp=csp, style=Markup(style), started=started,
            slo=describe_slo(slo) if slo else None,
            tables=[run_table(run, slo) for run in report.runs],
            compared=side_by_side(report), workloads=profile_charts(report)):
        file.write(chunk)
