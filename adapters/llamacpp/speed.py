"""A server's decoding speed, checked against llama-bench's curve before its column counts.

On an AMX Xeon one ``llama-server`` process in a few ran slow for its whole life: it timed one target forward at
83-103 ms where llama-bench and the other servers of the same run read 60-72 ms, and decoded every question at 0.72-0.76
of the target-only server's speed. A ratio between two such servers measures the processes, not the rules. So each
server the harness starts decodes a fixed prompt target-only first, and one slower than llama-bench's curve predicts
is stopped and started again.

What a token should cost: a target-only server decodes one target step (llama-bench's ``target_step_s``). A
speculative one asked for ``speculative.n_max`` 0 drafts nothing, but its draft still decodes every token to keep its
memory in step with the target's, so a token costs a target step plus a draft step (``draft_over_step``). Measured on
the Xeon (Q8_0 Qwen2.5-Coder 1.5B/0.5B): llama-bench 66.4 + 23.6 ms; the servers 65-68 and 88-91 ms a token.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

from .server import LlamaServer

__all__ = [
    "SLOW",
    "SpeedCheck",
    "draft_over_step",
    "measure_token_seconds",
    "server_name",
    "start_at_speed",
    "start_checked",
]

SLOW = 1.15  # a token dearer than this times the curve's prediction: a slow process (normal spread: within 5%)
STARTS = 3  # a server is started at most this often before the run goes on with the last one, flagged
CHECK_PROMPT = tuple(range(1000, 1048))  # any 48 tokens: the check times the decoding, not the text
CHECK_TOKENS = 32
CHECK_REPEATS = 2  # the faster one counts: a slow process is slow in both, a hiccup in one


@dataclass(frozen=True)
class SpeedCheck:
    """One start's check: seconds per decoded token, measured and predicted by the curve."""

    measured_s: float
    expected_s: float

    @property
    def ratio(self) -> float:
        return self.measured_s / self.expected_s

    @property
    def slow(self) -> bool:
        return self.ratio > SLOW


def expected_token_seconds(curve: dict, draft_over_step: float | None) -> float:
    """A target step, plus a draft step when the server has a draft (``draft_over_step`` of the target's)."""
    return curve["target_step_s"] * (1.0 + (draft_over_step or 0.0))


def measure_token_seconds(server: LlamaServer, drafts: bool) -> float:
    """Seconds per token of the server's own decoding (llama.cpp's timings, no HTTP or prefill), nothing drafted."""
    payload: dict = {
        "prompt": list(CHECK_PROMPT),
        "n_predict": CHECK_TOKENS,
        "ignore_eos": True,
        "temperature": 0.0,
        "top_k": 1,
        "cache_prompt": False,
    }
    if drafts:
        payload["speculative.n_max"] = 0
    seconds = []
    for _ in range(CHECK_REPEATS):
        timings = server.post("/completion", payload)["timings"]
        seconds.append(float(timings["predicted_ms"]) / 1e3 / max(1, int(timings["predicted_n"])))
    return min(seconds)


def start_at_speed(
    start: Callable[[], LlamaServer],
    expected_s: float,
    drafts: bool,
    *,
    measure: Callable[[LlamaServer, bool], float] = measure_token_seconds,
    starts: int = STARTS,
) -> tuple[LlamaServer, list[SpeedCheck]]:
    """A started server that decodes at the curve's speed, or after ``starts`` tries the last one; every try's check.

    A slow server is closed before the next starts: two servers of one role never hold memory together.
    """
    checks: list[SpeedCheck] = []
    for attempt in range(starts):
        server = start()
        try:
            checks.append(SpeedCheck(measure(server, drafts), expected_s))
        except BaseException:
            server.close()
            raise
        if not checks[-1].slow or attempt == starts - 1:
            return server, checks
        server.close()
    raise ValueError(f"starts must be at least 1, got {starts}")


def _record(server: str, checks: list[SpeedCheck]) -> dict:
    """What a run stores of one server's starts: the curve's ms a token, each start's, and whether the kept one is slow."""
    return {
        "server": server,
        "expected_ms": round(1e3 * checks[-1].expected_s, 2),
        "token_ms": [round(1e3 * check.measured_s, 2) for check in checks],
        "ratio": round(checks[-1].ratio, 3),
        "slow": checks[-1].slow,
    }


def _line(server: str, checks: list[SpeedCheck]) -> str:
    """One progress line: the kept start's ms a token against the curve's, and the slow starts it replaced."""
    last = checks[-1]
    text = f"llama-server {server}: {1e3 * last.measured_s:.1f} ms a token, the curve predicts {1e3 * last.expected_s:.1f}"
    if len(checks) > 1:
        text += f"; started {len(checks)} times (" + ", ".join(f"{1e3 * c.measured_s:.1f}" for c in checks) + " ms)"
    return text + (f"; STILL SLOW ({last.ratio:.2f}x), its times are unreliable" if last.slow else "")


def server_name(draft_gguf: str | None, args: tuple[str, ...] = ()) -> str:
    """How a run's records and progress name a server: ``target-only``, or ``speculative:<draft type> <flags>``."""
    return "target-only" if draft_gguf is None else f"speculative:{draft_gguf} {' '.join(args)}".strip()


def draft_over_step(curve: dict, gguf: str, draft_gguf: str) -> float | None:
    """The curve's draft step over the target's step for a draft of type ``draft_gguf`` (None: not measured)."""
    if draft_gguf == gguf:
        return curve.get("draft_over_step")
    return (curve.get("draft_over_step_by_gguf") or {}).get(draft_gguf)


def start_checked(
    launch: Callable[[], LlamaServer],
    curve: dict | None,
    gguf: str,
    draft_gguf: str | None,
    args: tuple[str, ...] = (),
    *,
    label: str = "",
    prefix: str,
) -> LlamaServer:
    """``launch`` until the server decodes at the speed of llama-bench's ``curve`` (``start_at_speed``); a speculative
    server when ``draft_gguf`` is given. The checks are printed and kept in ``curve["servers"]``. Without a curve, or
    without the curve's price of that draft, the server is launched unchecked."""
    over = draft_over_step(curve, gguf, draft_gguf) if curve is not None and draft_gguf is not None else None
    drafts = draft_gguf is not None
    if curve is None or (drafts and over is None):
        return launch()
    server = f"{label} {server_name(draft_gguf, args)}".strip()
    running, checks = start_at_speed(launch, expected_token_seconds(curve, over), drafts)
    curve.setdefault("servers", []).append(_record(server, checks))
    print(f"[{prefix}] {_line(server, checks)}", file=sys.stderr, flush=True)
    return running
