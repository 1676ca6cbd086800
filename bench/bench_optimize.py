"""Few-shot search against random example choice, on the demo. Prints figures; asserts nothing.

    python bench/bench_optimize.py [--max-requests 220] [--k 2] [--seeds 3]
                                   [--split 0.5/0.15/0.35]

On a copy of the repo's templates and evals, with the bundled local model:

1. ``promptkit optimize evals/summarize_120.yaml --prompt few-shot`` with the pool of 30
   examples: the search's requests, and the winner's and the starting version's pass rate
   and mean score on the test split.
2. Random choice at the same budget: for each of ``--seeds`` seeds, k examples drawn at
   random from the same pool (what the search's first draw could have been), scored on the
   same test split through the same cache.

Score against calls: the search spent its requests to pick its examples; a random choice
spends none before the test. Needs the [local] extra; takes 10-20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-requests", type=int, default=220)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--split", default="0.5/0.15/0.35")
    args = parser.parse_args()

    from promptkit.optimizing import OptimizeSettings, optimize
    from promptkit.optimizing.trials import mean_value
    from promptkit.optimizing.versions import Candidate, strip_header_comment

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copytree(REPO / "templates", root / "templates")
        shutil.copytree(REPO / "evals", root / "evals",
                        ignore=shutil.ignore_patterns(".promptkit"))
        spec = root / "evals" / "summarize_120.yaml"
        pool = root / "evals" / "data" / "news_pool.jsonl"
        settings = OptimizeSettings(prompt="few-shot", pool=str(pool), k=args.k,
                                    split=args.split, max_requests=args.max_requests)
        started = time.monotonic()
        report = optimize(spec, settings, on_event=lambda line: print("  " + line))
        took = time.monotonic() - started
        print(f"\nsearch: {report.budget_used.get('requests', 0):.0f} requests in {took:.0f} s;"
              f" winner {report.winner}")
        if report.test:
            test = report.test
            print(f"test split ({test['cases']} cases): start pass {test['start'][0]:.1%} "
                  f"score {test['start'][1]:.3f}; winner pass {test['winner'][0]:.1%} "
                  f"score {test['winner'][1]:.3f}; p(better)={test['p_better']:.3g}")

        # Random choice of k examples, scored on the same test split with the same runner.
        from promptkit.optimizing.optimizer import _Job

        job = _Job(__import__("promptkit").load_spec(spec), settings, lambda _: None, None)
        job.report = type(report)(parent="")
        job.prepare()
        rows = []
        for seed in range(args.seeds):
            picked = random.Random(seed).sample(job.pool, args.k)
            candidate = Candidate(f"r{seed}", strip_header_comment(job.parent.body),
                                  tuple(picked), "random")
            scores = job.trials.score([candidate], job.split.test, phase="bench")
            outcomes = scores[candidate.key]
            passed = sum(o.passed for o in outcomes.values()) / len(outcomes)
            score = sum(o.score for o in outcomes.values()) / len(outcomes)
            rows.append((passed, score, mean_value(outcomes)))
            print(f"random choice, seed {seed}: test pass {passed:.1%} score {score:.3f}")
        job.close()
        mean_pass = sum(r[0] for r in rows) / len(rows)
        mean_score = sum(r[1] for r in rows) / len(rows)
        print(f"random choice, mean of {len(rows)}: test pass {mean_pass:.1%} score "
              f"{mean_score:.3f} (0 search requests)")


if __name__ == "__main__":
    main()
