"""The policy the engine sees in a cascade run, wrapping the policy that governs the draft level.

The engine asks a policy for the round's budget and reports every round's
counts back. In a cascade the round budget is CS Drafting's (``k + mag``
tokens), while a draft-length policy (SVIP, or any other) speaks only for
the *draft model's* tokens: its stop rule ends the draft level, its own
budget caps it, and it should learn from how many of *those* tokens the
target accepted, not from Max-Gram's. ``DraftLevelPolicy`` does that
translation; ``CascadeProposer`` tells it how many tokens the level drafted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Mapping

from svip.costs import RoundTiming
from svip.policies import DraftLengthPolicy, DraftStep

__all__ = ["DraftLevelPolicy"]


@dataclass
class DraftLevelPolicy(DraftLengthPolicy):
    """Round budget ``max_draft`` (= k + mag); ``inner`` (optional) governs the draft level."""

    name: ClassVar[str] = "cascade-level"
    inner: DraftLengthPolicy | None = None
    level_drafted: int = field(default=0, init=False, repr=False)  # set by CascadeProposer every round

    def start_sequence(self) -> None:
        self.level_drafted = 0
        if self.inner is not None:
            self.inner.start_sequence()

    def level_budget(self) -> int:
        """Most draft-model tokens this round (the inner policy's own budget; else the round's)."""
        return self.inner.round_budget() if self.inner is not None else self.max_draft

    def continue_drafting(self, step: DraftStep) -> bool:
        return self.inner.continue_drafting(step) if self.inner is not None else True

    def observe_timing(self, timing: RoundTiming) -> None:
        if self.inner is not None:  # the level's draft steps and the round's verify forward
            self.inner.observe_timing(timing)

    def seed_costs(self, curve: Mapping) -> None:
        if self.inner is not None:
            self.inner.seed_costs(curve)

    def observe(self, drafted: int, accepted: int) -> None:
        # The target accepts a prefix, and the level's tokens come first in the round.
        if self.inner is not None:
            self.inner.observe(self.level_drafted, min(accepted, self.level_drafted))

    @property
    def spec(self) -> str:
        return self.inner.spec if self.inner is not None else f"{self.name}:max={self.max_draft}"
