"""oneDNN-packed linear layers (svip.kernels): same function as nn.Linear, and losslessness kept end to end."""

from __future__ import annotations

import pytest
import torch

from svip.kernels import PackedLinear, pack_linears

from helpers import tiny_llama


def test_packed_linear_computes_what_the_linear_layer_computes():
    torch.manual_seed(0)
    for bias in (True, False):
        linear = torch.nn.Linear(48, 80, bias=bias)
        packed = PackedLinear(linear)
        for shape in ((1, 48), (3, 48), (2, 5, 48)):
            x = torch.randn(*shape)
            assert torch.allclose(packed(x), linear(x), atol=1e-5), (bias, shape)
            assert packed(x).shape == linear(x).shape
    assert packed.weight.shape == (80, 48) and packed.weight.device.type == "cpu" and packed.weight.dtype == torch.float32
    assert packed.weight.stride() == (0, 0) and packed.weight.isnan().all()  # no second copy: shape, device, dtype only


def test_pack_linears_replaces_every_cpu_fp32_linear_and_keeps_greedy_outputs():
    model = tiny_llama(seed=3)
    prompt = torch.tensor([[5, 9, 2, 33, 17]])
    expected = model.generate(prompt, max_new_tokens=12, do_sample=False)
    logits = model(prompt).logits
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())
    assert pack_linears(model, "onednn") == linears == 2 * 7 + 1  # q,k,v,o,gate,up,down per layer + LM head
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    assert torch.allclose(model(prompt).logits, logits, atol=1e-5)
    assert torch.equal(model.generate(prompt, max_new_tokens=12, do_sample=False), expected)


def test_pack_linears_default_is_a_no_op_and_other_dtypes_are_left_alone():
    model = tiny_llama(seed=4)
    assert pack_linears(model, "default") == 0
    assert pack_linears(tiny_llama(seed=4).to(torch.bfloat16), "onednn") == 0
    with pytest.raises(ValueError, match="kernels must be one of"):
        pack_linears(model, "mkl")


def test_the_loader_refuses_onednn_kernels_where_they_do_not_apply():
    from svip.eval.loading import ModelRequest, Placement

    with pytest.raises(ValueError, match="fp32 weights on the CPU"):
        Placement(dtype="bf16", kernels="onednn")
    with pytest.raises(ValueError, match="kernels must be one of"):
        ModelRequest(target="x", kernels="fast").target_placement
    assert ModelRequest(target="x", kernels="onednn").draft_placement.kernels == "onednn"


def test_engine_output_is_unchanged_by_packed_kernels():
    from svip.adapters.vanilla import SpeculativeEngine
    from svip.spec import make_policy

    target, draft = tiny_llama(seed=5), tiny_llama(seed=6, layers=1)
    prompt = [3, 14, 15, 9, 26]
    reference = SpeculativeEngine(target).generate(prompt, max_new_tokens=16).tokens
    pack_linears(target, "onednn")
    pack_linears(draft, "onednn")
    engine = SpeculativeEngine(target, draft)
    for policy in ("constant:k=3", "svip:h=0.3"):
        assert engine.generate(prompt, max_new_tokens=16, policy=make_policy(policy)).tokens == reference, policy
