"""EAGLE's own models: one ``EaModel`` (the target's base model + the head) serves a run's eagle2 methods and its target-only.

The kind loads them (``MethodKind.load_models``) from the run's target name and
``--eagle-head``; the generator is the run's shared resource ``eagle-generator``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from svip.method import InputError
from svip.sampling import SamplingConfig

from ..kinds import ModelSet, Option
from ..loading import ModelRequest, load_tokenizer, resolve
from .export import exported_base
from .method import EAGLE_PREFIX

if TYPE_CHECKING:
    from .generator import EagleGenerator

__all__ = ["HEAD_OPTION", "eagle_models", "generator_of", "load_eagle_models"]

HEAD_OPTION = Option(
    "eagle_head",
    "EAGLE-1/2/3 head for methods eagle2[:total=60,depth=7,top_k=10] and "
    "eagle2[:...,variant=min|weighted|top]+svip[:h=0.3,gamma=0.15]; runs the patched upstream EaModel "
    "(make eagle-setup; its venv), and target-only on the same base model. Shipped: adapters/eagle/heads/smollm2-135m",
    metavar="DIR_OR_HUB_ID",
)
_GENERATOR = "eagle-generator"  # the run's EagleGenerator in ModelSet.shared


def eagle_models(generator: EagleGenerator, tokenizer=None, request: ModelRequest | None = None) -> ModelSet:
    """The ``ModelSet`` of an EAGLE run around ``generator`` (target-only decodes on its base model)."""
    models = ModelSet(
        tokenizer=tokenizer,
        sampling=generator.sampling,
        options=dict(request.options) if request is not None else {},
        request=request,
        loaded_by=EAGLE_PREFIX,
        target_only=generator.target_only_method,
    )
    models.shared(_GENERATOR, lambda: generator)
    return models


def load_eagle_models(request: ModelRequest, sampling: SamplingConfig) -> ModelSet:
    """``EaModel`` on the target's base model (exported for EAGLE's transformers) with the run's head."""
    from .generator import EagleGenerator

    if request.memory_first_gpu is not None or request.memory_per_gpu is not None:
        raise ValueError(
            "--memory-first-gpu/--memory-per-gpu: EAGLE runs place the model with --device (EaModel's device_map)"
        )
    head = request.options.get(HEAD_OPTION.name)
    if not head:
        raise InputError(f"EAGLE runs need a head ({HEAD_OPTION.flag} {HEAD_OPTION.metavar})")
    base = exported_base(request.target, resolve(request.target))
    request.target_placement  # the same checks (dtype, kernels) as any load
    generator = EagleGenerator(
        base, head, dtype=request.dtype, device=request.device, sampling=sampling, kernels=request.kernels
    )
    return eagle_models(generator, load_tokenizer(base), request)


def generator_of(models: ModelSet, method: str) -> EagleGenerator:
    """The run's ``EagleGenerator``; a set without one gets told how to make one."""

    def missing() -> EagleGenerator:
        raise InputError(f"{method} runs on EAGLE's EaModel: give the run an EAGLE head ({HEAD_OPTION.flag})")

    return models.shared(_GENERATOR, missing)
