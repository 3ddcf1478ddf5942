"""One ``llama-server`` process owned by the harness: started, health-checked, asked, and always stopped.

A benchmark drives llama.cpp the way its users do, through ``llama-server``'s
``/completion`` endpoint, with the prompt given as token ids so both engines
see the same tokens. The process is ours for the run: it gets a free loopback
port (or the one asked for, refused with a clear error when taken), its log
goes to a file whose tail every error quotes, it dies with the harness
(``PR_SET_PDEATHSIG`` on Linux, ``atexit``, ``close()``), and a request to a
server that died or hung says so instead of hanging the run.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LlamaServer", "LlamaServerError", "ServerConfig", "free_port"]

LOOPBACK = "127.0.0.1"


class LlamaServerError(RuntimeError):
    """The server binary is missing, would not start, died, or did not answer in time."""


@dataclass(frozen=True)
class ServerConfig:
    """How one server is started; ``draft`` None is a target-only server (no draft model loaded at all).

    Both kinds get the same speculative flags, so the target context is built the same way in both (see
    ``command``); without ``-md`` upstream loads no drafter and decodes target-only.
    """

    binary: Path
    model: Path
    draft: Path | None = None
    threads: int = 2
    ctx_size: int = 4096  # per slot
    parallel: int = 1  # slots
    port: int | None = None  # None: a free loopback port
    startup_timeout: float = 300.0
    request_timeout: float = 900.0
    draft_cap: int = 40  # the server-wide n_max; a request asks for less with speculative.n_max
    extra_args: tuple[str, ...] = ()
    log_dir: Path | None = None
    reserve_draft_outputs: bool = True  # False: a target-only server exactly as upstream's defaults start one

    def command(self, port: int) -> list[str]:
        args = [str(self.binary), "-m", str(self.model), "-t", str(self.threads), "-tb", str(self.threads)]
        args += ["-c", str(self.ctx_size * self.parallel), "-np", str(self.parallel), "--host", LOOPBACK]
        args += ["--port", str(port), "--no-webui", "-cram", "0", "-ngl", "0"]  # no prompt cache across requests
        if self.draft is not None:
            # the server's n_max caps every request's (upstream's default is 3): the hard cap of 40 here
            args += ["-md", str(self.draft), "-td", str(self.threads), "-ngld", "0"]
        # a target-only server too: without a draft model nothing is drafted, but the target context reserves its
        # graphs for n_max + 1 outputs as a speculative server's does. reserved for one output, upstream's draft-less
        # server decodes SmolLM2-135M f32 11-14% slower (AMD Zen 5; no difference on Qwen2.5-Coder-1.5B bf16), which
        # made llama.cpp's target-only a slow baseline (python -m svip.eval.llamacpp_baseline)
        if self.draft is not None or self.reserve_draft_outputs:
            args += ["--spec-type", "draft-simple", "--spec-draft-n-max", str(self.draft_cap)]
        return args + list(self.extra_args)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    """In the child: SIGKILL when the harness dies (a busy server finishes its request on SIGTERM), however it dies (Linux prctl; elsewhere a no-op)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


@dataclass
class LlamaServer:
    """A running ``llama-server``; use as a context manager or call ``close()``."""

    config: ServerConfig
    port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)
    log_path: Path | None = None

    def start(self) -> "LlamaServer":
        for path, what in ((self.config.binary, "llama-server binary"), (self.config.model, "model")):
            if not Path(path).exists():
                hint = " (make llamacpp-setup builds it)" if what.endswith("binary") else ""
                raise LlamaServerError(f"{what} not found: {path}{hint}")
        if self.config.draft is not None and not Path(self.config.draft).exists():
            raise LlamaServerError(f"draft model not found: {self.config.draft}")
        if self.config.port is not None and _port_taken(self.config.port):
            raise LlamaServerError(f"port {self.config.port} on {LOOPBACK} is in use; pick another or leave it unset")
        self.port = self.config.port or free_port()
        log_dir = Path(self.config.log_dir or tempfile.gettempdir())
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"llama-server-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.config.command(self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if os.name == "posix" else None,
            )
        atexit.register(self.close)
        try:
            self._wait_healthy()
        except BaseException:
            self.close()
            raise
        return self

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _dead(self) -> str | None:
        if self.process is not None and self.process.poll() is not None:
            return f"llama-server exited with code {self.process.returncode}; its log ({self.log_path}) ends:\n{self.log_tail()}"
        return None

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout
        while time.monotonic() < deadline:
            if (reason := self._dead()) is not None:
                raise LlamaServerError(reason)
            try:
                with urllib.request.urlopen(self.url("/health"), timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass  # still loading (503) or not listening yet
            time.sleep(0.25)
        raise LlamaServerError(
            f"llama-server on port {self.port} not healthy after {self.config.startup_timeout:.0f} s; log:\n{self.log_tail()}"
        )

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url(path), timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, payload: dict, *, timeout: float | None = None) -> dict:
        """POST JSON; an HTTP error carries the server's message, a dead or hung server says which."""
        request = urllib.request.Request(
            self.url(path), data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        limit = timeout or self.config.request_timeout
        try:
            with urllib.request.urlopen(request, timeout=limit) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            try:
                message = json.loads(body)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = body[:500]
            raise LlamaServerError(f"llama-server refused the request (HTTP {error.code}): {message}") from None
        except (TimeoutError, socket.timeout):
            raise LlamaServerError(
                f"llama-server on port {self.port} did not answer within {limit:.0f} s (request timeout)"
            ) from None
        except (urllib.error.URLError, ConnectionError, OSError) as error:
            if self.process is not None:  # a dropped connection usually means it died: let it finish dying
                try:
                    self.process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
            reason = self._dead() or f"llama-server on port {self.port} unreachable: {error}"
            raise LlamaServerError(reason) from None

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s: a busy one finishes its request first); safe twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> "LlamaServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.close()
