"""Cascade Speculative Drafting (CS Drafting, arXiv 2312.11462) in the vanilla engine.

- ``maxgram``  -- the statistical bottom drafter: longest n-gram match in the prompt, then in the
                  generated text, then a bigram table (``bigram``) built from text on this machine
- ``method``   -- ``cascade:...`` method strings (CS Drafting's k_matrix / lenience, SVIP x cascade)
- ``proposer`` -- ``CascadeProposer``: the draft model reviews Max-Gram drafts (vertical cascade),
                  Max-Gram fills the tail of the round (horizontal cascade); lossless for greedy
                  and sampling (upstream CS Drafting is greedy-only)
"""

from .method import CASCADE, CascadeMethod, is_cascade_method

__all__ = ["CASCADE", "CascadeMethod", "is_cascade_method"]
