"""Draft-length policies: after each drafted token, "draft another one?".

The split follows transformers' ``candidate_generator.py`` (the generator
drafts, a schedule decides how many) and vLLM's ``spec_decode`` (the proposer
never talks to the scorer). An engine drives a policy through four calls::

    policy.start_sequence()                  # new prompt: reset schedules
    budget = policy.round_budget()           # upper bound for this round
    while policy.continue_drafting(step):    # after every drafted token
        ...
    policy.observe(drafted, accepted)        # after the target verified

A policy sees only the draft model's own numbers (``DraftStep``), except the
evaluation-only ``OraclePolicy``, which is told the target's greedy output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

import torch

from .entropy import DEFAULT_GAMMA, DEFAULT_H, entropy
from .roc import roc_threshold

if TYPE_CHECKING:
    from .costs import RoundTiming

__all__ = [
    "DEFAULT_MAX_DRAFT",
    "DraftStep",
    "DraftLengthPolicy",
    "ConstantPolicy",
    "HeuristicPolicy",
    "SvipPolicy",
    "ConfidencePolicy",
    "OraclePolicy",
    "refuse_dropping",
]

DEFAULT_MAX_DRAFT = 40
"""The SVIP reference implementation's hard cap on tokens per round."""


class DraftStep:
    """One drafted token, as the policy sees it.

    ``logits`` are the draft model's raw logits over the full vocabulary for
    the position the token was drafted at; entropy and token probability are
    derived lazily so a policy that needs neither pays nothing.
    """

    __slots__ = ("index", "position", "token", "logits", "__dict__")

    def __init__(self, index: int, position: int, token: int, logits: torch.Tensor) -> None:
        self.index = index  # 0-based index within the round
        self.position = position  # 0-based index among the generated tokens
        self.token = token
        self.logits = logits

    @cached_property
    def entropy(self) -> float:
        """Entropy in nats of softmax(raw logits): the quantity SVIP thresholds."""
        return float(entropy(self.logits, kind="logits"))

    @cached_property
    def token_prob(self) -> float:
        """softmax(raw logits)[token]: what confidence-based stopping thresholds."""
        return float(torch.softmax(self.logits.float(), dim=-1)[self.token])


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def refuse_dropping(policy: "DraftLengthPolicy", where: str) -> None:
    """Raise for a policy that leaves its stop token out, in a loop that keeps every drafted token.

    Why: such a loop would silently run another rule under the policy's name.
    """
    if policy is not None and policy.drops_crossing_token:
        raise ValueError(
            f"{policy.spec}: this rule leaves the token it stops at out of the round, which {where} cannot do "
            "(it keeps every drafted token); use drop=0 there (the token kept, as SVIP), or the vanilla engine"
        )


@dataclass
class DraftLengthPolicy:
    """Base class: a fixed budget and no early stop (subclasses refine)."""

    name: ClassVar[str] = "base"
    learns_across_prompts: ClassVar[bool] = False  # True: one instance serves a whole run (it learns)
    max_draft: int = DEFAULT_MAX_DRAFT

    def __post_init__(self) -> None:
        _check(
            isinstance(self.max_draft, int) and self.max_draft >= 1,
            f"{self.name}: max must be an integer >= 1, got {self.max_draft!r}",
        )

    def start_sequence(self) -> None:
        """Reset per-sequence state before a new prompt."""

    def round_budget(self) -> int:
        """Most tokens this round may draft (the engine also clips to what is left; 0: a target-only step)."""
        return self.max_draft

    def continue_drafting(self, step: DraftStep) -> bool:
        """Called after each drafted token (which is kept); False ends the round."""
        return True

    def observe(self, drafted: int, accepted: int) -> None:
        """Called after verification with this round's counts (``drafted == 0``: a target-only step)."""

    def observe_timing(self, timing: "RoundTiming") -> None:
        """Called after each round with the seconds it took (policies that price tokens use it)."""

    @property
    def drops_crossing_token(self) -> bool:
        """True: a step ``continue_drafting`` refuses is left out of the round (AdaEDL stops *before* a token).

        Every other rule keeps the token it stops after. Only drafters that can leave a
        drafted token out honour this; the others refuse such a policy (``refuse_dropping``).
        """
        return False

    def seed_costs(self, curve: Mapping) -> None:
        """A cost curve measured before the run (``svip calibrate``'s format); ignored by fixed rules."""

    @property
    def spec(self) -> str:
        """The string ``make_policy`` parses back into an equal policy."""
        params = ",".join(
            f"{'max' if f == 'max_draft' else f}={getattr(self, f)}"
            for f in sorted((spec_field.name for spec_field in fields(self)), key=lambda n: n == "max_draft")
            if not f.startswith("_")
        )
        return f"{self.name}:{params}" if params else self.name


@dataclass
class ConstantPolicy(DraftLengthPolicy):
    """Draft exactly ``k`` tokens every round (the paper's "Const." baseline)."""

    name: ClassVar[str] = "constant"
    k: int = 5
    max_draft: int = field(default=DEFAULT_MAX_DRAFT, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            isinstance(self.k, int) and 1 <= self.k <= self.max_draft,
            f"constant: k must be an integer in [1, {self.max_draft}], got {self.k!r}",
        )

    def round_budget(self) -> int:
        return self.k

    @property
    def spec(self) -> str:
        return f"constant:k={self.k}"


@dataclass
class HeuristicPolicy(DraftLengthPolicy):
    """Hugging Face's schedule: +2 after a fully accepted round, else -1 (min 1).

    The paper's "Heuristics" baseline; the SVIP repo starts at ``k0`` and caps at 40.
    """

    name: ClassVar[str] = "heuristic"
    k0: int = 5
    _k: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            isinstance(self.k0, int) and 1 <= self.k0 <= self.max_draft,
            f"heuristic: k0 must be an integer in [1, {self.max_draft}], got {self.k0!r}",
        )
        self._k = self.k0

    def start_sequence(self) -> None:
        self._k = self.k0

    def round_budget(self) -> int:
        return self._k

    def observe(self, drafted: int, accepted: int) -> None:
        if accepted >= drafted:
            self._k = min(self.max_draft, self._k + 2)
        else:
            self._k = max(1, self._k - 1)


@dataclass
class SvipPolicy(DraftLengthPolicy):
    """Stop after the token whose draft entropy gives ``sqrt(gamma*H) > h``.

    That token is kept; every round drafts at least one token and at most
    ``max_draft`` (40, as in the reference implementation).
    """

    name: ClassVar[str] = "svip"
    h: float = DEFAULT_H
    gamma: float = DEFAULT_GAMMA

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(math.isfinite(self.h) and self.h >= 0, f"svip: h must be a finite number >= 0, got {self.h!r}")
        _check(
            math.isfinite(self.gamma) and self.gamma > 0,
            f"svip: gamma must be a finite number > 0, got {self.gamma!r}",
        )
        # sqrt(gamma*H) > h  <=>  H > h^2/gamma: one comparison per token.
        self._entropy_threshold = self.h * self.h / self.gamma

    def continue_drafting(self, step: DraftStep) -> bool:
        return step.entropy <= self._entropy_threshold


@dataclass
class ConfidencePolicy(DraftLengthPolicy):
    """Stop after a token whose draft probability is below ``p_min``.

    transformers' ``assistant_confidence_threshold`` and llama.cpp's
    ``--draft-p-min``: the strongest stop rule shipped by existing frameworks.

    ``refit=1`` re-fits the threshold online as transformers does when
    scikit-learn is installed (``svip.roc``): the judged tokens of the current
    prompt (accepted: 1, the first rejected: 0) give an ROC curve, and the
    threshold minimising ``fpr + 3 * fnr`` replaces ``p_min`` for the rest of
    the prompt. As in transformers, everything starts afresh with each prompt
    (its candidate generator, built per ``generate()`` call, works on a deep
    copy of the draft's ``generation_config``, so the fitted threshold is not
    carried to the next call).
    """

    name: ClassVar[str] = "confidence"
    p_min: float = 0.4
    refit: int = 0
    _threshold: float = field(default=0.0, init=False, repr=False)
    _round: list = field(default_factory=list, init=False, repr=False)
    _scores: list = field(default_factory=list, init=False, repr=False)
    _labels: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            math.isfinite(self.p_min) and 0 < self.p_min < 1,
            f"confidence: p_min must be in (0, 1), got {self.p_min!r}",
        )
        _check(self.refit in (0, 1), f"confidence: refit must be 0 or 1, got {self.refit!r}")
        self._threshold = self.p_min

    @property
    def threshold(self) -> float:
        """The threshold in force (``p_min`` until a re-fit moves it)."""
        return self._threshold

    def start_sequence(self) -> None:
        self._round, self._scores, self._labels = [], [], []
        self._threshold = self.p_min

    def continue_drafting(self, step: DraftStep) -> bool:
        if self.refit:
            self._round.append(step.token_prob)
        return step.token_prob >= self._threshold

    def observe(self, drafted: int, accepted: int) -> None:
        if not self.refit or drafted == 0:
            return
        judged = self._round[: accepted + 1]  # the accepted ones and the first rejected; the rest were never judged
        self._scores += judged
        self._labels += [1] * accepted + [0] * (len(judged) - accepted)
        self._round = []
        threshold = roc_threshold(self._labels, self._scores)
        if threshold is not None:
            self._threshold = threshold

    @property
    def spec(self) -> str:
        refit = ",refit=1" if self.refit else ""
        return f"confidence:p_min={self.p_min}{refit},max={self.max_draft}"


@dataclass
class OraclePolicy(DraftLengthPolicy):
    """Evaluation-only upper bound for greedy decoding.

    Given the target's greedy continuation, it keeps drafting while the
    draft agrees with it and stops at the first token the target will reject
    (that token is drafted, then rejected and corrected). No stop rule that
    uses the same draft model can do better on accepted tokens per round.
    """

    name: ClassVar[str] = "oracle"
    _reference: tuple[int, ...] | None = field(default=None, init=False, repr=False)

    def set_reference(self, target_tokens: Sequence[int]) -> None:
        """The target-only greedy output for the next prompt (new tokens only)."""
        self._reference = tuple(int(t) for t in target_tokens)

    def start_sequence(self) -> None:
        if self._reference is None:
            raise ValueError("oracle: call set_reference(target_greedy_tokens) before generating")

    def continue_drafting(self, step: DraftStep) -> bool:
        reference = self._reference or ()
        return step.position < len(reference) and reference[step.position] == step.token
