"""Load a model by zoo name, local path or Hugging Face id, onto the requested devices.

Zoo names (``smollm2-135m``, the Qwen pair) resolve to the offline cache and
are prepared on first use; anything else goes to transformers unchanged, so
a user with network and GPUs can pass ``lmsys/vicuna-7b-v1.3``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import models as zoo

__all__ = ["DTYPES", "ModelLoadError", "Placement", "load_model", "load_tokenizer", "resolve", "check_same_tokenizer", "keep_first_layers"]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class ModelLoadError(RuntimeError):
    """A model or tokenizer that cannot be found or does not fit the request."""


@dataclass(frozen=True)
class Placement:
    """Where weights go: one device, or (for the target) an accelerate ``max_memory`` map.

    ``memory_first_gpu``/``memory_per_gpu`` (GiB) mirror the SVIP repo's flags:
    the first GPU gets less so the draft model fits beside the target's shard.
    """

    device: str = "cpu"
    dtype: str = "fp32"
    memory_first_gpu: float | None = None
    memory_per_gpu: float | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for label, value in (("memory_first_gpu", self.memory_first_gpu), ("memory_per_gpu", self.memory_per_gpu)):
            if value is not None and value <= 0:
                raise ValueError(f"{label} must be > 0 GiB, got {value}")

    def max_memory(self) -> dict[int, str] | None:
        """accelerate ``max_memory`` over all visible GPUs, or None for single-device loading."""
        if self.memory_per_gpu is None and self.memory_first_gpu is None:
            return None
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError("--memory-first-gpu/--memory-per-gpu need CUDA GPUs; none are visible")
        per_gpu = self.memory_per_gpu if self.memory_per_gpu is not None else self.memory_first_gpu
        first = self.memory_first_gpu if self.memory_first_gpu is not None else per_gpu
        return {i: f"{first if i == 0 else per_gpu}GiB" for i in range(count)}


def resolve(name_or_path: str) -> str:
    """Zoo name -> prepared local directory (preparing it if needed); else unchanged."""
    if name_or_path in zoo.ZOO:
        return str(zoo.prepare(name_or_path))
    return name_or_path


def _describe_missing(name_or_path: str, error: Exception) -> ModelLoadError:
    looks_local = name_or_path.startswith((".", "/", "~")) or Path(name_or_path).exists()
    where = "no such local directory" if looks_local and not Path(name_or_path).exists() else "not loadable"
    return ModelLoadError(
        f"cannot load model {name_or_path!r} ({where}): it is not a zoo name ({', '.join(zoo.ZOO)}), "
        f"a directory with config.json, nor a Hugging Face id reachable from here. Cause: {error}"
    )


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve(name_or_path))
    except (OSError, ValueError) as error:
        raise _describe_missing(name_or_path, error) from error


def keep_first_layers(model, layers: int):
    """Truncate a decoder to its first ``layers`` blocks (a cheap self-draft for tests/ablations)."""
    blocks = model.model.layers
    if not 1 <= layers <= len(blocks):
        raise ValueError(f"layers must be in [1, {len(blocks)}], got {layers}")
    model.model.layers = blocks[:layers]
    model.config.num_hidden_layers = layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:layers]
    return model


def load_model(name_or_path: str, placement: Placement = Placement(), *, layers: int | None = None):
    """A causal LM in eval mode, on ``placement``; ``layers`` keeps only the first N blocks."""
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": DTYPES[placement.dtype]}
    max_memory = placement.max_memory()
    if max_memory is not None:
        kwargs.update(device_map="auto", max_memory=max_memory)
    try:
        model = AutoModelForCausalLM.from_pretrained(resolve(name_or_path), **kwargs)
    except (OSError, ValueError) as error:
        raise _describe_missing(name_or_path, error) from error
    if max_memory is None:
        model = model.to(placement.device)
    if layers is not None:
        keep_first_layers(model, layers)
    return model.eval()


def check_same_tokenizer(target_tokenizer, draft_tokenizer) -> None:
    """Speculative decoding is only lossless when both models tokenize identically."""
    if target_tokenizer.get_vocab() != draft_tokenizer.get_vocab():
        target_vocab, draft_vocab = target_tokenizer.get_vocab(), draft_tokenizer.get_vocab()
        differing = sorted(set(target_vocab.items()) ^ set(draft_vocab.items()))[:3]
        raise ModelLoadError(
            f"draft and target tokenizers differ ({len(draft_vocab)} vs {len(target_vocab)} entries; "
            f"e.g. {differing}): use a draft model from the target's family"
        )
