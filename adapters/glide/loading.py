"""Load a trained GliDe draft for a target: its base model cut to the kept layers, the draft's files merged on top."""

from __future__ import annotations

from svip.kernels import pack_linears
from svip.runtime import DTYPES

from ..loading import ModelLoadError, Placement, check_same_tokenizer, load_model, load_tokenizer
from .draft import GlideConfig, GlideDraft

__all__ = ["load_glide_draft"]


def load_glide_draft(directory: str, target, placement: Placement = Placement(), tokenizer=None) -> GlideDraft:
    """A ``GlideDraft`` for ``target``: its base model cut to the kept layers (fp32, to merge LoRA), then placed."""
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
