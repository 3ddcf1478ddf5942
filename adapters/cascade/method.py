"""``cascade:`` method strings: CS Drafting's knobs, optionally with a draft-length policy on the draft level.

Grammar (canonical form; every key optional on input, defaults shown)::

    cascade:k=5,mag=5,sub=10,lenience=1                      CS Drafting
    cascade:k=5,mag=5,sub=10,lenience=1,handoff=1+<policy>   ... whose draft level a policy may stop

``<policy>`` is any policy string ``make_policy`` accepts (``svip``,
``svip:h=0.3,gamma=0.15``, ``confidence:p_min=0.4``, ...), joined by ``+``.

Upstream (lfsszd/CS-Drafting, ``csd.py``) configures a cascade of drafters
with a ``k_matrix`` (row i: how many tokens drafter i's review loop gathers,
and from which cheaper drafters) and a ``lenience``. With one draft model
and Max-Gram below it the matrix is ``[[k, mag], [0, sub]]``:

- ``k``   = k_matrix[0][0]: vertical cascade -- the draft model runs review rounds over Max-Gram
          proposals while the round holds fewer than ``k`` tokens (like upstream, the last review
          keeps all it accepted, so the level may end with more than ``k``);
- ``mag`` = k_matrix[0][1]: horizontal cascade -- then Max-Gram alone fills the round up to
          ``k + mag`` tokens (upstream: chunks of 10 until the count reaches ``k + mag``);
- ``sub`` = k_matrix[1][1]: Max-Gram tokens per draft-model review (upstream offers
          ``_MAG_GENERATION = 10`` at a time until ``sub`` are gathered);
- ``lenience`` >= 1: the draft model also keeps a Max-Gram token ``x`` it would not have chosen
          when its probability of ``x`` exceeds 1/lenience (upstream's ``p(x) > q(x)/lenience`` with
          Max-Gram's one-hot q); the target's own review is always exact (upstream's ``is_first``).

With ``+<policy>`` the policy's stop rule (and its budget) end the draft level early;
``handoff=1`` then hands the rest of the round (up to ``k + mag`` tokens) to
Max-Gram -- SVIP x cascade -- and ``handoff=0`` ends the round there (plain stopping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from svip import make_policy
from svip.grammar import MethodSpec, move_keys_to_policy, parse_method
from svip.policies import DraftLengthPolicy, refuse_dropping
from svip.spec import PolicyFactory

from .level import DraftLevelPolicy

__all__ = ["CASCADE", "MAX_ROUND", "CascadeMethod", "is_cascade_method", "old_spelling"]

CASCADE = "cascade"
MAX_ROUND = 64  # tokens per round at most: bounds the target's verification width
_KNOBS: dict[str, type] = {"k": int, "mag": int, "sub": int, "lenience": float, "handoff": int}
_OLD_SVIP_KEYS = ("h", "gamma")  # SVIP's keys among the knobs, in the spelling before one grammar
_POLICY_HINT = "a draft-level policy is joined with '+', e.g. cascade:k=8,mag=2+svip:h=0.3,gamma=0.15"


def is_cascade_method(method: str) -> bool:
    return parse_method(method).kind == CASCADE


@dataclass(frozen=True)
class CascadeMethod:
    k: int = 5
    mag: int = 5
    sub: int = 10
    lenience: float = 1.0
    policy: str | None = None  # canonical spec of the draft-level policy
    handoff: int | None = None  # with a policy: 1 (default) = Max-Gram takes over after its stop, 0 = the round ends

    def __post_init__(self) -> None:
        for name, low in (("k", 1), ("mag", 0), ("sub", 1)):
            value = getattr(self, name)
            if not (isinstance(value, int) and low <= value <= MAX_ROUND):
                raise ValueError(f"cascade: {name} must be an integer in [{low}, {MAX_ROUND}], got {value!r}")
        if self.k + self.mag > MAX_ROUND:
            raise ValueError(f"cascade: k + mag must be <= {MAX_ROUND} tokens per round, got {self.k + self.mag}")
        if not (isinstance(self.lenience, (int, float)) and math.isfinite(self.lenience) and self.lenience >= 1):
            raise ValueError(
                f"cascade: lenience must be a finite number >= 1 (1 = exact review), got {self.lenience!r}"
            )
        object.__setattr__(self, "lenience", float(self.lenience))
        if self.policy is None:
            if self.handoff is not None:
                raise ValueError(f"cascade: handoff says what happens when a draft-level policy stops; {_POLICY_HINT}")
            return
        try:
            built = make_policy(self.policy)
            refuse_dropping(built, "the cascade's draft level")
            object.__setattr__(self, "policy", built.spec)
        except ValueError as error:
            raise ValueError(f"cascade: bad draft-level policy after '+': {error}") from None
        handoff = 1 if self.handoff is None else self.handoff
        if handoff not in (0, 1):
            raise ValueError(f"cascade: handoff must be 0 or 1, got {self.handoff!r}")
        object.__setattr__(self, "handoff", handoff)

    @property
    def budget(self) -> int:
        """Most tokens one round drafts (draft level + Max-Gram)."""
        return self.k + self.mag

    @property
    def hands_off(self) -> bool:
        """Does Max-Gram take the rest of the round when the draft level is stopped by its policy?"""
        return self.handoff != 0

    def draft_policy(self, reference: Sequence[int] | None = None) -> DraftLengthPolicy | None:
        """A fresh instance of the draft-level policy (``reference`` feeds an oracle)."""
        return make_policy(self.policy, reference=reference) if self.policy is not None else None

    def engine_policy(
        self, reference: Sequence[int] | None = None, *, inner: PolicyFactory | None = None
    ) -> DraftLevelPolicy:
        """The policy to hand ``SpeculativeEngine.generate`` together with a ``CascadeProposer``.

        ``inner`` (from ``policy_factory``) supplies the draft-level policy when
        one instance should learn across prompts; else a fresh one is made.
        """
        level = inner(reference) if inner is not None and self.policy is not None else self.draft_policy(reference)
        return DraftLevelPolicy(max_draft=self.budget, inner=level)

    @classmethod
    def parse(cls, method: str) -> "CascadeMethod":
        return cls.from_spec(parse_method(method))

    @classmethod
    def from_spec(cls, spec: MethodSpec) -> "CascadeMethod":
        if spec.kind != CASCADE:
            raise ValueError(f"not a cascade method: {str(spec)!r}")
        values: dict = {}
        for key, raw in spec.call.items:
            if key not in _KNOBS:
                hint = f"; {_POLICY_HINT}" if key in ("h", "gamma", "p_min", "policy") else ""
                raise ValueError(f"cascade: unknown parameter {key!r} (allowed: {', '.join(_KNOBS)}){hint}")
            kind = _KNOBS[key]
            try:
                values[key] = kind(raw)
            except ValueError:
                raise ValueError(
                    f"cascade: {key} must be {'an integer' if kind is int else 'a number'}, got {raw!r}"
                ) from None
        return cls(**values, policy=spec.policy)

    @property
    def spec(self) -> str:
        knobs = f"{CASCADE}:k={self.k},mag={self.mag},sub={self.sub},lenience={self.lenience:g}"
        return knobs if self.policy is None else f"{knobs},handoff={self.handoff}+{self.policy}"


def old_spelling(text: str) -> str | None:
    """``cascade:h=0.3,gamma=0.15,handoff=1,k=8,...`` (SVIP's keys among the knobs, before one grammar) -> the ``+svip`` form."""
    if "+" in text or not text.startswith(CASCADE + ":"):
        return None
    params = text.partition(":")[2]
    if not any(item.partition("=")[0].strip() in _OLD_SVIP_KEYS for item in params.split(",")):
        return None
    return move_keys_to_policy(CASCADE, params, _OLD_SVIP_KEYS, "svip")
