"""The few-shot search on the bundled model: a tiny run, end to end (the demo is bigger)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from promptkit.optimizing import OptimizeSettings, optimize
from promptkit.templates.lockfile import check
from promptkit.templates.store import TemplateStore

REPO = Path(__file__).parent.parent.parent


@pytest.mark.local_model
def test_a_tiny_fewshot_search_on_the_local_model(tmp_path: Path) -> None:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    shutil.copytree(REPO / "evals", tmp_path / "evals",
                    ignore=shutil.ignore_patterns(".promptkit"))
    data = tmp_path / "evals" / "data"
    lines = (data / "news_120.jsonl").read_text().splitlines()
    (data / "news_120.jsonl").write_text("\n".join(lines[:12]) + "\n")
    pool = (data / "news_pool.jsonl").read_text().splitlines()
    (data / "pool.jsonl").write_text("\n".join(pool[:4]) + "\n")
    events: list[str] = []
    report = optimize(tmp_path / "evals" / "summarize_120.yaml", OptimizeSettings(
        prompt="few-shot", pool=str(data / "pool.jsonl"), k=1, minibatch=2,
        split="0.5/0.25/0.25", max_requests=40), on_event=events.append)
    assert report.split == {"train": 6, "validation": 3, "test": 3}
    assert 0 < report.budget_used["requests"] <= 40
    assert set(report.validation) >= {"start"} and len(report.validation) >= 2, events
    store = TemplateStore(tmp_path / "templates")
    if report.written:
        assert report.test["cases"] == 3 and check(store) == []
        assert store.get(report.written).front_matter.derived_from.version == 2
    else:
        assert report.winner == "start" and store.versions("summarize") == [1, 2]
