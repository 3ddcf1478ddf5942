"""The roles of speculative decoding as data and protocols (after vLLM's ``spec_decode/interfaces.py``).

A ``Proposer`` drafts a ``Proposal`` for the next round and never sees the
target; a scorer verifies it and returns a ``Verification``. Engines run the
rounds between the two, so a new drafter (a cascade, a GliDe head, an n-gram
table) is one class with a ``propose`` method, and every engine and policy
works with it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Collection, NamedTuple, Protocol, Sequence, runtime_checkable

import torch

if TYPE_CHECKING:
    from .policies import DraftLengthPolicy
    from .tree import TokenTree

__all__ = ["Proposal", "Proposer", "Verification"]


@dataclass
class Proposal:
    """Draft tokens for one round, with what verification and the reports need."""

    tokens: list[int] = field(default_factory=list)
    probs: list[torch.Tensor | None] = field(default_factory=list)  # q each token was drawn from (None: greedy)
    entropies: list[float] = field(default_factory=list)  # raw-logit draft entropy per token (nats)
    logits: list[torch.Tensor] = field(default_factory=list)  # raw draft logits per neural token (diagnostics)
    seconds: float = 0.0  # wall time of the whole proposal, a catch-up forward included
    draft_forwards: int = 0  # draft steps spent, one per drafted token kept or not (CS Drafting's cost counts these)
    # Seconds of a separate forward that first fed the draft tokens decoded without it (after target-only
    # steps); not a draft step, so a cost meter prices ``seconds - catch_up_seconds`` over ``draft_forwards``.
    catch_up_seconds: float | None = None
    tree: "TokenTree | None" = None  # alternatives to verify too (CaPE): nodes 0..len(tokens)-1 are ``tokens``

    @property
    def verified_tokens(self) -> int:
        """Tokens the target scores for this proposal: every node, plus the last committed token."""
        return (len(self.tree) if self.tree is not None else len(self.tokens)) + 1


@runtime_checkable
class Proposer(Protocol):
    """Anything that drafts a round: ``DraftProposer`` (token by token), ``CascadeProposer`` (Max-Gram + review)."""

    def propose(
        self,
        sequence: Sequence[int],
        *,
        generated: int,
        budget: int,
        policy: "DraftLengthPolicy",
        stop_tokens: Collection[int],
        generator: torch.Generator | None,
    ) -> Proposal:
        """Draft up to ``budget`` tokens after ``sequence`` (``generated`` of them are new), asking ``policy`` after each."""
        ...


class Verification(NamedTuple):
    """The target's verdict on one proposal."""

    accepted: int  # leading draft tokens kept
    token: int  # the correction (on rejection) or bonus token (all accepted)
    seconds: float
    logits: torch.Tensor  # target logits at the drafted positions + 1 (fp32), for diagnostics
    path: list[int] | None = None  # a tree's accepted nodes (None: a chain, whose first ``accepted`` tokens)
