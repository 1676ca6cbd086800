"""Benchmark of the eval runner. Prints figures; asserts nothing.

    python bench/bench_runner.py [--cases 2000] [--big 100000] [--skip-rss]

1. Throughput against a zero-latency endpoint (nginx returning a fixed chat
   completion): `promptkit eval` vs a bare AsyncOpenAI loop sending the same number
   of requests, both timed as whole processes, concurrency 32, cache off, results
   stored. Figure: bare time / promptkit time (target >= 0.8).
2. Against a 100 ms endpoint (promptkit.testing in its own process): wall time as
   a ratio of the ideal N x 0.1 s / 32 (target <= 1.15).
3. Peak RSS of `promptkit eval` for 10,000 and 100,000 cases (target < 250 MB and
   growing less than 20%).
4. `promptkit --help` wall time (target < 0.3 s).

Needs nginx (Debian's nginx-light); the script installs it with apt-get if missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONCURRENCY = 32
HERE = Path(__file__).parent
COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "ok, a short summary."}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def start_nginx(workdir: Path) -> tuple[subprocess.Popen, str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light"], check=True,
                       stdout=subprocess.DEVNULL)
    port = free_port()
    body = json.dumps(COMPLETION).replace("'", "\\'")
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
daemon off; worker_processes 1; pid {workdir}/nginx.pid; error_log {workdir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; keepalive_requests 1000000; keepalive_timeout 60;
  client_body_temp_path {workdir}/body; proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fastcgi; uwsgi_temp_path {workdir}/uwsgi;
  scgi_temp_path {workdir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(workdir)])
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}/v1"


def start_fake(latency: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "promptkit.testing", "--port", str(port),
                             "--latency", str(latency), "--reply", "ok, a short summary."],
                            stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}/v1"


def write_eval(workdir: Path, cases: int, base_url: str) -> Path:
    (workdir / "templates" / "bench").mkdir(parents=True, exist_ok=True)
    (workdir / "templates" / "bench" / "v1.jinja").write_text(
        "---\ninputs: {text: string}\nparams: {temperature: 0}\n---\nSummarize: {{ text }}\n")
    data = workdir / f"cases-{cases}.jsonl"
    if not data.exists():
        with data.open("w") as handle:
            for i in range(cases):
                handle.write(json.dumps({"id": f"c{i}", "text": f"benchmark case {i} text.",
                                         "expected": "summary"}) + "\n")
    spec = workdir / f"bench-{cases}.yaml"
    spec.write_text(f"""
templates: templates
prompts: [bench@1]
providers:
  - id: bench
    base_url: {base_url}
    model: m
    stream: false
    concurrency: {CONCURRENCY}
dataset: {data.name}
assert:
  - type: icontains
    value: "{{{{ expected }}}}"
""")
    return spec


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one whole process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{cmd} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def promptkit_eval(spec: Path, workdir: Path) -> list[str]:
    store = workdir / f"store-{time.monotonic_ns()}"
    return [sys.executable, "-m", "promptkit.cli", "eval", str(spec), "--no-cache", "-q",
            "--store-dir", str(store)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="promptkit-bench-"))
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}; "
          f"concurrency {CONCURRENCY}, cache off, results stored")
    nginx, nginx_url = start_nginx(workdir)
    try:
        spec = write_eval(workdir, args.cases, nginx_url)
        timed(promptkit_eval(spec, workdir))  # warm-up: imports, page cache
        bare, _ = timed([sys.executable, str(HERE / "bare_loop.py"), nginx_url,
                         str(args.cases), str(CONCURRENCY)])
        ours, _ = timed(promptkit_eval(spec, workdir))
        print(f"1. zero latency, {args.cases} cases: bare AsyncOpenAI {bare:.2f}s "
              f"({args.cases / bare:.0f} req/s), promptkit eval {ours:.2f}s "
              f"({args.cases / ours:.0f} req/s): throughput ratio {bare / ours:.2f} "
              "(target >= 0.8)")
        if not args.skip_rss:
            small = write_eval(workdir, 10_000, nginx_url)
            big = write_eval(workdir, args.big, nginx_url)
            t_small, rss_small = timed(promptkit_eval(small, workdir))
            t_big, rss_big = timed(promptkit_eval(big, workdir))
            print(f"3. peak RSS: 10,000 cases {rss_small:.0f} MiB ({t_small:.0f}s), "
                  f"{args.big:,} cases {rss_big:.0f} MiB ({t_big:.0f}s): growth "
                  f"{(rss_big / rss_small - 1):+.0%} (target < 250 MB, < +20%)")
    finally:
        nginx.terminate()
        nginx.wait()
    fake, fake_url = start_fake(0.1)
    try:
        spec = write_eval(workdir, args.cases, fake_url)
        wall, _ = timed(promptkit_eval(spec, workdir))
        bare, _ = timed([sys.executable, str(HERE / "bare_loop.py"), fake_url,
                         str(args.cases), str(CONCURRENCY)])
        ideal = args.cases * 0.1 / CONCURRENCY
        print(f"2. 100 ms latency, {args.cases} cases: promptkit eval {wall:.2f}s vs ideal "
              f"{ideal:.2f}s: ratio {wall / ideal:.2f} (target <= 1.15); bare AsyncOpenAI "
              f"{bare:.2f}s: ratio {bare / ideal:.2f}")
    finally:
        fake.terminate()
        fake.wait()
    entry = Path(sys.executable).parent / "promptkit"  # the console script users run
    command = [str(entry)] if entry.exists() else [sys.executable, "-m", "promptkit.cli"]
    runs = [timed([*command, "--help"])[0] for _ in range(5)]
    print(f"4. promptkit --help: best of 5 {min(runs) * 1000:.0f} ms, median "
          f"{sorted(runs)[2] * 1000:.0f} ms (target < 300 ms)")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
