"""``cascade:`` method strings: CS Drafting's knobs, and SVIP on the draft level.

Upstream (lfsszd/CS-Drafting, ``csd.py``) configures a cascade with a
``k_matrix`` and a ``lenience``. With one draft model and Max-Gram below it,
the matrix is ``[[k, mag], [0, sub]]``:

- ``k``   (k_matrix[0][0]): tokens of a round that the draft level contributes (vertical cascade:
          the draft model reviews Max-Gram proposals instead of drafting token by token);
- ``mag`` (k_matrix[0][1]): Max-Gram tokens appended after them, straight to the target
          (horizontal cascade: the cheapest drafter takes the late, rarely accepted positions);
- ``sub`` (k_matrix[1][1]; upstream's ``_MAG_GENERATION = 10``): Max-Gram tokens per draft-level review;
- ``lenience`` (>= 1): the draft level also keeps a Max-Gram token that is not its own choice when its
          probability exceeds 1/lenience (upstream's rule for a one-hot proposal). Greedy only: under
          sampling the review is exact rejection sampling, which keeps the draft tokens distributed as q.

SVIP x cascade: ``h`` (with ``gamma``) stops the draft level after the token whose entropy gives
``sqrt(gamma*H) > h``; ``handoff=1`` then hands the rest of the round (up to ``k + mag`` tokens) to
Max-Gram, ``handoff=0`` ends the round there (plain stopping).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CASCADE", "CascadeMethod", "is_cascade_method"]

CASCADE = "cascade"
_INTS = ("k", "mag", "sub", "handoff")
_FLOATS = ("lenience", "h", "gamma")


def is_cascade_method(method: str) -> bool:
    return method.split(":", 1)[0] == CASCADE


@dataclass(frozen=True)
class CascadeMethod:
    k: int = 5
    mag: int = 5
    sub: int = 10
    lenience: float = 1.0
    h: float | None = None  # SVIP on the draft level when set
    gamma: float = 0.15
    handoff: int = 1

    def __post_init__(self) -> None:
        for name, low in (("k", 1), ("mag", 0), ("sub", 1)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= low):
                raise ValueError(f"cascade: {name} must be an integer >= {low}, got {value!r}")
        if self.k + self.mag > 64:
            raise ValueError(f"cascade: k + mag must be <= 64 tokens per round, got {self.k + self.mag}")
        if not self.lenience >= 1:
            raise ValueError(f"cascade: lenience must be >= 1 (1 = exact review), got {self.lenience!r}")
        if self.h is not None and not (self.h >= 0 and self.gamma > 0):
            raise ValueError(f"cascade: needs h >= 0 and gamma > 0, got h={self.h}, gamma={self.gamma}")
        if self.handoff not in (0, 1):
            raise ValueError(f"cascade: handoff must be 0 or 1, got {self.handoff!r}")

    @property
    def budget(self) -> int:
        """Most tokens one round drafts."""
        return self.k + self.mag

    @classmethod
    def parse(cls, method: str) -> "CascadeMethod":
        name, _, params = method.partition(":")
        if name != CASCADE:
            raise ValueError(f"not a cascade method: {method!r}")
        values: dict = {}
        for item in filter(None, params.split(",")):
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"cascade: expected key=value, got {item!r}")
            if key not in _INTS + _FLOATS:
                raise ValueError(f"cascade: unknown parameter {key!r} (allowed: {', '.join(_INTS + _FLOATS)})")
            kind = int if key in _INTS else float
            try:
                values[key] = kind(raw)
            except ValueError:
                raise ValueError(f"cascade: {key} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
        return cls(**values)

    @property
    def spec(self) -> str:
        tree = f"k={self.k},mag={self.mag},sub={self.sub},lenience={self.lenience:g}"
        if self.h is None:
            return f"{CASCADE}:{tree}"
        return f"{CASCADE}:h={self.h:g},gamma={self.gamma:g},handoff={self.handoff},{tree}"
