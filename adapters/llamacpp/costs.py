"""llama.cpp's own cost curve, measured by ``llama-bench`` on the run's GGUF files.

Whether any draft length pays is decided by verify(k)/step and draft/step,
and these differ between engines on one CPU (llama.cpp bf16 on an AMX Xeon:
verify(8) = 1.84 steps; our torch engine ~1.0). So a run with llama.cpp
methods stores llama.cpp's curve, measured the way its users would
(``llama-bench -p 1,2,4,8,16 -n 0``, at the prompt's depth), beside the
torch engine's.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path
from typing import Sequence

__all__ = ["SIZES", "bench_command", "cost_curve_from", "draft_step_over", "measure_cost_curve"]

SIZES = (1, 2, 4, 8, 16)


def bench_command(
    binary: Path,
    model: Path,
    *,
    sizes: Sequence[int] = SIZES,
    threads: int = 2,
    depth: int = 0,
    repeats: int = 5,
) -> list[str]:
    return [
        str(binary), "-m", str(model), "-p", ",".join(map(str, sizes)), "-n", "0", "-t", str(threads),
        "-d", str(depth), "-r", str(repeats), "-o", "json", "-ngl", "0",
    ]  # fmt: skip


def _seconds_per_forward(binary: Path, model: Path, sizes: Sequence[int], **kwargs) -> dict[int, tuple[float, float]]:
    """(mean seconds, stddev/mean) per forward of each size, as llama-bench reports them."""
    command = bench_command(binary, model, sizes=sizes, **kwargs)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise RuntimeError(f"llama-bench failed (exit {result.returncode}): {' '.join(command)}\n{tail}")
    rows = json.loads(result.stdout)
    return {
        int(row["n_prompt"]): (float(row["avg_ns"]) / 1e9, float(row.get("stddev_ns", 0.0)) / float(row["avg_ns"]))
        for row in rows
        if int(row["n_prompt"]) in sizes
    }


def cost_curve_from(
    target: dict[int, float], draft_step: float | None, *, depth: int, repeats: int, spread: float | None = None
) -> dict:
    """The torch engine's curve layout (``target_step_s``, ``verify_over_step``, ``draft_over_step``)."""
    step = target[1]
    curve: dict = {
        "engine": "llama.cpp",
        "tool": "llama-bench",
        "depth": depth,
        "repeats": repeats,
        "target_step_s": step,
    }
    curve["verify_over_step"] = {str(k): seconds / step for k, seconds in sorted(target.items()) if k != 1}
    if draft_step is not None:
        curve["draft_over_step"] = draft_step / step
    if spread is not None:
        curve["spread"] = spread
    return curve


def measure_cost_curve(
    binary: Path,
    target: Path,
    draft: Path | None,
    *,
    threads: int = 2,
    depth: int = 0,
    repeats: int = 5,
) -> dict:
    """Mean seconds of one target token, verify(k)/step for k in ``SIZES`` and the draft's step/target step."""
    common = {"threads": threads, "depth": depth, "repeats": repeats}
    measured = _seconds_per_forward(binary, target, SIZES, **common)
    draft_step = _step_seconds(binary, draft, **common) if draft is not None else None
    # llama-bench gives a stddev, not the repeats: 2 stddevs over the mean stands in for (max - min) / median
    spread = statistics.median(2 * relative for _, relative in measured.values())
    target_curve = {k: seconds for k, (seconds, _) in measured.items()}
    return cost_curve_from(target_curve, draft_step, depth=depth, repeats=repeats, spread=spread)


def _step_seconds(binary: Path, model: Path, **common) -> float:
    """Mean seconds of one one-token forward of ``model``."""
    return _seconds_per_forward(binary, model, (1,), **common)[1][0]


def draft_step_over(binary: Path, draft: Path, target_step_s: float, **common) -> float:
    """One step of another draft (a 4-bit file of the same model, say) over the target's step."""
    return _step_seconds(binary, draft, **common) / target_step_s
