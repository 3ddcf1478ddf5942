"""Placement flags map to an accelerate ``max_memory`` device map; bad values are refused."""

from __future__ import annotations

import pytest
import torch

from svip.eval.loading import Placement, keep_first_layers

from helpers import tiny_llama


def test_single_device_by_default():
    assert Placement().max_memory() is None


def test_memory_flags_map_to_max_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert Placement(memory_first_gpu=10, memory_per_gpu=40).max_memory() == {0: "10GiB", 1: "40GiB", 2: "40GiB"}
    assert Placement(memory_per_gpu=24).max_memory() == {0: "24GiB", 1: "24GiB", 2: "24GiB"}


def test_memory_flags_without_gpus_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match="need CUDA GPUs"):
        Placement(memory_per_gpu=24).max_memory()


@pytest.mark.parametrize("bad", [dict(dtype="int8"), dict(memory_per_gpu=0), dict(memory_first_gpu=-1)])
def test_bad_placement(bad):
    with pytest.raises(ValueError):
        Placement(**bad)


def test_keep_first_layers():
    model = keep_first_layers(tiny_llama(layers=4), 2)
    assert len(model.model.layers) == 2 and model.config.num_hidden_layers == 2
    with torch.inference_mode():
        assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 64)
    with pytest.raises(ValueError, match="layers must be"):
        keep_first_layers(tiny_llama(layers=2), 3)
