"""svip: a dynamic draft length for speculative decoding (arXiv 2411.18462).

The core is framework-free (torch/numpy only):

- ``svip.entropy``  -- draft entropy, cross-entropy and the stop rule ``should_stop``
- ``svip.policies`` -- draft-length policies (constant, heuristic, svip, confidence, oracle)
- ``svip.adaptive``, ``svip.bandit``, ``svip.adaedl`` -- the cost-aware rule and the published rivals
- ``svip.spec``     -- ``make_policy("svip:h=0.3,gamma=0.15")``

Framework adapters live in ``svip.adapters`` (top-level folder ``adapters/``)
and the evaluation harness in ``svip.eval`` (folder ``eval/``); both depend on
this core, never the reverse.
"""

from .entropy import DEFAULT_GAMMA, DEFAULT_H, cross_entropy, entropy, should_stop, svip_score
from .policies import (
    DEFAULT_MAX_DRAFT,
    ConfidencePolicy,
    ConstantPolicy,
    DraftLengthPolicy,
    DraftStep,
    HeuristicPolicy,
    OraclePolicy,
    SvipPolicy,
)
from .spec import POLICIES, PolicySpecError, make_policy

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_GAMMA",
    "DEFAULT_H",
    "DEFAULT_MAX_DRAFT",
    "POLICIES",
    "ConfidencePolicy",
    "ConstantPolicy",
    "DraftLengthPolicy",
    "DraftStep",
    "HeuristicPolicy",
    "OraclePolicy",
    "PolicySpecError",
    "SvipPolicy",
    "cross_entropy",
    "entropy",
    "make_policy",
    "should_stop",
    "svip_score",
]
