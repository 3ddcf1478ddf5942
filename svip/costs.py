"""What drafting and verifying cost on *this* machine, measured while decoding.

Whether one more draft token pays depends on two prices: a draft step and the
extra seconds the target needs to score one more token. On a GPU the second
is close to zero; on a CPU it can be most of a step, and the same rule that
wins on one machine loses on the next. ``CostMeter`` keeps robust estimates
of both from the engine's own timings:

- ``verify(n)``: seconds of one target forward over ``n`` new tokens (a
  target-only step is ``verify(1)``; a round of ``k`` drafts feeds ``k + 1``);
- ``draft()``: seconds per draft step.

Each size keeps a window of recent observations and answers with its median;
sizes never seen are interpolated (linearly) between seen ones and
extrapolated with the slope of the last two. A curve measured up front
(``svip calibrate``, or the one every bench run measures at its start) seeds
the meter; live observations take over where they exist, and the seed is
rescaled by the live/seed ratio at sizes that have both, so a machine that
got slower since the seed was taken does not skew the ratios.

Observations also expire after ``horizon`` rounds: a size that stops being
observed (the draft step, while a cost-aware rule decodes target-only and
only probes now and then) would otherwise keep a price from an old regime,
such as a transient slowdown, for the rest of a run. Once a size's recent
observations are too few, the seed, rescaled by the sizes still observed,
prices it again.

Framework-free: engines report seconds; nothing here imports a model.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Callable, Mapping

from .isotonic import non_decreasing

__all__ = ["CostMeter", "RoundTiming"]


@dataclass(frozen=True)
class RoundTiming:
    """Seconds one round spent, as an engine measured them.

    ``None`` marks a number that does not price a steady-state step: the
    draft's or the target's first forward over a prompt (prefill), or the
    draft catching up on tokens decoded without it.
    """

    draft_steps: int
    draft_seconds: float | None
    verify_tokens: int  # tokens the target scored in one forward (drafted + 1; 1 for a target-only step)
    verify_seconds: float | None


class CostMeter:
    """Median-of-window estimates of draft-step and verify(n) seconds, seeded by a measured curve."""

    MIN_LIVE = 3  # observations of a size before its own median replaces the seed

    def __init__(self, window: int = 32, horizon: int = 128) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1 round, got {horizon}")
        self.window, self.horizon = window, horizon
        self._rounds = 0  # rounds observed; each observation is stamped with its round
        self._verify: dict[int, deque[tuple[int, float]]] = {}
        self._draft: deque[tuple[int, float]] = deque(maxlen=window)
        self._seed_verify: dict[int, float] = {}
        self._seed_draft: float | None = None

    # -- feeding ------------------------------------------------------------
    def seed(self, curve: Mapping) -> None:
        """Start from a stored curve: ``target_step_s``, ``verify_over_step`` {n: ratio}, ``draft_over_step``."""
        step = float(curve["target_step_s"])
        if not step > 0:
            raise ValueError(f"a cost curve needs target_step_s > 0, got {step}")
        self._seed_verify = {1: step}
        for n, ratio in curve.get("verify_over_step", {}).items():
            self._seed_verify[int(n)] = float(ratio) * step
        if curve.get("draft_over_step") is not None:
            self._seed_draft = float(curve["draft_over_step"]) * step

    def observe(self, timing: RoundTiming) -> None:
        """Add one round's clean timings (``None`` entries are skipped)."""
        self._rounds += 1
        if timing.verify_seconds is not None and timing.verify_tokens >= 1 and timing.verify_seconds > 0:
            window = self._verify.setdefault(timing.verify_tokens, deque(maxlen=self.window))
            window.append((self._rounds, timing.verify_seconds))
        if timing.draft_seconds is not None and timing.draft_steps >= 1 and timing.draft_seconds > 0:
            self._draft.append((self._rounds, timing.draft_seconds / timing.draft_steps))

    def _recent(self, window: deque[tuple[int, float]]) -> list[float]:
        """Seconds observed within the last ``horizon`` rounds."""
        return [seconds for stamp, seconds in window if self._rounds - stamp < self.horizon]

    @property
    def draft_observations(self) -> int:
        """Draft-step timings within the horizon (what ``draft()`` reads before falling back to the seed)."""
        return len(self._recent(self._draft))

    # -- reading ------------------------------------------------------------
    @property
    def known(self) -> bool:
        """Whether the meter can price a target step (seeded, or observed at some size)."""
        return bool(self._seed_verify) or any(len(v) >= 1 for v in self._verify.values())

    def _live(self) -> dict[int, float]:
        recent = {n: self._recent(v) for n, v in self._verify.items()}
        return {n: statistics.median(v) for n, v in recent.items() if len(v) >= self.MIN_LIVE}

    def _seed_scale(self, live: dict[int, float]) -> float:
        """Live/seed ratio at sizes that have both (1 when none do)."""
        ratios = [live[n] / _interpolate(self._seed_verify, n) for n in live if self._seed_verify]
        return statistics.median(ratios) if ratios else 1.0

    def verify_points(self) -> dict[int, float]:
        """The points the curve is interpolated through: live medians, else the (rescaled) seed."""
        live = self._live()
        scale = self._seed_scale(live)
        points = {n: seconds * scale for n, seconds in self._seed_verify.items()}
        points.update(live)
        if not points:  # nothing seeded and nothing steady yet: whatever was seen
            points = {n: statistics.median(s for _, s in v) for n, v in self._verify.items() if v}
        # a forward over more tokens never costs less, but medians of small windows taken at different context
        # lengths can say so (EAGLE's sets, AMD Zen 5: verify(4) 129.7 ms, verify(5) 125.0, verify(6) 120.2), and a
        # size rule then chose 5-node trees for looking cheaper than 3-node ones
        sizes = sorted(points)
        return dict(zip(sizes, non_decreasing([points[n] for n in sizes], [1.0] * len(sizes))))

    def verify(self, n: int) -> float:
        """Seconds of a target forward over ``n`` new tokens."""
        _check_scored(n)
        return _interpolate(self._priced_points(), n)

    def verify_curve(self) -> Callable[[int], float]:
        """``verify`` with the points read once: a decision that prices many sizes medians the windows only once."""
        points = self._priced_points()

        def verify(n: int) -> float:
            _check_scored(n)
            return _interpolate(points, n)

        return verify

    def _priced_points(self) -> dict[int, float]:
        points = self.verify_points()
        if not points:
            raise ValueError("the cost meter has no verify timings yet: seed it with a measured curve")
        return points

    def step(self) -> float:
        """Seconds of a target-only step (= ``verify(1)``)."""
        return self.verify(1)

    def draft(self) -> float:
        """Seconds per draft step: live median, else the (rescaled) seed, else 0 when never seen."""
        recent = self._recent(self._draft)
        if len(recent) >= self.MIN_LIVE:
            return statistics.median(recent)
        if self._seed_draft is not None:
            return self._seed_draft * self._seed_scale(self._live())
        return statistics.median(s for _, s in self._draft) if self._draft else 0.0

    def round_cost(self, drafted: int, verified: int | None = None) -> float:
        """Seconds of a round that drafts ``drafted`` tokens (0: a target-only step) and verifies ``verified``
        (default: a chain, ``drafted + 1``; a tree scores more tokens than it drafted steps)."""
        return drafted * self.draft() + self.verify(drafted + 1 if verified is None else verified)

    def curve(self, sizes=(2, 4, 8)) -> dict:
        """The meter's current estimate in the stored-curve format (ratios to a target step)."""
        step = self.step()
        return {
            "target_step_s": step,
            "verify_over_step": {str(n): self.verify(n) / step for n in sizes},
            "draft_over_step": self.draft() / step,
        }


def _check_scored(n: int) -> None:
    if n < 1:
        raise ValueError(f"a verify forward scores at least one token, got {n}")


def _interpolate(points: Mapping[int, float], n: int) -> float:
    """Piecewise-linear through ``points``; above the largest size, linear with the last two; below the smallest,
    flat at its price.

    Never a line down through the first two sizes: a meter that has timed only drafting rounds (sizes 2 and 3, the
    first of them slow while the weights page in) would price a target step near zero, every draft would look
    dear, and a rule that then stops drafting never times a drafting round again (llama.cpp's port met exactly
    this after a cold start).
    """
    sizes = sorted(points)
    if n in points:
        return points[n]
    if len(sizes) == 1 or n < sizes[0]:
        return points[sizes[0]]
    if n > sizes[-1]:
        left, right = sizes[-2], sizes[-1]
    else:
        right = next(s for s in sizes if s > n)
        left = max(s for s in sizes if s < n)
    slope = (points[right] - points[left]) / (right - left)
    return max(points[left] + slope * (n - left), 1e-9)
