"""Vanilla speculative decoding: one draft model, one target, a draft-length policy.

``DraftProposer`` (draft side) and ``TargetScorer`` (target side) never call
each other; ``SpeculativeEngine`` runs the rounds between them and
``EngineMethod`` puts it behind the common ``svip.method.SpeculativeMethod``
interface. ``method.py`` registers the ``target-only`` and vanilla kinds.
"""

from svip.method import InputError
from svip.results import GenerationResult, RoundStats
from svip.sampling import SamplingConfig

from .engine import EngineMethod, SpeculativeEngine, vocab_size

__all__ = [
    "EngineMethod",
    "GenerationResult",
    "InputError",
    "RoundStats",
    "SamplingConfig",
    "SpeculativeEngine",
    "vocab_size",
]
