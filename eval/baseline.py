"""Is our target-only loop as fast as transformers' own ``generate()``?

Every speedup is a ratio over target-only decoding, so a slow baseline would
inflate all of them. This measures both on the same model and prompts,
interleaved (ours, theirs, ours, theirs, ...) so machine drift hits both,
and reports the median of per-prompt time ratios.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from svip.adapters.vanilla import SpeculativeEngine

__all__ = ["BaselineComparison", "compare_with_hf_generate"]


@dataclass
class BaselineComparison:
    ours_seconds: list[float]
    hf_seconds: list[float]
    tokens: int
    outputs_identical: bool

    @property
    def median_ratio(self) -> float:
        """Median over runs of ours/hf wall time (< 1: ours is faster)."""
        return statistics.median(o / h for o, h in zip(self.ours_seconds, self.hf_seconds))


@torch.inference_mode()
def compare_with_hf_generate(
    model, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, repeats: int = 1
) -> BaselineComparison:
    """Greedy, fixed length (no EOS stop), one warm-up pair first."""
    engine = SpeculativeEngine(model)
    device = model.get_input_embeddings().weight.device
    ours, hf, identical = [], [], True

    def run_hf(prompt):
        ids = torch.tensor([list(prompt)], device=device)
        output = model.generate(
            ids,
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            do_sample=False,
            attention_mask=torch.ones_like(ids),
        )
        return output[0, ids.shape[1] :].tolist()

    engine.generate(prompts[0], max_new_tokens=4)
    run_hf(prompts[0])
    for _ in range(repeats):
        for prompt in prompts:
            start = time.perf_counter()
            mine = engine.generate(prompt, max_new_tokens=max_new_tokens).tokens
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            theirs = run_hf(prompt)
            hf.append(time.perf_counter() - start)
            identical &= mine == theirs
    return BaselineComparison(ours, hf, max_new_tokens, identical)
