"""Load a model by zoo name, local path or Hugging Face id, onto the requested devices.

Zoo names (``smollm2-135m``, the Qwen pair) resolve to the offline cache and
are prepared on first use; anything else goes to transformers unchanged, so
a user with network and GPUs can pass ``lmsys/vicuna-7b-v1.3``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import torch

from svip.kernels import KERNELS, pack_linears
from svip.runtime import DTYPES

from . import models as zoo

__all__ = [
    "DTYPES",
    "ModelLoadError",
    "ModelRequest",
    "Placement",
    "check_same_tokenizer",
    "keep_first_layers",
    "load_model",
    "load_models",
    "load_tokenizer",
    "resolve",
]


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
    kernels: str = "default"  # "onednn": fp32 CPU linears with packed weights (svip.kernels)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {self.kernels!r}")
        if self.kernels == "onednn" and (self.dtype != "fp32" or self.device != "cpu"):
            raise ValueError(f"--kernels onednn packs fp32 weights on the CPU; got {self.dtype} on {self.device}")
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
    pack_linears(model, placement.kernels)
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


@dataclass(frozen=True)
class ModelRequest:
    """Which models a command loads and where: the one loading path of ``generate``, ``check-lossless``, ``bench``."""

    target: str
    draft: str | None = None
    draft_layers: int | None = None
    device: str = "cpu"
    dtype: str = "fp32"
    memory_first_gpu: float | None = None  # GiB on GPU 0 for the target (accelerate device map)
    memory_per_gpu: float | None = None  # GiB on every other GPU
    eagle_head: str | None = None  # an EAGLE run: EaModel on the target's base model + this head
    kernels: str = "default"  # matmul kernels of the linear layers (svip.kernels): default or onednn
    glide_draft: str | None = None  # a GliDe draft directory (glide* methods), built on its base model

    @classmethod
    def of(cls, source) -> "ModelRequest":
        """From any object with these attribute names (parsed CLI args, a ``BenchConfig``)."""
        return cls(**{f.name: getattr(source, f.name, f.default) for f in fields(cls)})

    @property
    def target_placement(self) -> Placement:
        return Placement(self.device, self.dtype, self.memory_first_gpu, self.memory_per_gpu, self.kernels)

    @property
    def draft_placement(self) -> Placement:
        # With a multi-GPU map for the target, the draft sits on GPU 0 beside the target's first shard (the SVIP repo's layout).
        device = "cuda:0" if self.target_placement.max_memory() else self.device
        return Placement(device, self.dtype, kernels=self.kernels)


def load_models(request: ModelRequest, sampling=None, *, record_cross_entropy: bool = False):
    """A ``ModelSet`` for the request: target, draft (tokenizers checked) and tokenizer, or an EAGLE generator."""
    from svip.adapters.kinds import ModelSet
    from svip.sampling import SamplingConfig

    sampling = sampling or SamplingConfig()
    if request.eagle_head:
        from svip.adapters.eagle.generator import EagleGenerator

        from .eagle.export import eagle_base

        if request.memory_first_gpu is not None or request.memory_per_gpu is not None:
            raise ValueError(
                "--memory-first-gpu/--memory-per-gpu: EAGLE runs place the model with --device (EaModel's device_map)"
            )
        base = eagle_base(request.target)
        request.target_placement  # the same checks (dtype, kernels) as any load
        generator = EagleGenerator(
            base,
            request.eagle_head,
            dtype=request.dtype,
            device=request.device,
            sampling=sampling,
            kernels=request.kernels,
        )
        return ModelSet(tokenizer=load_tokenizer(base), sampling=sampling, eagle=generator)
    tokenizer = load_tokenizer(request.target)
    target = load_model(request.target, request.target_placement)
    draft = None
    if request.draft:
        check_same_tokenizer(tokenizer, load_tokenizer(request.draft))
        draft = load_model(request.draft, request.draft_placement, layers=request.draft_layers)
    glide = load_glide_draft(request.glide_draft, target, request.draft_placement, tokenizer) if request.glide_draft else None
    return ModelSet(target, draft, tokenizer, sampling, record_cross_entropy, glide=glide)


def load_glide_draft(directory: str, target, placement: Placement, tokenizer=None):
    """A ``GlideDraft`` for ``target``: its base model cut to the kept layers (fp32, to merge LoRA), then placed."""
    from svip.adapters.glide.draft import GlideConfig, GlideDraft

    try:
        config = GlideConfig.read(directory)
    except FileNotFoundError as error:
        raise ModelLoadError(str(error)) from None
    if tokenizer is not None:
        check_same_tokenizer(tokenizer, load_tokenizer(config.base))
    base = load_model(config.base, Placement(placement.device, "fp32"), layers=config.layers)
    try:
        glide = GlideDraft.from_pretrained(directory, base, target)
    except ValueError as error:
        raise ModelLoadError(str(error)) from None
    glide = glide.to(DTYPES[placement.dtype]).eval()
    pack_linears(glide, placement.kernels)
    return glide
