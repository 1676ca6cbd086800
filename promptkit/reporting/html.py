"""The ``.html`` report: one static page, safe to open from a CI artifact.

:func:`write_html` writes the leaderboard, three charts (inline SVG drawn here, so they
need no script), the comparison with a baseline when there is one (flipped cases side by
side with a word diff) and a filterable table of every case. The page loads nothing: a
Content-Security-Policy allows only its own inline style and script, by hash, and every
piece of model output or case data is escaped, so an answer containing ``<script>`` is
shown as text. The script is a constant (its hash never changes): it only filters rows
already on the page, and without it everything is still shown.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import IO, TYPE_CHECKING

from ..results import CaseResult, RunInfo
from .summary import Row, Summary, _cost, _seconds, leader_lines, mark

if TYPE_CHECKING:
    from ..comparing.comparison import Comparison, Flip, RowComparison

MAX_CASE_ROWS = 5000  # a bigger table makes the page slow; the .jsonl output has them all
MAX_FLIPS = 200  # flipped cases shown with their outputs, regressions first
DIFF_CHARS = 20_000  # the word diff is quadratic in the worst case: diff a prefix only
PREVIEW_CHARS = 160
PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2",
           "#65a30d")

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC",
"Microsoft YaHei",sans-serif;margin:0 auto;max-width:1280px;padding:16px 24px;color:#1f2937}
h1{font-size:22px;margin:8px 0}.meta{color:#6b7280}figure{margin:0}summary{cursor:pointer}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
table{border-collapse:collapse;width:100%;margin:0 0 12px}td.l,th.l{text-align:left}
th,td{padding:4px 8px;border-bottom:1px solid #eef0f3;text-align:right;vertical-align:top;
white-space:nowrap}th{background:#f3f4f6;position:sticky;top:0;font-weight:600;z-index:1;
white-space:normal;overflow-wrap:break-word}tr.best td{background:#ecfdf5;font-weight:600}
td.l{white-space:normal;overflow-wrap:anywhere;min-width:8em;max-width:320px}
tr.below td{color:#b91c1c}.tag{font-size:11px;border:1px solid;border-radius:3px;padding:0 3px}
.pass,.better{color:#047857;font-weight:600}.fail,.worse{color:#b91c1c;font-weight:600}
.error,.warn{color:#92400e}.verdict{font-size:16px;font-weight:600;margin:8px 0}
.charts{display:flex;flex-wrap:wrap;gap:16px}figcaption{color:#4b5563;font-size:13px}
.nodata{width:560px;padding:40px 0;text-align:center;border:1px dashed #d1d5db}
svg.chart{background:#fcfcfd;border:1px solid #e5e7eb;max-width:100%;height:auto}
svg.chart text{font-size:11px;fill:#374151}.flip{border:1px solid #e5e7eb;margin:10px 0;padding:8px}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:12px}
pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;font:12px/1.4 ui-monospace,monospace;
background:#f9fafb;padding:6px;max-height:24em;overflow:auto}
del{background:#fee2e2;color:#991b1b}ins{background:#dcfce7;color:#166534;text-decoration:none}
.filters{margin:8px 0;display:flex;gap:12px;flex-wrap:wrap;align-items:center}
td.out{text-align:left;white-space:normal;max-width:520px;word-break:break-word}
""".strip()

SCRIPT = """
(function () {
  var search = document.getElementById("search");
  var rows = document.querySelectorAll("#cases tbody tr");
  var selects = ["prompt", "provider", "status"].map(function (name) {
    return document.getElementById("f-" + name);
  });
  function matches(row) {
    var text = search.value.toLowerCase(), status = selects[2].value;
    var searched = row.querySelector(".case").textContent + "\\n" +
      row.querySelector(".out").textContent;
    return (!selects[0].value || row.dataset.prompt === selects[0].value) &&
      (!selects[1].value || row.dataset.provider === selects[1].value) &&
      (!status || row.dataset.status === status ||
        (status === "flipped" && row.dataset.flip === "1")) &&
      (!text || searched.toLowerCase().indexOf(text) >= 0);
  }
  function apply() {
    var shown = 0;
    rows.forEach(function (row) { row.hidden = !matches(row); shown += row.hidden ? 0 : 1; });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " shown";
  }
  [search].concat(selects).forEach(function (el) { el.addEventListener("input", apply); });
  document.getElementById("filters").hidden = false;
  apply();
  document.body.dataset.ready = "1";
})();
""".strip()


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CSP = (f"default-src 'none'; style-src 'sha256-{_sha256(STYLE)}'; "
       f"script-src 'sha256-{_sha256(SCRIPT)}'; img-src data:; base-uri 'none'; "
       "form-action 'none'")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _table(heads: Sequence[str], rows: Iterable[tuple[str, Sequence[str]]], left: int = 1
           ) -> str:
    """A table of ``(row class, cells)``; headers and cells are HTML already. The first
    ``left`` columns are text, aligned left; the rest are numbers."""
    aligned = [' class="l"' if i < left else "" for i in range(len(heads))]
    out = ["<table><thead><tr>", *(f"<th{a}>{h}</th>" for a, h in zip(aligned, heads, strict=True)),
           "</tr></thead><tbody>\n"]
    for row_cls, cells in rows:
        out.append(f'<tr class="{row_cls}">' + "".join(
            f"<td{a}>{cell}</td>" for a, cell in zip(aligned, cells, strict=True)) + "</tr>\n")
    out.append("</tbody></table>\n")
    return "".join(out)


def write_html(file: IO[str], summary: Summary, results: Iterable[CaseResult],
               run: RunInfo | None = None, comparison: Comparison | None = None,
               title: str | None = None) -> None:
    """Write the report page to an open text file.

    Results are written as they are read; only the summary and the comparison are held.
    The file should be UTF-8 (``outputs.write_output`` opens it with
    ``errors="backslashreplace"``, so a lone surrogate in an output cannot fail the write).

    Args:
        file: Where to write.
        summary: The leaderboard of the same results.
        results: The results, read once, in store order; the first ``MAX_CASE_ROWS`` are
            shown, the page says how many more there were.
        run: The run, for its id, status and start time.
        comparison: A comparison with a baseline, shown with its flipped cases.
        title: The page title (default: the spec's description, else "promptkit report").
    """
    description = run.config.get("description") if run is not None else None
    title = title or (str(description) if description else None) or "promptkit report"
    write = file.write
    write('<!DOCTYPE html>\n<html lang="en">\n<head>\n'
          f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
          '<meta charset="utf-8">\n<meta name="viewport" content="width=device-width">\n'
          '<meta name="referrer" content="no-referrer">\n'
          f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
          f"<h1>{_e(title)}</h1>\n{_header(summary, run)}\n")
    write("<h2>Leaderboard</h2>\n" + _leaderboard(summary))
    if summary.rows:
        write("<h2>Charts</h2>\n" + _charts(summary.rows))
    if comparison is not None:
        write(_comparison(comparison))
    _cases(write, summary, results, comparison)
    write(f"<script>{SCRIPT}</script>\n</body>\n</html>\n")


def _header(summary: Summary, run: RunInfo | None) -> str:
    parts = []
    if run is not None:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run.started_at))
        parts.append(f"run {_e(run.run_id)} ({_e(run.status)}), started {started}")
    cost = _cost(summary.total_cost) if summary.total_cost is not None else "unknown"
    parts.append(f"{summary.total_results:,} results, {summary.total_errors:,} errors, "
                 f"cost {cost}")
    parts += [_e(line) for line in leader_lines(summary)]
    return f'<p class="meta">{" · ".join(parts)}</p>'


def _leaderboard(summary: Summary) -> str:
    if not summary.rows:
        return '<p class="meta">no results</p>\n'
    metrics = summary.metric_names()
    flaky = any(row.repeats > 1 for row in summary.rows)
    heads = ["prompt", "provider", "pass rate (95% CI)", *(["flaky cases"] if flaky else []),
             "score",
             *(f'<span title="{_e(m)}">{_e(_short(m))}</span>' for m in metrics), "errors",
             "latency p50/p95", "TTFT", "tok/s", "tokens in/out", "cost"]
    rows = []
    for row in summary.rows:
        below = row.meets_threshold is False
        cells = [
            _e(mark(row) + row.prompt_id), _e(row.provider_id),
            f"{row.pass_rate:.1%} ({row.ci_low * 100:.0f}–{row.ci_high * 100:.0f})"
            + (' <span class="tag">below threshold</span>' if below else ""),
            *([f"{row.flaky_cases:,}"] if flaky else []),
            f"{row.score:.3f}",
            *(f"{row.metrics[m]:.3f}" if m in row.metrics else "—" for m in metrics),
            f"{row.errors:,}", f"{_seconds(row.latency_p50)}/{_seconds(row.latency_p95)}",
            _seconds(row.ttft_p50),
            "—" if row.tokens_per_s is None else f"{row.tokens_per_s:.1f}",
            f"{row.input_tokens:,}/{row.output_tokens:,}", _cost(row.cost),
        ]
        rows.append(("best" if row.best else ("below" if below else ""), cells))
    out = [_table(heads, rows, left=2)]
    threshold = summary.rows[0].threshold
    if threshold is not None:
        failed = [r.label for r in summary.rows if r.meets_threshold is False]
        note = ("NOT met by " + ", ".join(failed)) if failed else "met by every row"
        out.append(f'<p class="meta">threshold {threshold:.0%}: {_e(note)}</p>\n')
    return "".join(out)


# -- charts ----------------------------------------------------------------------------

W, H, LEFT, RIGHT, TOP, BOTTOM = 560, 320, 56, 28, 16, 44
LABEL_CHARS = 32


def _ticks(high: float) -> list[float]:
    """Round ticks from 0 to at least ``high``: at most six."""
    if high <= 0:
        return [0.0, 1.0]
    step = 10 ** math.floor(math.log10(high / 5))
    for factor in (1, 2, 2.5, 5, 10):
        if high / (step * factor) <= 5:
            step *= factor
            break
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def _axis_label(value: float, unit: str) -> str:
    return {"$": f"${value:.3g}", "s": f"{value:.3g}s"}.get(unit, f"{value:.0%}")


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "…"


def _svg_open(width: int, height: int, title: str) -> str:
    return (f'<svg class="chart" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
            f"<title>{_e(title)}</title>")


def _scatter(rows: Sequence[Row], x_of: Callable[[Row], float | None], unit: str,
             caption: str, colours: dict[str, str]) -> str:
    """Pass rate (y) against latency or cost (x), one labelled point per row."""
    points = [(row, x) for row in rows if (x := x_of(row)) is not None]
    what = "cost data (no price configured)" if unit == "$" else "measured latency"
    if not points:
        return (f'<figure><div class="nodata meta">no {what}</div>'
                f"<figcaption>{_e(caption)}</figcaption></figure>\n")
    if len(points) < len(rows):
        caption += f" ({len(rows) - len(points)} row(s) without {what} left out)"
    ticks = _ticks(max(x for _, x in points) * 1.1)
    x_max = ticks[-1] or 1.0
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + plot_w * x / x_max

    def py(y: float) -> float:
        return TOP + plot_h * (1 - y)

    out = [f"<figure>{_svg_open(W, H, caption)}"]
    for y in (0, 0.25, 0.5, 0.75, 1):
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                   f'stroke="#e5e7eb"/><text x="{LEFT - 6}" y="{py(y) + 4:.1f}" '
                   f'text-anchor="end">{y:.0%}</text>')
    for x in ticks:
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{TOP}" y2="{H - BOTTOM}" '
                   f'stroke="#f1f5f9"/><text x="{px(x):.1f}" y="{H - BOTTOM + 16}" '
                   f'text-anchor="middle">{_axis_label(x, unit)}</text>')
    x_name = "cost (USD)" if unit == "$" else "latency p50"
    out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{H - 6}" text-anchor="middle">'
               f'{x_name}</text><text x="14" y="{TOP + plot_h / 2:.0f}" '
               f'text-anchor="middle" transform="rotate(-90 14 {TOP + plot_h / 2:.0f})">'
               "pass rate</text>")
    top_cost = max((r.cost for r in rows if r.cost), default=0.0)
    placed: list[tuple[float, float, float]] = []
    for row, x in points:
        # On the latency chart the area of a point is proportional to the row's cost.
        sized = unit != "$" and row.cost is not None and top_cost > 0
        radius = 4 + 10 * math.sqrt(row.cost / top_cost) if sized else 6.0
        cx, cy = px(x), py(row.pass_rate)
        label = _short(row.label)
        width = sum(11.0 if ord(ch) >= 0x2E80 else 6.2 for ch in label)  # CJK is wider
        start = cx + radius + 3 + width <= W - 4
        x1 = cx + radius + 3 if start else cx - radius - 3 - width
        y = _free_y(placed, x1, x1 + width, cy + 4)
        out.append(f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="{radius:.1f}" '
                   f'fill="{colours[row.prompt_id]}" fill-opacity="0.75">'
                   f"<title>{_e(row.label)}: {row.pass_rate:.1%}, "
                   f"{_axis_label(x, unit)}</title></circle>"
                   f'<text class="label" x="{x1 if start else x1 + width:.1f}" '
                   f'y="{y:.1f}" text-anchor="{"start" if start else "end"}">{_e(label)}</text>')
    out.append(f"</svg><figcaption>{_e(caption)}</figcaption></figure>\n")
    return "".join(out)


def _free_y(placed: list[tuple[float, float, float]], x1: float, x2: float, y: float) -> float:
    """A baseline near ``y`` for a label spanning ``x1``–``x2`` that overlaps no other."""
    candidate = y
    for step in range(16):  # y, y+12, y-12, y+24, ...
        candidate = y + (step + 1) // 2 * 12 * (1 if step % 2 else -1)
        if TOP + 10 <= candidate <= H - BOTTOM - 2 and all(
                x2 < a or x1 > b or abs(candidate - c) >= 12 for a, b, c in placed):
            break
    placed.append((x1, x2, candidate))
    return candidate


def _bars(rows: Sequence[Row], colours: dict[str, str]) -> str:
    """A horizontal bar of pass rate per row, with its 95% interval as a whisker."""
    label_w, plot_w, bar_h, gap = 230, 560, 18, 8
    width, height = label_w + plot_w + 64, TOP + len(rows) * (bar_h + gap) + 30
    caption = "Pass rate per prompt × provider, with its 95% interval"
    out = [f"<figure>{_svg_open(width, height, caption)}"]
    axis_y = TOP + len(rows) * (bar_h + gap)
    for x in (0, 0.25, 0.5, 0.75, 1):
        out.append(f'<line x1="{label_w + plot_w * x:.1f}" x2="{label_w + plot_w * x:.1f}" '
                   f'y1="{TOP - 4}" y2="{axis_y}" stroke="#e5e7eb"/>'
                   f'<text x="{label_w + plot_w * x:.1f}" y="{axis_y + 14}" '
                   f'text-anchor="middle">{x:.0%}</text>')
    for i, row in enumerate(rows):
        y = TOP + i * (bar_h + gap)
        mid = y + bar_h / 2
        low, high = label_w + plot_w * row.ci_low, label_w + plot_w * row.ci_high
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">'
                   f"{_e(_short(row.label))}<title>{_e(row.label)}</title></text>"
                   f'<rect class="bar" x="{label_w}" y="{y}" '
                   f'width="{plot_w * row.pass_rate:.1f}" height="{bar_h}" '
                   f'fill="{colours[row.prompt_id]}" fill-opacity="0.7"/>'
                   f'<path d="M{low:.1f} {mid - 5}v10M{low:.1f} {mid}H{high:.1f}M{high:.1f} '
                   f'{mid - 5}v10" stroke="#111827" stroke-width="1.5" fill="none"/>'
                   f'<text x="{max(label_w + plot_w * row.pass_rate, high) + 5:.1f}" '
                   f'y="{y + 13}">{row.pass_rate:.1%}</text>')
    out.append(f"</svg><figcaption>{caption}</figcaption></figure>\n")
    return "".join(out)


def _charts(rows: Sequence[Row]) -> str:
    prompts = list(dict.fromkeys(row.prompt_id for row in rows))
    colours = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(prompts)}
    return ('<div class="charts">\n'
            + _scatter(rows, lambda r: r.latency_p50, "s",
                       "Quality vs latency (colour: prompt; area: cost)", colours)
            + _scatter(rows, lambda r: r.cost, "$", "Quality vs cost (colour: prompt)",
                       colours)
            + _bars(rows, colours) + "</div>\n")


# -- comparison ------------------------------------------------------------------------


def _word_diff(before: str, after: str) -> str:
    """The two texts word by word: removed words in ``<del>``, added in ``<ins>``."""
    a = re.findall(r"\S+|\s+", before[:DIFF_CHARS])
    b = re.findall(r"\S+|\s+", after[:DIFF_CHARS])
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(_e("".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{_e(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{_e(''.join(b[j1:j2]))}</ins>")
    if max(len(before), len(after)) > DIFF_CHARS:
        out.append(f"\n… (the diff covers the first {DIFF_CHARS:,} characters)")
    return "".join(out)


def _flip(flip: Flip, row: RowComparison) -> str:
    before = flip.before.error or flip.before.output or ""
    after = flip.after.error or flip.after.output or ""
    arrow = ('<span class="fail">pass → FAIL</span>' if flip.regressed
             else '<span class="pass">fail → pass</span>')
    if flip.before.samples > 1 or flip.after.samples > 1:
        arrow += (f" {flip.before.pass_rate:.0%} → {flip.after.pass_rate:.0%} of samples")
    if flip.flaky:
        arrow += ' <span class="meta">(flaky: its repeats disagree)</span>'

    return (f'<div class="flip">{arrow} <b>{_e(flip.case_id)}</b> '
            f'<span class="meta">({_e(row.label)}; score {flip.before.score:.3f} → '
            f"{flip.after.score:.3f})</span>"
            f'<div class="sides"><div>baseline<pre>{_e(before)}</pre></div>'
            f"<div>now<pre>{_e(after)}</pre></div></div>"
            f"<div>word diff<pre>{_word_diff(before, after)}</pre></div></div>\n")


def _comparison(comparison: Comparison) -> str:
    from ..comparing.comparison import PASS_RATE, detection_lines, verdict_line

    verdict_cls = "worse" if comparison.regressed or comparison.dropped else ""
    out = [f"<h2>Compared with {_e(comparison.before_label)}</h2>\n"
           f'<p class="meta">candidate: {_e(comparison.after_label)}</p>\n'
           f'<p class="verdict {verdict_cls}">{_e(verdict_line(comparison))}</p>\n']
    rows = []
    for row in comparison.rows:
        change = next((m.change for m in row.metrics if m.name == PASS_RATE), None)
        delta = "—" if change is None else (
            f"{change.mean * 100:+.1f}pp ({change.low * 100:+.1f} to {change.high * 100:+.1f})")
        rate = f"{row.before_rate:.1%} → {row.after_rate:.1%}" if row.cases else "—"
        cls = {"worse": "worse", "better": "better"}.get(row.verdict, "")
        if row.max_drop_exceeded:
            cls = "worse"
        text = row.verdict + ("" if row.gated else " (not gated)")
        if row.max_drop_exceeded:
            text += f"; fell > {comparison.max_drop:g}pp"
        verdict = f'<span class="{cls}">{_e(text)}</span>'
        sees = "—" if row.min_detectable_drop is None else f"{row.min_detectable_drop:.0f}pp"
        rows.append(("", [_e(row.label), f"{row.cases:,}", rate, delta,
                          f"{len(row.regressed)}/{len(row.fixed)}", f"{row.p_adjusted:.3g}",
                          sees, verdict]))
    out.append(_table(["prompt × provider", "cases", "pass before → now",
                       "Δ pass rate (95% CI)", "flips −/+", "p worse (Holm)", "sees drops ≥",
                       "verdict"], rows))
    out += [f'<p class="meta">{_e(line)}</p>\n' for line in detection_lines(comparison)]
    metric_rows = [("", [_e(row.label), _e(m.name), f"{m.before:.3f}", f"{m.after:.3f}",
                         f"{m.change.mean:+.3f} ({m.change.low:+.3f} to {m.change.high:+.3f})"
                         + (" *" if m.change.excludes_zero else "")])
                   for row in comparison.rows for m in row.metrics if m.name != PASS_RATE]
    if metric_rows:
        out.append(_table(["prompt × provider", "metric", "before", "now", "Δ mean (95% CI)"],
                          metric_rows, left=2))
        out.append('<p class="meta">* the interval excludes 0 (paired '
                   f"bootstrap, seed {comparison.seed}); shown for reading, the verdict is "
                   "the pass/fail test.</p>\n")
    notes = [*(f"note: {n}" for n in comparison.warnings),
             *(f"{row.label}: {w}" for row in comparison.rows for w in row.warnings),
             *(f"{label} is only in the baseline; not compared"
               for label in comparison.only_before),
             *(f"{label} has no baseline; not compared" for label in comparison.only_after)]
    if notes:
        out.append('<ul class="warn">' + "".join(f"<li>{_e(n)}</li>" for n in notes)
                   + "</ul>\n")
    flips = [(f, row) for row in comparison.rows for f in row.regressed]
    flips += [(f, row) for row in comparison.rows for f in row.fixed]
    if flips:
        out.append(f"<h2>Flipped cases ({len(flips):,})</h2>\n")
        out += [_flip(flip, row) for flip, row in flips[:MAX_FLIPS]]
        if len(flips) > MAX_FLIPS:
            out.append(f'<p class="meta">… and {len(flips) - MAX_FLIPS:,} more (marked ⇄ '
                       "in the case table).</p>\n")
    return "".join(out)


# -- cases -----------------------------------------------------------------------------


def _text_cell(text: str) -> str:
    if len(text) <= PREVIEW_CHARS and "\n" not in text:
        return _e(text)
    preview = " ".join(text.split())[:PREVIEW_CHARS]
    return f"<details><summary>{_e(preview)}…</summary><pre>{_e(text)}</pre></details>"


def _options(element_id: str, label: str, values: Iterable[str]) -> str:
    options = "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
    return (f'<label>{label} <select id="{element_id}"><option value="">all</option>'
            f"{options}</select></label>")


def _cases(write: Callable[[str], object], summary: Summary, results: Iterable[CaseResult],
           comparison: Comparison | None) -> None:
    """The case table, one row per result as it is read, with its filters above it."""
    flipped: set[tuple[str, str, str]] = set()
    if comparison is not None:
        flipped = {(row.prompt_id, row.provider_id, f.case_id) for row in comparison.rows
                   for f in (*row.regressed, *row.fixed)}
    statuses = ["pass", "fail", "error"] + (["flipped"] if comparison is not None else [])
    # The filters are hidden until the script shows them: without it they would do nothing.
    write('<h2>Cases</h2>\n<div id="filters" class="filters" hidden>'
          '<label>search <input id="search" type="search" placeholder="case id or output">'
          "</label>"
          + _options("f-prompt", "prompt", dict.fromkeys(r.prompt_id for r in summary.rows))
          + _options("f-provider", "provider",
                     dict.fromkeys(r.provider_id for r in summary.rows))
          + _options("f-status", "status", statuses)
          + '<span id="shown" class="meta"></span></div>\n'
          '<table id="cases"><thead><tr><th class="l">prompt</th><th class="l">provider</th>'
          '<th class="l">case</th><th>repeat</th><th>result</th><th>score</th>'
          '<th>latency</th><th class="l">output</th><th class="l">vars</th></tr></thead>'
          "<tbody>\n")
    shown = left_out = 0
    for r in results:
        if shown >= MAX_CASE_ROWS:
            left_out += 1
            continue
        shown += 1
        status = "error" if r.error is not None else ("pass" if r.passed else "fail")
        flip = (r.prompt_id, r.provider_id, r.case_id) in flipped
        output = r.output if r.error is None else f"{r.error_kind or 'error'}: {r.error}"
        variables = json.dumps(r.vars, ensure_ascii=False, indent=1, default=str)
        latency = "cached" if r.cached else _seconds(r.latency_s)
        write(f'<tr data-prompt="{_e(r.prompt_id)}" data-provider="{_e(r.provider_id)}" '
              f'data-status="{status}" data-flip="{int(flip)}">'
              f'<td class="l">{_e(r.prompt_id)}</td><td class="l">{_e(r.provider_id)}</td>'
              f'<td class="l case">{_e(r.case_id)}</td><td>{r.repeat}</td>'
              f'<td class="{status}">{status}{" ⇄ flipped" if flip else ""}</td>'
              f"<td>{r.score:.3f}</td><td>{latency}</td>"
              f'<td class="out">{_text_cell(output or "")}</td>'
              f'<td class="l"><details><summary>vars</summary><pre>{_e(variables)}</pre>'
              "</details></td></tr>\n")
    write("</tbody></table>\n")
    if not shown:
        write('<p class="meta">no results</p>\n')
    if left_out:
        write(f'<p class="meta">{left_out:,} more results are not shown (the table stops at '
              f"{MAX_CASE_ROWS:,}); write a .jsonl output for all of them.</p>\n")
