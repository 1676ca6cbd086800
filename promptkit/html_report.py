"""The ``.html`` report: one static page, safe to open from a CI artifact.

:func:`write_html` writes the leaderboard, charts (inline SVG drawn here, so they need no
script), the comparison with a baseline when there is one (flipped cases side by side
with a word diff) and a filterable table of every case. The page loads nothing: a
Content-Security-Policy allows only its own inline style and script, by hash, and every
piece of model output or case data is escaped, so an answer containing ``<script>`` is
shown as text. The script only filters rows already on the page.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import math
import re
import time
from collections.abc import Iterable, Sequence
from html import escape
from typing import IO, TYPE_CHECKING

from .report import BEST_MARK, Row, Summary, _cost, _seconds
from .results import CaseResult, RunInfo

if TYPE_CHECKING:
    from .comparison import Comparison, Flip, RowComparison

MAX_CASE_ROWS = 5000  # a bigger table makes the page slow; the .jsonl output has them all
PREVIEW_CHARS = 160
PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2",
           "#65a30d")

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK SC",
sans-serif;margin:0 auto;max-width:1280px;padding:16px 24px;color:#1f2937;background:#fff}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid
#e5e7eb;padding-bottom:4px}.meta{color:#6b7280}table{border-collapse:collapse;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eef0f3;text-align:right;vertical-align:top}
th{background:#f9fafb;position:sticky;top:0;font-weight:600}td.l,th.l{text-align:left}
tr.best td{background:#ecfdf5;font-weight:600}tr.below td{color:#b91c1c}
.pass{color:#047857;font-weight:600}.fail{color:#b91c1c;font-weight:600}
.error{color:#92400e;font-weight:600}.worse{color:#b91c1c;font-weight:700}
.better{color:#047857;font-weight:700}.verdict{font-size:16px;margin:8px 0}
.warn{color:#92400e}figure{display:inline-block;margin:0 16px 16px 0;vertical-align:top}
figcaption{color:#4b5563;font-size:13px}svg.chart{background:#fcfcfd;border:1px solid
#e5e7eb}svg.chart text{font-size:11px;fill:#374151}.flip{border:1px solid #e5e7eb;
margin:10px 0;padding:8px}.sides{display:grid;grid-template-columns:1fr 1fr;gap:12px}
pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;font:12px/1.4 ui-monospace,
monospace;background:#f9fafb;padding:6px}del{background:#fee2e2;color:#991b1b}
ins{background:#dcfce7;color:#166534;text-decoration:none}.filters{margin:8px 0;
display:flex;gap:8px;flex-wrap:wrap;align-items:center}td.out{text-align:left;
max-width:520px;word-break:break-word}summary{cursor:pointer}
""".strip()

SCRIPT = """
(function () {
  var search = document.getElementById("search");
  var selects = ["prompt", "provider", "status"].map(function (id) {
    return document.getElementById("f-" + id);
  });
  var rows = document.querySelectorAll("#cases tbody tr");
  var count = document.getElementById("shown");
  function apply() {
    var text = search.value.toLowerCase();
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var ok = (!selects[0].value || row.dataset.prompt === selects[0].value) &&
        (!selects[1].value || row.dataset.provider === selects[1].value) &&
        (!selects[2].value || row.dataset.status === selects[2].value ||
          (selects[2].value === "flipped" && row.dataset.flip === "1")) &&
        (!text || row.textContent.toLowerCase().indexOf(text) >= 0);
      row.hidden = !ok;
      if (ok) { shown++; }
    }
    count.textContent = shown + " of " + rows.length + " shown";
  }
  [search].concat(selects).forEach(function (el) {
    el.addEventListener("input", apply);
    el.addEventListener("change", apply);
  });
  apply();
  document.body.dataset.ready = "1";
})();
""".strip()


def _sha(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CSP = (f"default-src 'none'; style-src 'sha256-{_sha(STYLE)}'; "
       f"script-src 'sha256-{_sha(SCRIPT)}'; img-src data:; base-uri 'none'; "
       "form-action 'none'")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pct(value: float) -> str:
    return f"{value:.1%}"


def write_html(file: IO[str], summary: Summary, results: Iterable[CaseResult],
               run: RunInfo | None = None, comparison: Comparison | None = None,
               title: str | None = None) -> None:
    """Write the report page to an open text file.

    Args:
        file: Where to write (``report.write_output`` passes a temporary file).
        summary: The leaderboard of the run.
        results: The run's results, read once, in store order.
        run: The run, for its id, times and spec description.
        comparison: A comparison with a baseline, shown with its flipped cases.
        title: The page title (default: the spec's description, else "promptkit report").
    """
    title = title or (run.config.get("description") if run else None) or "promptkit report"
    w = file.write
    w('<!DOCTYPE html>\n<html lang="en">\n<head>\n'
      f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
      '<meta charset="utf-8">\n<meta name="viewport" content="width=device-width">\n'
      '<meta name="referrer" content="no-referrer">\n'
      f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n")
    w(f"<h1>{_e(title)}</h1>\n{_header(summary, run)}\n")
    w("<h2>Leaderboard</h2>\n" + _leaderboard(summary))
    w("<h2>Charts</h2>\n" + _charts(summary.rows))
    if comparison is not None:
        w(_comparison(comparison))
    _cases(w, summary, results, comparison)
    w(f"<script>{SCRIPT}</script>\n</body>\n</html>\n")


def _header(summary: Summary, run: RunInfo | None) -> str:
    parts = []
    if run is not None:
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run.started_at))
        parts.append(f"run {_e(run.run_id)} ({_e(run.status)}), started {started}")
    cost = _cost(summary.total_cost) if summary.total_cost is not None else "unknown"
    parts.append(f"{summary.total_results:,} results, {summary.total_errors:,} errors, "
                 f"cost {_e(cost)}")
    if summary.best is not None:
        parts.append(f"{BEST_MARK} best: {_e(summary.best.label)}")
    return f'<p class="meta">{" · ".join(parts)}</p>'


def _leaderboard(summary: Summary) -> str:
    metrics = summary.metric_names()
    heads = ["prompt", "provider", "pass rate (95% CI)", "score", *metrics, "errors",
             "latency p50/p95", "TTFT", "tok/s", "tokens in/out", "cost"]
    out = ["<table><thead><tr>"]
    out += [f'<th class="{"l" if i < 2 else ""}">{_e(h)}</th>' for i, h in enumerate(heads)]
    out.append("</tr></thead><tbody>")
    for row in summary.rows:
        cls = "best" if row.best else ("below" if row.meets_threshold is False else "")
        cells = [
            (f"{BEST_MARK} " if row.best else "") + _e(row.prompt_id), _e(row.provider_id),
            f"{_pct(row.pass_rate)} ({row.ci_low * 100:.0f}–{row.ci_high * 100:.0f})",
            f"{row.score:.3f}",
            *(f"{row.metrics[m]:.3f}" if m in row.metrics else "—" for m in metrics),
            f"{row.errors:,}", f"{_seconds(row.latency_p50)}/{_seconds(row.latency_p95)}",
            _seconds(row.ttft_p50),
            "—" if row.tokens_per_s is None else f"{row.tokens_per_s:.1f}",
            f"{row.input_tokens:,}/{row.output_tokens:,}", _e(_cost(row.cost)),
        ]
        out.append(f'<tr class="{cls}">' + "".join(
            f'<td class="{"l" if i < 2 else ""}">{c}</td>' for i, c in enumerate(cells))
            + "</tr>")
    out.append("</tbody></table>\n")
    if summary.best is not None and summary.best.threshold is not None:
        failed = [r.label for r in summary.rows if r.meets_threshold is False]
        note = ("NOT met by " + ", ".join(failed)) if failed else "met by every row"
        out.append(f'<p class="meta">threshold {summary.best.threshold:.0%}: {_e(note)}</p>\n')
    return "".join(out)


# -- charts ----------------------------------------------------------------------------

W, H, LEFT, RIGHT, TOP, BOTTOM = 460, 300, 52, 16, 16, 40


def _ticks(high: float) -> list[float]:
    """Four or five round ticks from 0 to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    step = 10 ** math.floor(math.log10(high / 4))
    for factor in (1, 2, 2.5, 5, 10):
        if high / (step * factor) <= 5:
            step *= factor
            break
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def _axis_label(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:.4g}"
    if unit == "s":
        return f"{value:.3g}s"
    return f"{value:.0%}"


def _scatter(rows: Sequence[Row], x_of, unit: str, caption: str, colours: dict[str, str]
             ) -> str:
    points = [(row, x_of(row)) for row in rows if x_of(row) is not None]
    if not points:
        return (f'<figure><figcaption>{_e(caption)}: no data (no row has '
                f'{"a cost" if unit == "$" else "a measured latency"})</figcaption></figure>')
    xs = _ticks(max(x for _, x in points) * 1.1)
    x_max = xs[-1] or 1.0
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + plot_w * x / x_max

    def py(y: float) -> float:
        return TOP + plot_h * (1 - y)

    out = [f'<figure><svg class="chart" role="img" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg">'
           f"<title>{_e(caption)}</title>"]
    for y in (0, 0.25, 0.5, 0.75, 1):
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                   f'stroke="#e5e7eb"/><text x="{LEFT - 6}" y="{py(y) + 4:.1f}" '
                   f'text-anchor="end">{y:.0%}</text>')
    for x in xs:
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{TOP}" y2="{H - BOTTOM}" '
                   f'stroke="#f1f5f9"/><text x="{px(x):.1f}" y="{H - BOTTOM + 16}" '
                   f'text-anchor="middle">{_e(_axis_label(x, unit))}</text>')
    x_name = "cost (USD)" if unit == "$" else "latency p50"
    out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{H - 6}" text-anchor="middle">'
               f"{x_name}</text>")
    out.append(f'<text x="12" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 12 {TOP + plot_h / 2:.0f})">pass rate</text>')
    costs = [r.cost for r in rows if r.cost]
    top_cost = max(costs) if costs else 0.0
    for row, x in points:
        radius = 5 + (9 * math.sqrt(row.cost / top_cost) if row.cost and top_cost
                      and unit != "$" else 0)
        cx, cy = px(x), py(row.pass_rate)
        anchor = "end" if cx > W * 0.65 else "start"
        dx = -radius - 3 if anchor == "end" else radius + 3
        out.append(f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="{radius:.1f}" '
                   f'fill="{colours[row.prompt_id]}" fill-opacity="0.75">'
                   f"<title>{_e(row.label)}: {_pct(row.pass_rate)}, "
                   f"{_e(_axis_label(x, unit))}</title></circle>"
                   f'<text x="{cx + dx:.1f}" y="{cy - 6:.1f}" text-anchor="{anchor}">'
                   f"{_e(row.label)}</text>")
    out.append(f"</svg><figcaption>{_e(caption)}</figcaption></figure>\n")
    return "".join(out)


def _bars(rows: Sequence[Row], colours: dict[str, str]) -> str:
    label_w, bar_h, gap = 200, 18, 8
    height = TOP + len(rows) * (bar_h + gap) + 30
    plot_w = W - label_w - RIGHT
    caption = "Pass rate with its 95% interval"
    out = [f'<figure><svg class="chart" role="img" width="{W}" height="{height}" '
           f'viewBox="0 0 {W} {height}" xmlns="http://www.w3.org/2000/svg">'
           f"<title>{caption}</title>"]
    for i, row in enumerate(rows):
        y = TOP + i * (bar_h + gap)
        label = row.label if len(row.label) <= 30 else row.label[:29] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{_e(label)}'
                   f'</text><rect class="bar" x="{label_w}" y="{y}" '
                   f'width="{plot_w * row.pass_rate:.1f}" height="{bar_h}" '
                   f'fill="{colours[row.prompt_id]}" fill-opacity="0.7"/>'
                   f'<line x1="{label_w + plot_w * row.ci_low:.1f}" '
                   f'x2="{label_w + plot_w * row.ci_high:.1f}" y1="{y + bar_h / 2}" '
                   f'y2="{y + bar_h / 2}" stroke="#111827" stroke-width="1.5"/>'
                   f'<text x="{label_w + plot_w * max(row.pass_rate, row.ci_high) + 4:.1f}" '
                   f'y="{y + 13}">{_pct(row.pass_rate)}</text>')
    axis_y = TOP + len(rows) * (bar_h + gap) + 4
    for x in (0, 0.5, 1):
        out.append(f'<text x="{label_w + plot_w * x:.1f}" y="{axis_y + 12}" '
                   f'text-anchor="middle">{x:.0%}</text>')
    out.append(f"</svg><figcaption>{caption}</figcaption></figure>\n")
    return "".join(out)


def _charts(rows: Sequence[Row]) -> str:
    if not rows:
        return '<p class="meta">no results</p>\n'
    prompts = list(dict.fromkeys(row.prompt_id for row in rows))
    colours = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(prompts)}
    return (_scatter(rows, lambda r: r.latency_p50, "s",
                     "Quality vs latency (point size: cost)", colours)
            + _scatter(rows, lambda r: r.cost, "$", "Quality vs cost", colours)
            + _bars(rows, colours))


# -- comparison ------------------------------------------------------------------------


def _word_diff(before: str, after: str) -> str:
    """The two texts word by word: removed words in ``<del>``, added in ``<ins>``."""
    a, b = re.findall(r"\S+|\s+", before), re.findall(r"\S+|\s+", after)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(_e("".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{_e(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{_e(''.join(b[j1:j2]))}</ins>")
    return "".join(out)


def _flip(flip: Flip, row: RowComparison) -> str:
    before = flip.before.error or flip.before.output or ""
    after = flip.after.error or flip.after.output or ""
    arrow = ('<span class="fail">pass → FAIL</span>' if flip.regressed
             else '<span class="pass">fail → pass</span>')
    return (f'<div class="flip">{arrow} <b>{_e(flip.case_id)}</b> '
            f'<span class="meta">({_e(row.label)}; score {flip.before.score:.3f} → '
            f"{flip.after.score:.3f})</span>"
            f'<div class="sides"><div>baseline<pre>{_e(before)}</pre></div>'
            f"<div>now<pre>{_e(after)}</pre></div></div>"
            f"<div>diff<pre>{_word_diff(before, after)}</pre></div></div>\n")


def _comparison(comparison: Comparison) -> str:
    from .comparison import PASS_RATE, verdict_line

    cls = "worse" if comparison.regressed else ""
    out = [f"<h2>Compared with {_e(comparison.before_label)}</h2>\n"
           f'<p class="verdict {cls}">{_e(verdict_line(comparison))}</p>\n'
           "<table><thead><tr><th class=\"l\">prompt × provider</th><th>cases</th>"
           "<th>pass before → now</th><th>Δ pass rate (95% CI)</th><th>flips −/+</th>"
           "<th>p (Holm)</th><th>verdict</th></tr></thead><tbody>"]
    for row in comparison.rows:
        change = next((m.change for m in row.metrics if m.name == PASS_RATE), None)
        delta = "—" if change is None else (
            f"{change.mean * 100:+.1f}pp ({change.low * 100:+.1f} to {change.high * 100:+.1f})")
        rate = (f"{row.before_passed / row.cases:.1%} → {row.after_passed / row.cases:.1%}"
                if row.cases else "—")
        verdict_cls = {"worse": "worse", "better": "better"}.get(row.verdict, "")
        out.append(f'<tr><td class="l">{_e(row.label)}</td><td>{row.cases}</td>'
                   f"<td>{rate}</td><td>{delta}</td>"
                   f"<td>{len(row.regressed)}/{len(row.fixed)}</td>"
                   f'<td>{row.p_adjusted:.3g}</td><td class="{verdict_cls}">'
                   f"{_e(row.verdict)}</td></tr>")
    out.append("</tbody></table>\n")
    metric_rows = [(row, m) for row in comparison.rows for m in row.metrics
                   if m.name != PASS_RATE]
    if metric_rows:
        out.append('<table><thead><tr><th class="l">prompt × provider</th>'
                   '<th class="l">metric</th><th>before</th><th>now</th>'
                   "<th>Δ mean (95% CI)</th></tr></thead><tbody>")
        for row, m in metric_rows:
            mark = " *" if m.change.excludes_zero else ""
            out.append(f'<tr><td class="l">{_e(row.label)}</td><td class="l">{_e(m.name)}'
                       f"</td><td>{m.before:.3f}</td><td>{m.after:.3f}</td>"
                       f"<td>{m.change.mean:+.3f} ({m.change.low:+.3f} to "
                       f"{m.change.high:+.3f}){mark}</td></tr>")
        out.append("</tbody></table>\n")
        if any(m.change.excludes_zero for _, m in metric_rows):
            out.append('<p class="meta">* the interval excludes 0 (paired bootstrap, seed '
                       f"{comparison.seed}); the verdict is the pass/fail test.</p>\n")
    notes = [*comparison.warnings,
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
        out.append(f"<h2>Flipped cases ({len(flips)})</h2>\n")
        out += [_flip(flip, row) for flip, row in flips]
    return "".join(out)


# -- cases -----------------------------------------------------------------------------


def _status(result: CaseResult) -> str:
    if result.error is not None:
        return "error"
    return "pass" if result.passed else "fail"


def _text_cell(text: str) -> str:
    if len(text) <= PREVIEW_CHARS and "\n" not in text:
        return _e(text)
    preview = " ".join(text.split())[:PREVIEW_CHARS]
    return f"<details><summary>{_e(preview)}…</summary><pre>{_e(text)}</pre></details>"


def _options(element_id: str, label: str, values: Iterable[str]) -> str:
    options = "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
    return (f'<label>{label} <select id="{element_id}"><option value="">all</option>'
            f"{options}</select></label>")


def _cases(w, summary: Summary, results: Iterable[CaseResult],
           comparison: Comparison | None) -> None:
    flipped = set()
    if comparison is not None:
        flipped = {(row.prompt_id, row.provider_id, f.case_id) for row in comparison.rows
                   for f in (*row.regressed, *row.fixed)}
    statuses = ["pass", "fail", "error"] + (["flipped"] if comparison is not None else [])
    w("<h2>Cases</h2>\n<div class=\"filters\">"
      '<label>search <input id="search" type="search" placeholder="case id or text"></label>'
      + _options("f-prompt", "prompt", dict.fromkeys(r.prompt_id for r in summary.rows))
      + _options("f-provider", "provider",
                 dict.fromkeys(r.provider_id for r in summary.rows))
      + _options("f-status", "status", statuses)
      + '<span id="shown" class="meta"></span></div>\n'
      '<table id="cases"><thead><tr><th class="l">prompt</th><th class="l">provider</th>'
      '<th class="l">case</th><th>#</th><th>result</th><th>score</th><th>latency</th>'
      '<th class="l">output</th><th class="l">vars</th></tr></thead><tbody>\n')
    shown = left_out = 0
    for r in results:
        if shown >= MAX_CASE_ROWS:
            left_out += 1
            continue
        shown += 1
        status = _status(r)
        flip = "1" if (r.prompt_id, r.provider_id, r.case_id) in flipped else "0"
        output = r.output if r.error is None else f"{r.error_kind or 'error'}: {r.error}"
        variables = json.dumps(r.vars, ensure_ascii=False, indent=1, default=str)
        w(f'<tr data-prompt="{_e(r.prompt_id)}" data-provider="{_e(r.provider_id)}" '
          f'data-status="{status}" data-flip="{flip}">'
          f'<td class="l">{_e(r.prompt_id)}</td><td class="l">{_e(r.provider_id)}</td>'
          f'<td class="l">{_e(r.case_id)}</td><td>{r.repeat}</td>'
          f'<td class="{status}">{status}{" ⇄" if flip == "1" else ""}</td>'
          f"<td>{r.score:.3f}</td><td>{_seconds(r.latency_s)}</td>"
          f'<td class="out">{_text_cell(output or "")}</td>'
          f'<td class="l"><details><summary>vars</summary><pre>{_e(variables)}</pre>'
          "</details></td></tr>\n")
    w("</tbody></table>\n")
    if left_out:
        w(f'<p class="meta">{left_out:,} more results are not shown; write a .jsonl output '
          "for all of them.</p>\n")
