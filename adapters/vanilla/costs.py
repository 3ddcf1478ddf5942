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

__all__ = ["measure_cost_curve"]


def _median_seconds(model: CachedCausalLM, base: int, tokens: list[int], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.forward(tokens, len(tokens))
        times.append(time.perf_counter() - start)
        model.crop(base)
    return statistics.median(times)


@torch.inference_mode()
def measure_cost_curve(engine, prompt: Sequence[int], sizes: Sequence[int] = (2, 4, 8), repeats: int = 5) -> dict:
    """Median seconds of a target step, verify(k)/step for ``sizes`` and draft step/target step.

    ``engine`` is a ``SpeculativeEngine``; its caches are reset afterwards.
    """
    prompt = [int(t) for t in prompt]
    filler = prompt[-1]
    curve: dict = {"repeats": repeats, "prompt_tokens": len(prompt)}
    target = engine.target.model
    target.reset()
    target.forward(prompt, 1)
    base = target.cached_length
    step = _median_seconds(target, base, [filler], repeats)
    curve["target_step_s"] = step
    curve["verify_over_step"] = {str(k): _median_seconds(target, base, [filler] * k, repeats) / step for k in sizes}
    target.reset()
    if engine.draft is not None:
        draft = engine.draft.model
        draft.reset()
        draft.forward(prompt, 1)
        curve["draft_over_step"] = _median_seconds(draft, draft.cached_length, [filler], repeats) / step
        draft.reset()
    return curve
