"""Vanilla speculative decoding: one draft model, one target, a draft-length policy.

``DraftProposer`` (draft side) and ``TargetScorer`` (target side) never call
each other; ``SpeculativeEngine`` runs the rounds between them.
"""

from .engine import InputError, SpeculativeEngine, vocab_size
from .sampling import SamplingConfig
from .stats import GenerationResult, RoundStats

__all__ = ["GenerationResult", "InputError", "RoundStats", "SamplingConfig", "SpeculativeEngine", "vocab_size"]
