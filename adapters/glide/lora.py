"""Low-rank updates for the draft's kept layers: trained as adapters, shipped small, merged at load.

Why LoRA: the GliDe draft keeps the first layers of a real draft model
(Qwen2.5-Coder-0.5B) whose later layers it drops, so those layers must be
re-tuned to feed the LM head directly. Tuning them in full would make the
trained part ~60 MB per layer pair; rank-16 updates are ~0.4M parameters per
layer. At load time ``merge`` folds them into the weights, so drafting costs
exactly the plain layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LoraLinear", "add_lora", "lora_state", "merge_lora"]


class LoraLinear(nn.Module):
    """``base(x) + scale * x A^T B^T`` with ``base`` frozen; ``B`` starts at zero (the base layer exactly)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        for parameter in base.parameters():
            parameter.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale


def add_lora(module: nn.Module, rank: int, alpha: float) -> dict[str, LoraLinear]:
    """Wrap every ``nn.Linear`` under ``module``; returns them by their dotted names (relative to ``module``)."""
    wrapped: dict[str, LoraLinear] = {}
    for name, child in list(module.named_modules()):
        for attribute, linear in list(child.named_children()):
            if isinstance(linear, nn.Linear):
                full = f"{name}.{attribute}" if name else attribute
                wrapped[full] = LoraLinear(linear, rank, alpha)
                setattr(child, attribute, wrapped[full])
    return wrapped


def lora_state(wrapped: dict[str, LoraLinear]) -> dict[str, torch.Tensor]:
    """``{name.lora_a, name.lora_b}`` tensors to save."""
    state = {}
    for name, layer in wrapped.items():
        state[f"{name}.lora_a"] = layer.lora_a.detach()
        state[f"{name}.lora_b"] = layer.lora_b.detach()
    return state


@torch.no_grad()
def merge_lora(module: nn.Module, state: dict[str, torch.Tensor], scale: float) -> int:
    """Add ``scale * B @ A`` to each named plain ``nn.Linear`` under ``module``; returns how many were merged."""
    names = {key.rsplit(".", 1)[0] for key in state}
    for name in names:
        linear = module.get_submodule(name)
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"LoRA update for {name!r}, which is not a plain nn.Linear ({type(linear).__name__})")
        a, b = state[f"{name}.lora_a"].float(), state[f"{name}.lora_b"].float()
        if (b.shape[0], a.shape[1]) != tuple(linear.weight.shape):
            raise ValueError(
                f"LoRA update for {name!r} has shape {(b.shape[0], a.shape[1])}, the layer {tuple(linear.weight.shape)}"
            )
        linear.weight += (scale * (b @ a)).to(linear.weight.dtype)
    return len(names)
