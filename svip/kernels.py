"""CPU matmul kernels for the linear layers: MKL (torch's default) or oneDNN with packed weights.

Why this exists: speculative decoding pays only if verifying k tokens costs
little more than one. On some CPUs torch's default fp32 path (MKL ``sgemm``)
repacks the whole weight matrix on every call with a few rows of input, so a
forward over 2-8 tokens costs 2-3 one-token steps (measured on an AMD EPYC
family 25, AVX2 only: Qwen2.5-Coder-1.5B verify(4) = 2.5 steps), and no draft
can win. oneDNN with the weights packed once at load time reads them once
per call (same model: verify(4) = 1.7 steps). The output is the same
function computed by another kernel (fp32 rounding may differ in the last
bits, as between any two BLAS libraries); losslessness is judged within one
process, where target-only and speculative decoding share the kernels.

``pack_linears`` is opt-in (``--kernels onednn``): which kernel is faster is
a property of the machine, so a run records its choice with its cost curve.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["KERNELS", "PackedLinear", "pack_linears"]

KERNELS = ("default", "onednn")


class PackedLinear(nn.Module):
    """``nn.Linear`` with its weight packed for oneDNN once (inference only, CPU, fp32).

    Why not keep ``weight``: a dense copy beside the packed one doubles the
    model's memory. Code that needs the dense rows (a reduced draft
    vocabulary, say) takes them before packing.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        self.register_buffer("packed_weight", weight.to_mkldnn(), persistent=False)
        bias = linear.bias.detach() if linear.bias is not None else torch.zeros(self.out_features, dtype=weight.dtype)
        self.register_buffer("packed_bias", bias.to_mkldnn(), persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        """The weight's shape, dtype and device for code that asks (a vocabulary size, where to put a KV cache).

        A NaN broadcast to the shape (no memory): any arithmetic with it shows at once, none is expected.
        """
        return torch.full((), float("nan"), device=self.packed_bias.device).expand(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1]).contiguous().to_mkldnn()
        y = torch._C._nn.mkldnn_linear(flat, self.packed_weight, self.packed_bias)
        return y.to_dense().reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, kernel=onednn"


def pack_linears(module: nn.Module, kernels: str = "onednn") -> int:
    """Replace every fp32 CPU ``nn.Linear`` under ``module`` by a ``PackedLinear``; returns how many.

    ``kernels="default"`` leaves the module as it is (returns 0). Layers on
    another device or dtype are left alone: oneDNN packing is a CPU fp32 path.
    """
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {kernels!r}")
    if kernels == "default":
        return 0
    if not torch.backends.mkldnn.is_available():
        raise RuntimeError("--kernels onednn: this torch build has no oneDNN (torch.backends.mkldnn)")
    replaced = 0
    with torch.no_grad():
        for parent in list(module.modules()):
            for name, child in list(parent.named_children()):
                if (
                    type(child) is nn.Linear
                    and child.weight.device.type == "cpu"
                    and child.weight.dtype == torch.float32
                ):
                    setattr(parent, name, PackedLinear(child))
                    replaced += 1
    return replaced
