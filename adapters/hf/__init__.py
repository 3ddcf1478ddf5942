"""SVIP inside Hugging Face transformers' assisted generation.

    from svip.adapters import hf
    hf.enable(draft)                      # SVIP, h=0.3, gamma=0.15, at most 40 tokens per round
    target.generate(**inputs, assistant_model=draft, max_new_tokens=256)
    hf.disable(draft)                     # plain transformers again

``enable`` makes transformers build a ``PolicyCandidateGenerator`` (its own
``AssistedCandidateGenerator``, subclassed) for that draft; ``AssistedGenerator``
runs the same thing for the eval harness and reports rounds and timings in
the common ``GenerationResult`` format.
"""

from .assisted import AssistedGenerator, sklearn_refit_available
from .candidates import PolicyCandidateGenerator
from .hook import SvipHook, disable, enable, hook_of, install_dispatch

__all__ = [
    "AssistedGenerator",
    "PolicyCandidateGenerator",
    "SvipHook",
    "disable",
    "enable",
    "hook_of",
    "install_dispatch",
    "sklearn_refit_available",
]
