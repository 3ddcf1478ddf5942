"""What a forward costs on this machine: the curve every speedup depends on.

A speculative round costs one draft step per drafted token plus one target
forward over k tokens. On a GPU verify(k) is close to a one-token step; on
a CPU it can be several steps, and then no draft length pays. The curve is
measured on the engine's own models and caches (KV cache at the prompt's
length, the same kernels a run uses) and stored with every run.
"""

from __future__ import annotations

import statistics
import time
from typing import Sequence

import torch

from .cached_model import CachedCausalLM

__all__ = ["measure_cost_curve", "relative_spread"]


def _seconds(model: CachedCausalLM, base: int, tokens: list[int]) -> float:
    start = time.perf_counter()
    model.forward(tokens, len(tokens))
    seconds = time.perf_counter() - start
    model.crop(base)
    return seconds


def _curve(model: CachedCausalLM, prompt: list[int], sizes: Sequence[int], repeats: int) -> dict[int, list[float]]:
    """Seconds per forward of k tokens after ``prompt`` (every repeat), sizes interleaved so drift hits them alike."""
    model.reset()
    model.forward(prompt, 1)
    base = model.cached_length
    filler = prompt[-1]
    for k in sizes:  # warm-up: allocator and kernels for every shape
        _seconds(model, base, [filler] * k)
    times: dict[int, list[float]] = {k: [] for k in sizes}
    for _ in range(repeats):
        for k in sizes:
            times[k].append(_seconds(model, base, [filler] * k))
    model.reset()
    return times


def relative_spread(times: dict[int, list[float]]) -> float:
    """How much repeats of one forward disagree: (max - min) / median per size, the median over sizes.

    On an idle machine this is a few percent; with other work on the cores it
    is tens of percent, and every figure measured beside it is noise.
    """
    return statistics.median((max(v) - min(v)) / statistics.median(v) for v in times.values())


@torch.inference_mode()
def measure_cost_curve(
    engine, prompt: Sequence[int], sizes: Sequence[int] = (2, 3, 4, 6, 8, 12, 16), repeats: int = 5
) -> dict:
    """Median seconds of a target step, verify(k)/step for ``sizes`` and draft step/target step.

    ``engine`` is a ``SpeculativeEngine``; its caches are left empty.
    """
    prompt = [int(t) for t in prompt]
    times = _curve(engine.target.model, prompt, (1, *sizes), repeats)
    target = {k: statistics.median(v) for k, v in times.items()}
    step = target[1]
    curve: dict = {"repeats": repeats, "prompt_tokens": len(prompt), "target_step_s": step}
    curve["verify_over_step"] = {str(k): target[k] / step for k in sizes}
    curve["spread"] = relative_spread(times)
    if engine.draft is not None:
        curve["draft_over_step"] = statistics.median(_curve(engine.draft.model, prompt, (1,), repeats)[1]) / step
    return curve
