"""Helpers shared by test modules in several folders: a user's subprocess, hand-made
results, and a responder that answers like the committed demo baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from promptkit.comparing.baseline import load_baseline
from promptkit.results import CaseResult
from promptkit.testing import Reply

REPO = Path(__file__).parent.parent
BASELINE = REPO / "evals" / "baselines" / "summarize.json"
NASTY = 'a, "quoted", comma\nsecond line — 中文摘要，含逗号'
WORSE = "Article: the article is about news. It says things happened."


def promptkit(*args: str, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promptkit.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "160", **(env or {})})


def result(prompt: str, provider: str, case: int, **fields) -> CaseResult:
    fields.setdefault("output", f"answer {case}")
    return CaseResult(prompt, provider, f"c{case}", case, **fields)


def handcrafted() -> list[CaseResult]:
    """Two prompts × two providers; provider b is seen first, so it comes first."""
    return [
        result("p1", "b", 0, passed=True, score=1.0, latency_s=0.5, output_tokens=10),
        result("p1", "a", 0, passed=True, score=1.0, metrics={"rouge": 0.8}, latency_s=1.0,
               ttft_s=0.2, input_tokens=10, output_tokens=20, cost=0.001),
        result("p1", "a", 1, passed=False, score=0.5, metrics={"rouge": 0.4, "judge": 1.0},
               latency_s=2.0, ttft_s=0.5, input_tokens=10, output_tokens=30, cost=0.002,
               assertions=[{"type": "rouge-l", "passed": False, "reason": "0.40 < 0.5"},
                           {"type": "llm-judge", "passed": True, "reason": "fine"}]),
        result("p1", "a", 2, error="timed out after 60s", error_kind="timeout", output=None,
               latency_s=5.0, attempts=3),
        result("p1", "a", 3, passed=True, score=1.0, metrics={"rouge": 0.6}, cached=True,
               requests=0, input_tokens=10, output_tokens=20, cost=0.001),
        result("p1", "b", 1, passed=True, score=1.0, latency_s=0.7, output_tokens=10),
        result("p2", "a", 0, passed=False, score=0.0, metrics={"rouge": 0.1}, latency_s=3.0,
               input_tokens=5, output_tokens=5, cost=0.0, output=NASTY),
        result("p2", "b", 0, error="HTTP 500", error_kind="server", output=None),
        result("p2", "b", 1, passed=True, score=0.9, latency_s=1.0, output="<script>\x00"),
    ]


def baseline_answers(worse_template: str | None = None, worse_cases: tuple[str, ...] = ()):
    """A responder answering each prompt with the committed baseline's output for its
    case and template version, or with a poor summary for ``worse_template`` and for the
    few-shot answers of ``worse_cases``."""
    side = load_baseline(BASELINE)
    articles = {json.loads(line)["article"]: json.loads(line)["id"]
                for line in (REPO / "evals/data/news.jsonl").read_text().splitlines()}
    outputs = {(row.template, case.case_id): case.output
               for row in side.rows for case in row.cases.values()}

    def respond(request) -> Reply:
        text = request.prompt_text
        case_id = next(cid for article, cid in articles.items() if article in text)
        # summarize@2 prepends two worked examples, each with its own "Article:"
        template = "summarize@2" if text.count("Article:") > 1 else "summarize@1"
        if template == worse_template or (template == "summarize@2"
                                          and case_id in worse_cases):
            return Reply.text(WORSE)
        return Reply.text(outputs[(template, case_id)])

    return respond
