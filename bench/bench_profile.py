"""Profile of the bundled model through both local engines. Prints figures; asserts nothing.

    python bench/bench_profile.py [--input-tokens 256,1024] [--concurrency 1,2,4]
                                  [--requests 8] [--max-tokens 64] [--slo ttft=2s,tpot=100ms]

Runs `promptkit profile local` as a user does, once per engine:

1. llama-cpp-python's server (``python -m llama_cpp.server``), which answers one request at
   a time: throughput stays flat as concurrency grows, and latency grows with the queue.
2. llama.cpp's native ``llama-server`` (``$PROMPTKIT_LLAMA_SERVER`` or on PATH), when there
   is one: a parallel slot per unit of the highest concurrency, batched together.

Each prints its tables (throughput, TTFT/TPOT/ITL/E2EL, goodput, peak RSS per level); then
one table puts the engines side by side. Needs the [local] extra.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def engine_env(native: str | None) -> dict[str, str]:
    """The environment that makes promptkit pick one engine: the native binary, or
    llama-cpp-python (no llama-server anywhere it would look)."""
    env = {key: value for key, value in os.environ.items() if key != "PROMPTKIT_LLAMA_SERVER"}
    if native:
        env["PROMPTKIT_LLAMA_SERVER"] = native
    else:
        env["PATH"] = os.pathsep.join(
            folder for folder in env.get("PATH", "").split(os.pathsep)
            if not (Path(folder) / "llama-server").is_file())
    env.setdefault("COLUMNS", "160")
    return env


def profile(engine: str, native: str | None, args: argparse.Namespace, out: Path) -> dict:
    command = [sys.executable, "-m", "promptkit.cli", "profile", "local",
               "--input-tokens", args.input_tokens, "--concurrency", args.concurrency,
               "--requests", str(args.requests), "--max-tokens", str(args.max_tokens),
               "--slo", args.slo, "-o", str(out)]
    print(f"## {engine}\n$ promptkit {' '.join(command[3:-2])}", flush=True)
    proc = subprocess.run(command, env=engine_env(native), text=True, capture_output=True,
                          timeout=3600)
    print(proc.stdout, flush=True)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        raise SystemExit(f"{engine}: promptkit profile exited with {proc.returncode}")
    return json.loads(out.read_text())


def side_by_side(results: dict[str, dict]) -> None:
    print("## side by side (per input size and concurrency)")
    header = ("engine", "input", "conc", "out tok/s", "req/s", "TTFT p50", "TPOT p50",
              "E2EL p50", "SLO met", "peak RSS MB")
    print(f"{header[0]:<16}" + "  ".join(f"{h:>11}" for h in header[1:]))
    for engine, data in results.items():
        for run in data["runs"]:
            for level in run["levels"]:
                cells = (run["input_tokens"], level["max_concurrency"],
                         f"{level['output_throughput']:.1f}",
                         f"{level['request_throughput']:.2f}",
                         f"{level['median_ttft_ms']:.0f} ms", f"{level['median_tpot_ms']:.1f} ms",
                         f"{level['median_e2el_ms']:.0f} ms",
                         f"{100 * level['slo_attainment']:.0f}%",
                         f"{level['peak_rss_mb']:.0f}" if level["peak_rss_mb"] else "—")
                print(f"{engine:<16}" + "  ".join(f"{c!s:>11}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-tokens", default="256,1024")
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--slo", default="ttft=2s,tpot=100ms")
    args = parser.parse_args()
    native = os.environ.get("PROMPTKIT_LLAMA_SERVER") or shutil.which("llama-server")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        results["llama-cpp-python"] = profile("llama-cpp-python", None, args,
                                              Path(folder) / "python.json")
        if native:
            results["llama-server"] = profile("llama-server", native, args,
                                              Path(folder) / "native.json")
        else:
            print("## llama-server\nnot found (set PROMPTKIT_LLAMA_SERVER or put llama-server "
                  "on PATH): profiled through llama-cpp-python only\n")
    side_by_side(results)


if __name__ == "__main__":
    main()
