"""Benchmark of the regression check on a large run. Prints figures; asserts nothing.

    python bench/bench_compare.py [--cases 100000] [--prompts 2]

Stores two runs of N cases × P prompts (the second with 1% of cases flipped and scores
shifted), then times what CI does with them: reading a run into a comparison side,
saving and loading a baseline file, the comparison itself (McNemar, Holm, bootstrap
intervals for the pass rate, the score and two metrics per row) and the HTML report.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from promptkit.comparing.baseline import load_baseline, save_baseline, side_from_run
from promptkit.comparing.comparison import compare
from promptkit.reporting.outputs import write_output
from promptkit.reporting.summary import summarize
from promptkit.results import CaseResult
from promptkit.running.storage import RunStore


def store_run(store: RunStore, cases: int, prompts: int, flip: float, seed: int) -> str:
    rng = random.Random(seed)
    config = {"prompts": [{"id": f"p{i}", "template": f"t@{i}"} for i in range(prompts)],
              "providers": [{"id": "m", "model": "m"}]}
    run = store.create_run("bench.yaml", "h", config, planned=cases * prompts)
    store.conn.execute("BEGIN")  # one transaction: the benchmark times reading, not writing
    for p in range(prompts):
        for i in range(cases):
            base = random.Random(i).random()  # the case's difficulty, the same in both runs
            passed = (base > 0.3) != (rng.random() < flip)
            score = min(1.0, max(0.0, base + rng.gauss(0, 0.05)))
            store.add_result(run.run_id, CaseResult(
                f"p{p}", "m", f"case-{i:06d}", i, passed=passed, score=score,
                metrics={"rouge-l": score, "max-words": float(passed)},
                output=f"summary of case {i}", latency_s=0.5, template_sha256="a" * 64))
    store.conn.execute("COMMIT")
    store.finish_run(run.run_id, "finished")
    return run.run_id


def timed(label: str, action):
    start = time.perf_counter()
    value = action()
    print(f"  {label:<44} {time.perf_counter() - start:7.2f} s")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--prompts", type=int, default=2)
    args = parser.parse_args()
    n = args.cases * args.prompts
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(Path(folder) / "runs.db")
        print(f"{args.cases:,} cases × {args.prompts} prompts = {n:,} results per run")
        before_id = timed("store the baseline run (setup)",
                          lambda: store_run(store, args.cases, args.prompts, 0.0, 1))
        after_id = timed("store the candidate run (setup)",
                         lambda: store_run(store, args.cases, args.prompts, 0.01, 2))
        before = timed("read a run into a comparison side",
                       lambda: side_from_run(store, store.get_run(before_id)))
        after = side_from_run(store, store.get_run(after_id))
        baseline = Path(folder) / "baseline.json"
        timed("save the baseline file", lambda: save_baseline(before, baseline))
        print(f"  {'baseline file size':<44} {baseline.stat().st_size / 1e6:7.1f} MB")
        loaded = timed("load the baseline file", lambda: load_baseline(baseline))
        comparison = timed("compare (McNemar, Holm, 4 bootstraps per row)",
                           lambda: compare(loaded, after))
        for row in comparison.rows:
            print(f"    {row.label}: {len(row.regressed):,} regressed, {len(row.fixed):,} "
                  f"fixed, p={row.p_adjusted:.3g}, {row.verdict}")
        run = store.get_run(after_id)
        summary = summarize(store.results(after_id))
        report = Path(folder) / "report.html"
        timed("write the HTML report (5,000 case rows)",
              lambda: write_output(report, summary, store.results(after_id), run, comparison))
        print(f"  {'HTML report size':<44} {report.stat().st_size / 1e6:7.1f} MB")
        store.close()


if __name__ == "__main__":
    main()
