"""SVIP inside Hugging Face transformers' assisted generation.

    from svip.adapters import hf
    hf.enable(draft)                      # SVIP, h=0.3, gamma=0.15, at most 40 tokens per round
    target.generate(**inputs, assistant_model=draft, max_new_tokens=256)
    hf.disable(draft)                     # plain transformers again

``AssistedGenerator`` runs the same thing for the eval harness and reports
rounds and timings in the vanilla engine's ``GenerationResult`` format.
"""

from .assisted import AssistedGenerator, sklearn_refit_available
from .hook import DraftRound, SvipHook, disable, enable, hook_of

__all__ = ["AssistedGenerator", "DraftRound", "SvipHook", "disable", "enable", "hook_of", "sklearn_refit_available"]
