"""Load a model by name, local path or Hugging Face id, onto the requested devices.

The loading primitives every kind may need (a GliDe draft's base model, the
tokenizer beside an EAGLE head) live here so adapters never import the
harness. Short names such as the harness's offline zoo (``smollm2-135m``)
are a source the harness registers (``register_names``); anything else goes
to transformers unchanged, so a user with network and GPUs can pass
``lmsys/vicuna-7b-v1.3``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Collection, Mapping

import torch

from svip.kernels import KERNELS, pack_linears
from svip.runtime import DTYPES

if TYPE_CHECKING:
    from .kinds import Method

__all__ = [
    "DTYPES",
    "ModelLoadError",
    "ModelRequest",
    "Placement",
    "check_same_tokenizer",
    "keep_first_layers",
    "load_model",
    "load_tokenizer",
    "register_names",
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


_NAMES: list[tuple[Collection[str], Callable[[str], str | Path]]] = []


def register_names(names: Collection[str], directory: Callable[[str], str | Path]) -> None:
    """Let ``names`` stand for local directories (``directory(name)`` prepares one on first use).

    The harness registers its offline zoo here, so an adapter loading a model
    by a name stored in its own files (a GliDe draft's base) finds it too.
    """
    _NAMES.append((names, directory))


def resolve(name_or_path: str) -> str:
    """A registered short name -> its local directory (prepared if needed); else unchanged."""
    for names, directory in _NAMES:
        if name_or_path in names:
            return str(directory(name_or_path))
    return name_or_path


def _describe_missing(name_or_path: str, error: Exception) -> ModelLoadError:
    looks_local = name_or_path.startswith((".", "/", "~")) or Path(name_or_path).exists()
    where = "no such local directory" if looks_local and not Path(name_or_path).exists() else "not loadable"
    known = ", ".join(name for names, _ in _NAMES for name in names)
    return ModelLoadError(
        f"cannot load model {name_or_path!r} ({where}): it is not a zoo name ({known}), "
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
    """Which models a command loads and where: the one loading path of ``generate``, ``check-lossless``, ``bench``.

    ``options`` holds the run-level settings the kinds declare (``Option``: a
    head, a draft directory, a server binary), by option name. ``methods`` are
    the methods the models are for: a kind among them that brings its own
    models (``MethodKind.load_models``) loads them instead of target + draft.
    """

    target: str
    draft: str | None = None
    draft_layers: int | None = None
    device: str = "cpu"
    dtype: str = "fp32"
    memory_first_gpu: float | None = None  # GiB on GPU 0 for the target (accelerate device map)
    memory_per_gpu: float | None = None  # GiB on every other GPU
    kernels: str = "default"  # matmul kernels of the linear layers (svip.kernels): default or onednn
    options: Mapping[str, str | None] = field(default_factory=dict)
    methods: tuple[Method, ...] = ()

    def __post_init__(self) -> None:
        from .registry import parse

        object.__setattr__(self, "options", dict(self.options))
        object.__setattr__(self, "methods", tuple(parse(m) for m in self.methods))

    @classmethod
    def of(cls, source, **given) -> "ModelRequest":
        """From any object with these attribute names (parsed CLI args, a ``BenchConfig``); ``given`` overrides."""
        found = {f.name: getattr(source, f.name) for f in fields(cls) if hasattr(source, f.name)}
        return cls(**{**found, **given})

    @property
    def target_placement(self) -> Placement:
        return Placement(self.device, self.dtype, self.memory_first_gpu, self.memory_per_gpu, self.kernels)

    @property
    def draft_placement(self) -> Placement:
        # With a multi-GPU map for the target, the draft sits on GPU 0 beside the target's first shard (the SVIP repo's layout).
        device = "cuda:0" if self.target_placement.max_memory() else self.device
        return Placement(device, self.dtype, kernels=self.kernels)
