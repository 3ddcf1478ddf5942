"""A stand-in for ``llama-server`` for tests of the harness's server handling (not of llama.cpp).

It speaks the two endpoints the harness uses: ``/health`` and ``/completion``
(token-id prompt in, ``tokens`` and ``timings`` out; the continuation is the
prompt's last token + 1, + 2, ... so outputs are predictable). Its behaviour
comes from ``FAKE_LLAMA_MODE``: ``ok``; ``die-after=N`` (exits during the
N+1-th completion); ``hang`` (never answers a completion); ``fail-start``
(exits at once with a message); ``slow-start`` (healthy after 1 s). Its
timings say each token took ``FAKE_LLAMA_TOKEN_MS`` (default 1). Draft
rounds are reported when a request asks ``speculative.rounds`` and has a
draft model (``-md``): two tokens drafted and one accepted per round.
"""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _argument(name: str, default: str | None = None) -> str | None:
    args = sys.argv[1:]
    return args[args.index(name) + 1] if name in args else default


MODE = os.environ.get("FAKE_LLAMA_MODE", "ok")
STARTED = time.monotonic()
COUNT_FILE = os.environ.get("FAKE_LLAMA_COUNT")  # where completions are counted (one line each)
HAS_DRAFT = "-md" in sys.argv


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output quiet; the log file still gets our prints
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            loading = MODE == "slow-start" and time.monotonic() - STARTED < 1.0
            self._send(503 if loading else 200, {"status": "loading model" if loading else "ok"})
        else:
            self._send(404, {"error": {"code": 404, "message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        served = 0
        if COUNT_FILE:
            with open(COUNT_FILE, "a+") as handle:
                handle.seek(0)
                served = len(handle.read().splitlines())
                handle.write("x\n")
        if MODE.startswith("die-after=") and served >= int(MODE.partition("=")[2]):
            print("fake: dying mid-run", flush=True)
            os._exit(3)
        if MODE == "hang":
            time.sleep(3600)
        prompt = body.get("prompt")
        if not isinstance(prompt, list) or not prompt:
            self._send(400, {"error": {"code": 400, "message": "prompt must be a non-empty list of tokens"}})
            return
        n = int(body.get("n_predict", 16))
        tokens = [(prompt[-1] + i + 1) % 1000 for i in range(n)]
        token_ms = float(os.environ.get("FAKE_LLAMA_TOKEN_MS", "1.0"))
        timings = {"predicted_n": n, "predicted_ms": token_ms * n, "prompt_n": len(prompt), "prompt_ms": 1.0}
        if HAS_DRAFT and body.get("speculative.rounds"):
            rounds = [{"drafted": 2, "accepted": 1, "entropies": [0.1, 0.5]} for _ in range(n // 2)]
            timings.update(draft_rounds=rounds, draft_n=2 * len(rounds), draft_n_accepted=len(rounds))
        self._send(200, {"tokens": tokens, "content": "", "timings": timings, "echo": body})


def main() -> None:
    if MODE == "fail-start":
        print("error: failed to load model 'missing.gguf'", flush=True)
        sys.exit(1)
    port = int(_argument("--port", "8080"))
    print(f"fake llama-server listening on {port} (mode {MODE}, draft {HAS_DRAFT})", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
