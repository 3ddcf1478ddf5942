"""Cascade Speculative Drafting (CS Drafting, arXiv 2312.11462) in the vanilla engine.

One module per job:

- ``bigram``   -- Max-Gram's fallback table, counted from the standard library's sources (cached)
- ``maxgram``  -- the statistical bottom drafter: longest suffix match in the prompt, then in the
                  generated text, then the bigram table
- ``method``   -- ``cascade:...[+policy]`` method strings (CS Drafting's k_matrix / lenience,
                  a draft-level policy such as SVIP with or without handoff to Max-Gram)
- ``level``    -- ``DraftLevelPolicy``: the engine-facing policy that lets a draft-length policy
                  govern only the draft model's part of a round
- ``kind``     -- the registry entry: parses ``cascade:`` strings and builds the method on shared models
- ``proposer`` -- ``CascadeProposer``: the draft model reviews Max-Gram drafts (vertical cascade),
                  Max-Gram fills the tail of the round (horizontal cascade); lossless for greedy
                  and sampling (upstream CS Drafting is greedy-only)
"""

from .level import DraftLevelPolicy
from .maxgram import MaxGram
from .method import CASCADE, CascadeMethod, is_cascade_method

__all__ = ["CASCADE", "CascadeMethod", "DraftLevelPolicy", "MaxGram", "is_cascade_method"]
