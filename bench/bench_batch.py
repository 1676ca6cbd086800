"""The batch path at scale. Prints figures; asserts nothing.

    python bench/bench_batch.py [--cases 100000]

Runs ``promptkit eval --batch`` on N cases against ``python -m promptkit.testing`` (the test
endpoint, in its own process, with its Files and Batch APIs; a fixed short answer), from a
cold cache: every request goes into batch files (split at 50,000 lines), one batch each,
the outputs are imported and every case is scored and stored. Figures: wall time, the
batches sent, and the peak RSS of the promptkit process (the runner's target: < 250 MB at
100,000 cases).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_runner import free_port, wait_port

SPEC = """\
templates: templates
prompts:
  - id: p
    template: t@1
providers:
  - id: fake
    base_url: http://127.0.0.1:{port}/v1
    model: m
    stream: false
    batch: true
dataset: cases.jsonl
assert:
  - type: contains
    value: ok
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "templates" / "t").mkdir(parents=True)
        (root / "templates" / "t" / "v1.jinja").write_text("Summarize: {{ text }}\n")
        with (root / "cases.jsonl").open("w") as handle:
            for i in range(args.cases):
                handle.write(json.dumps({"id": f"c{i}", "text": f"article number {i}"}) + "\n")
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "promptkit.testing", "--port",
                                   str(port), "--reply", "ok, a short summary."],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            (root / "eval.yaml").write_text(SPEC.format(port=port))
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "promptkit.cli", "eval", "eval.yaml",
                                   "-q", "-o", "out.json"], cwd=root, capture_output=True,
                                  text=True)
            took = time.monotonic() - started
            # the eval is the only child waited for so far: the endpoint is still running
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        finally:
            server.terminate()
            server.wait()
        summary = json.loads((root / "out.json").read_text()) if done.returncode == 0 \
            else {}
        rows = summary.get("rows") or summary.get("summary", {}).get("rows") or []
        print(f"{args.cases:,} cases through the batch path: exit {done.returncode}, "
              f"{took:.1f} s, peak RSS of the promptkit process {peak:.0f} MiB")
        for row in rows:
            print(f"  {row.get('prompt_id')}: {row.get('cases')} cases, pass rate "
                  f"{row.get('pass_rate')}")
        if done.returncode:
            print(done.stderr[-2000:])


if __name__ == "__main__":
    main()
