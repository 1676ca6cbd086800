"""Output files of a run: ``.json``, ``.jsonl``, ``.csv``, ``.xml`` (JUnit), ``.html``, ``.md``.

:func:`write_output` picks the format by suffix and writes atomically (a temporary file
renamed when complete), streaming results so a 100,000-case run never sits in memory.
The ``.html`` page is :mod:`.html`'s, the ``.md`` summary :mod:`.markdown`'s. Nothing here
reads the environment, so no output can carry an API key.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from ..errors import PromptkitError
from ..files import atomic_write
from ..results import RESULT_FORMAT, CaseResult, RunInfo
from .cases import assertion_turn, check_name, is_informational
from .summary import Summary
from .views import tool_call_line

if TYPE_CHECKING:
    from ..comparing.comparison import Comparison

OUTPUT_SUFFIXES = (".json", ".jsonl", ".csv", ".xml", ".html", ".md")

# Characters XML 1.0 cannot contain at all, even escaped (NUL, most C0 controls, ...).
_XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def output_format(path: str | Path) -> str:
    """The format ``write_output`` would use for ``path``: its lower-cased suffix.

    Raises:
        PromptkitError: The suffix is not a supported format.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise PromptkitError(f"{path}: unsupported output format '{suffix}' "
                             "(use .json, .jsonl, .csv, .xml, .html or .md)")
    return suffix


def is_baseline_file(path: Path) -> bool:
    """Whether ``path`` holds a promptkit baseline (its first bytes say so)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(200)
    except OSError:
        return False
    return b'"promptkit_baseline"' in head


def refuse_overwrite(output: str | Path, protected: Iterable[str | Path | None] = (), *,
                     keep_baselines: bool = True) -> None:
    """Refuse an output path that would destroy something: one of ``protected`` (an eval's
    spec, dataset, pools, lock, a baseline being compared), or, with ``keep_baselines``, an
    existing baseline file.

    Raises:
        PromptkitError: naming the file (invalid input, exit 2).
    """
    target = Path(output).resolve()
    for path in protected:
        if path is not None and target == Path(path).resolve():
            raise PromptkitError(f"--output {output} would overwrite an input ({path}); "
                                 "write it elsewhere")
    if keep_baselines and target.is_file() and is_baseline_file(target):
        raise PromptkitError(f"--output {output} would overwrite a baseline file; write it "
                             "elsewhere (refresh a baseline with `promptkit baseline save`)")


def write_output(path: str | Path, summary: Summary, results: Iterable[CaseResult],
                 run: RunInfo | None = None, comparison: Comparison | None = None) -> None:
    """Write a report file, its format chosen by the suffix of ``path``.

    ``.json``: one document with the run, the summary (its rows; with categories, the
    ``categories`` breakdown of each row; with prices by the hour, each provider's busy
    time and cost under ``hourly``; with replicas, the answers each served under
    ``replicas``: provider id → URL without userinfo → count) and every result.
    ``.jsonl``: one result per line, each with ``run_id`` (results are
    ``CaseResult.to_dict()``: the prompt as sent, the examples chosen, the answer, votes,
    reasoning, tool calls, finish reason, a conversation's messages and every assertion's
    outcome included). ``.csv``: one row per result, its case's ``category``, metrics as
    ``metric:<name>`` columns, why it failed as ``failed_checks`` (:func:`failed_checks`), the
    ``finish_reason``, the ``tool_calls`` as one JSON column and the case's variables as
    one JSON ``vars`` column. ``.xml``: JUnit, one ``<testsuite>`` per prompt × provider
    (consecutive results of one pair, as ``RunStore.results`` yields them), a failure's
    message its :func:`failed_checks`, its output (and tool calls) its ``system-out``.
    ``.html``: one static page
    with the leaderboard, charts, the comparison with a baseline (when given) and every
    case (:mod:`.html`). ``.md``: the leaderboard and the comparison as GitHub-flavoured
    Markdown, for ``$GITHUB_STEP_SUMMARY`` (:mod:`.markdown`; it reads no results).
    A result of a provider priced by the hour carries its share of that cost as ``cost``.
    Results are streamed; the file is written beside ``path`` under a temporary name and
    renamed when complete.

    Args:
        path: Where to write.
        summary: The summary of the same results.
        results: The results, read once.
        run: The run they belong to, if known.
        comparison: A comparison with a baseline, shown in the ``.html`` page and the
            ``.md`` summary, and added to ``.json`` output.

    Raises:
        PromptkitError: An unsupported suffix, or the file cannot be written.
    """
    path = Path(path)
    suffix = output_format(path)
    if suffix == ".html":
        from .html import write_html

        def writer(file: IO[str], summary: Summary, results: Iterable[CaseResult],
                   run: RunInfo | None) -> None:
            write_html(file, summary, results, run, comparison=comparison)
    elif suffix == ".md":
        def writer(file: IO[str], summary: Summary, results: Iterable[CaseResult],
                   run: RunInfo | None) -> None:
            _write_markdown(file, summary, run, comparison)
    elif suffix == ".json":
        def writer(file: IO[str], summary: Summary, results: Iterable[CaseResult],
                   run: RunInfo | None) -> None:
            _write_json(file, summary, results, run, comparison)
    else:
        writer = {".jsonl": _write_jsonl, ".csv": _write_csv, ".xml": _write_junit}[suffix]
    with atomic_write(path) as file:
        writer(file, summary, _billed(summary, results) if summary.hourly else results, run)


def _billed(summary: Summary, results: Iterable[CaseResult]) -> Iterator[CaseResult]:
    """``results``, each of a provider priced by the hour with its share of that cost
    (:meth:`~.summary.HourlyCost.share`) as its ``cost``, as the leaderboard counts it."""
    for result in results:
        spent = summary.hourly.get(result.provider_id)
        if spent is not None and result.cost is None:
            result.cost = spent.share(result)
        yield result


def _json(value: Any) -> str:
    # default=str: a dataset value JSON cannot hold (a date from YAML) still gets written.
    return json.dumps(value, ensure_ascii=False, default=str)


def _write_json(file: IO[str], summary: Summary, results: Iterable[CaseResult],
                run: RunInfo | None, comparison: Comparison | None = None) -> None:
    head = {
        "format": RESULT_FORMAT,
        "run": asdict(run) if run is not None else None,
        "summary": {
            "rows": [{**{f.name: getattr(row, f.name) for f in fields(row)
                         if f.name not in ("case_fractions", "categories")},
                      "label": row.label} for row in summary.rows],
            "categories": [asdict(category) for category in summary.categories],
            "best": summary.best.label if summary.best else None,
            "winners": [row.label for row in summary.winners],
            "tied": [row.label for row in summary.rows if row.tied],
            "total_results": summary.total_results,
            "total_errors": summary.total_errors,
            "total_cost": summary.total_cost,
            "hourly": [{**asdict(spent), "cost": spent.cost}
                       for spent in summary.hourly.values()],
            "replicas": summary.replicas,
            "all_thresholds_met": summary.all_thresholds_met(),
        },
    }
    if comparison is not None:
        head["comparison"] = {**asdict(comparison), "regressed": comparison.regressed}
    file.write(_json(head)[:-1] + ', "results": [')  # reopen the object for the array
    separator = "\n"
    for result in results:
        file.write(separator + _json(result.to_dict()))
        separator = ",\n"
    file.write("\n]}\n")


def _write_markdown(file: IO[str], summary: Summary, run: RunInfo | None,
                    comparison: Comparison | None) -> None:
    from .markdown import markdown_summary

    description = run.config.get("description") if run is not None else None
    title = str(description) if description else "promptkit report"
    if run is not None:
        title += f" — run {run.run_id}"
    file.write(markdown_summary(summary, comparison, title))


def _write_jsonl(file: IO[str], summary: Summary, results: Iterable[CaseResult],
                 run: RunInfo | None) -> None:
    run_id = run.run_id if run is not None else None
    for result in results:
        file.write(_json({"run_id": run_id, **result.to_dict()}) + "\n")


def failed_checks(result: CaseResult) -> str:
    """Why a result failed: each failed assertion's name (its ``metric``, else its
    ``type``) and reason, ``; ``-separated: ``rouge: rouge-l 0.21 < 0.4; length: words 52 >
    40``. An assertion that could not be evaluated gives ``name: error: message``; one of a
    conversation's later turn says which (``turn 2: equals: ...``), and a conversation cut
    short gives ``max-turns: max_turns (8) reached ...``. One of weight 0 is informational
    (it never fails a case), so it is left out. ``""`` when no assertion failed."""
    reasons = []
    for assertion in result.assertions:
        if (assertion.get("passed") and assertion.get("error") is None) \
                or is_informational(assertion):
            continue
        reason, error = assertion.get("reason") or "", assertion.get("error")
        if error is not None:
            reason = f"{reason} (error: {error})" if reason else f"error: {error}"
        turn = assertion_turn(assertion)
        reasons.append(("" if turn is None else f"turn {turn}: ")
                       + f"{check_name(assertion)}: {reason or 'failed'}")
    return "; ".join(reasons)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run: text starting with ``=``, ``+``, ``-``, ``@``,
    tab or carriage return gets a leading ``'`` (OWASP's CSV injection advice), except a
    plain number such as ``-1.5``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) \
            and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _write_csv(file: IO[str], summary: Summary, results: Iterable[CaseResult],
               run: RunInfo | None) -> None:
    metrics = summary.metric_names()  # known up front, so the header needs no second pass
    writer = csv.writer(file)
    writer.writerow([csv_cell(cell) for cell in [
        "run_id", "prompt_id", "provider_id", "case_id", "case_index", "repeat", "category",
        "passed", "score", *(f"metric:{m}" for m in metrics), "error_kind", "error",
        "failed_checks", "latency_s", "ttft_s", "input_tokens", "output_tokens", "cost",
        "cached", "requests", "output", "finish_reason", "tool_calls", "vars"]])
    run_id = run.run_id if run is not None else ""
    for r in results:
        writer.writerow([csv_cell(cell) for cell in [
            run_id, r.prompt_id, r.provider_id, r.case_id, r.case_index, r.repeat, r.category,
            "true" if r.passed and r.error is None else "false", r.score,
            *(r.metrics.get(m, "") for m in metrics),
            r.error_kind, r.error, failed_checks(r), r.latency_s, r.ttft_s, r.input_tokens,
            r.output_tokens, r.cost, "true" if r.cached else "false", r.requests, r.output,
            r.finish_reason, "" if r.tool_calls is None else _json(r.tool_calls),
            _json(r.vars),
        ]])


def _xml_text(value: Any) -> str:
    return _XML_FORBIDDEN.sub("\ufffd", str(value))


def _testcase(result: CaseResult) -> ET.Element:
    case = ET.Element("testcase", {
        "name": _xml_text(f"{result.case_id}#{result.repeat}"),
        "classname": _xml_text(f"{result.prompt_id}.{result.provider_id}"),
        "time": f"{result.latency_s or 0.0:.3f}",
    })
    if result.error is not None:
        error = ET.SubElement(case, "error", {"message": _xml_text(result.error),
                                              "type": _xml_text(result.error_kind or "error")})
        error.text = _xml_text(result.error)
    elif not result.passed:
        message = _xml_text(failed_checks(result) or "failed")
        failure = ET.SubElement(case, "failure", {"message": message, "type": "assertion"})
        failure.text = message
    if result.error is not None or not result.passed:
        # The answer as the case table shows it: its text, then each tool call on a line.
        said = "\n".join([*([result.output] if result.output else []),
                          *(tool_call_line(call, None) for call in result.tool_calls or [])])
        if said:
            ET.SubElement(case, "system-out").text = _xml_text(said)
    return case


def _write_suite(file: IO[str], name: str, cases: list[ET.Element]) -> None:
    errors = sum(case.find("error") is not None for case in cases)
    failures = sum(case.find("failure") is not None for case in cases)
    seconds = sum(float(case.get("time", 0)) for case in cases)
    suite = ET.Element("testsuite", {"name": _xml_text(name), "tests": str(len(cases)),
                                     "failures": str(failures), "errors": str(errors),
                                     "skipped": "0", "time": f"{seconds:.3f}"})
    suite.extend(cases)
    ET.indent(suite, level=1)
    file.write("  " + ET.tostring(suite, encoding="unicode") + "\n")


def _write_junit(file: IO[str], summary: Summary, results: Iterable[CaseResult],
                 run: RunInfo | None) -> None:
    failures = sum(row.cases - row.passed - row.errors for row in summary.rows)
    name = f"promptkit run {run.run_id}" if run is not None else "promptkit"
    file.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    file.write(f"<testsuites name={quoteattr(_xml_text(name))} "
               f'tests="{summary.total_results}" failures="{failures}" '
               f'errors="{summary.total_errors}">\n')
    # One suite in memory at a time: it is written when the next pair starts.
    current: tuple[str, str] | None = None
    cases: list[ET.Element] = []
    for result in results:
        key = (result.prompt_id, result.provider_id)
        if key != current and current is not None:
            _write_suite(file, ".".join(current), cases)
            cases = []
        current = key
        cases.append(_testcase(result))
    if current is not None:
        _write_suite(file, ".".join(current), cases)
    file.write("</testsuites>\n")
