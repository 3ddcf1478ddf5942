"""``bandit``: pick the draft rule per round with UCB1, rewarded by the round's tokens per second.

The rival family of BanditSpec (arXiv 2505.15141) and TapOut: instead of one
stop rule, a set of them (the arms) and an online learner that plays the arm
with the highest upper confidence bound on its reward. Here the arms are the
issue's set, constant ``k = 1..ks`` and SVIP with ``h`` in {0.2, 0.3, 0.4}
(gamma 0.15); the reward of a round is what the run is scored on, tokens it
emitted (accepted + 1) per second it took (draft + verify), measured by the
engine (``observe_timing``). Rewards are scaled by the largest seen so far
so UCB1's exploration term, ``c * sqrt(2 ln N / n_i)``, stays on the
rewards' scale; every arm is played once first, in order. One instance learns
across the prompts of a run (rounds are the pulls; prefill rounds, whose
seconds the engine marks unknown, teach nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from .costs import RoundTiming
from .entropy import DEFAULT_GAMMA
from .policies import DraftLengthPolicy, DraftStep, _check

__all__ = ["BanditPolicy", "SVIP_ARMS"]

SVIP_ARMS = (0.2, 0.3, 0.4)


@dataclass
class Arm:
    """One draft rule: ``k`` tokens (constant), or SVIP with threshold ``h`` up to the policy's cap."""

    k: int | None = None
    h: float | None = None
    pulls: int = 0
    reward_sum: float = 0.0

    @property
    def label(self) -> str:
        return f"constant:k={self.k}" if self.k is not None else f"svip:h={self.h}"

    def mean(self, scale: float) -> float:
        return self.reward_sum / self.pulls / scale


@dataclass
class BanditPolicy(DraftLengthPolicy):
    """UCB1 over {constant k = 1..ks} + {svip h = 0.2, 0.3, 0.4}; reward = the round's tokens per second."""

    name: ClassVar[str] = "bandit"
    learns_across_prompts: ClassVar[bool] = True
    ks: int = 8
    c: float = 1.0
    _arms: list = field(default_factory=list, init=False, repr=False)
    _playing: Arm | None = field(default=None, init=False, repr=False)
    _emitted: int | None = field(default=None, init=False, repr=False)
    _best_reward: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            isinstance(self.ks, int) and 1 <= self.ks <= self.max_draft,
            f"bandit: ks must be an integer in [1, {self.max_draft}], got {self.ks!r}",
        )
        _check(math.isfinite(self.c) and self.c >= 0, f"bandit: c must be a finite number >= 0, got {self.c!r}")
        self._arms = [Arm(k=k) for k in range(1, self.ks + 1)] + [Arm(h=h) for h in SVIP_ARMS]
        self._entropy_limits = {h: h * h / DEFAULT_GAMMA for h in SVIP_ARMS}

    @property
    def arms(self) -> list[Arm]:
        return list(self._arms)

    def choose(self) -> Arm:
        """The arm to play next: an unplayed one in order, else the highest UCB1 score (first on ties)."""
        for arm in self._arms:
            if arm.pulls == 0:
                return arm
        total = sum(arm.pulls for arm in self._arms)
        scale = self._best_reward or 1.0
        return max(self._arms, key=lambda a: a.mean(scale) + self.c * math.sqrt(2 * math.log(total) / a.pulls))

    def start_sequence(self) -> None:
        self._playing, self._emitted = None, None

    def round_budget(self) -> int:
        if self._playing is None:
            self._playing = self.choose()
        return self._playing.k if self._playing.k is not None else self.max_draft

    def continue_drafting(self, step: DraftStep) -> bool:
        arm = self._playing
        return arm is None or arm.h is None or step.entropy <= self._entropy_limits[arm.h]

    def observe(self, drafted: int, accepted: int) -> None:
        self._emitted = accepted + 1 if drafted > 0 else None

    def observe_timing(self, timing: RoundTiming) -> None:
        if self._playing is None or self._emitted is None or timing.draft_steps == 0:
            return  # a target-only step: no arm was played
        arm, emitted = self._playing, self._emitted
        self._playing, self._emitted = None, None
        if timing.draft_seconds is None or timing.verify_seconds is None:
            return  # a prefill or catch-up round: its seconds price no arm
        self.reward(arm, emitted / max(timing.draft_seconds + timing.verify_seconds, 1e-9))

    def reward(self, arm: Arm, tokens_per_second: float) -> None:
        """Credit ``arm`` with one round's reward (public so a tree or an engine without timings can feed it)."""
        arm.pulls += 1
        arm.reward_sum += tokens_per_second
        self._best_reward = max(self._best_reward, tokens_per_second)
