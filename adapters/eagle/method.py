"""Method strings for EAGLE-2 runs: ``eagle2`` and ``eagle2-svip`` with their knobs.

``eagle2:total=60,depth=7,top_k=10`` is upstream EAGLE-2 (the defaults of
``EaModel.from_pretrained``); ``eagle2-svip:h=0.3,gamma=0.15,variant=min``
adds the entropy stop of ``patches/eagle2-svip.patch`` on top of the same
tree. Parsing lives here, free of torch and of EAGLE, so the harness can
validate a method before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EAGLE_PREFIX", "EagleMethod", "is_eagle_method"]

EAGLE_PREFIX = "eagle2"
_VARIANTS = ("min", "weighted", "top")


def is_eagle_method(method: str) -> bool:
    return method.split(":", 1)[0] in (EAGLE_PREFIX, EAGLE_PREFIX + "-svip")


@dataclass(frozen=True)
class EagleMethod:
    """One EAGLE-2 configuration; ``h is None`` means SVIP off (upstream behaviour)."""

    total: int = 60  # nodes per draft tree incl. the root (EaModel's total_token)
    depth: int = 7
    top_k: int = 10
    h: float | None = None
    gamma: float = 0.15
    variant: str = "min"

    def __post_init__(self) -> None:
        if not (isinstance(self.total, int) and self.total >= 2):
            raise ValueError(f"eagle2: total must be an integer >= 2, got {self.total!r}")
        if not (isinstance(self.depth, int) and self.depth >= 1):
            raise ValueError(f"eagle2: depth must be an integer >= 1, got {self.depth!r}")
        if not (isinstance(self.top_k, int) and 1 <= self.top_k <= self.total - 1):
            raise ValueError(f"eagle2: top_k must be an integer in [1, total-1], got {self.top_k!r}")
        if self.h is not None and not (self.h >= 0 and self.gamma > 0):
            raise ValueError(f"eagle2-svip: needs h >= 0 and gamma > 0, got h={self.h}, gamma={self.gamma}")
        if self.variant not in _VARIANTS:
            raise ValueError(f"eagle2-svip: variant must be one of {', '.join(_VARIANTS)}, got {self.variant!r}")

    @property
    def svip(self) -> bool:
        return self.h is not None

    @classmethod
    def parse(cls, method: str) -> "EagleMethod":
        name, _, params = method.partition(":")
        if name not in (EAGLE_PREFIX, EAGLE_PREFIX + "-svip"):
            raise ValueError(f"not an EAGLE method: {method!r} (use eagle2[:...] or eagle2-svip[:...])")
        values: dict = {"h": 0.3} if name.endswith("-svip") else {}
        for item in filter(None, params.split(",")):
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"{name}: expected key=value, got {item!r}")
            if key in ("total", "depth", "top_k"):
                values[key] = _number(name, key, raw, int)
            elif key in ("h", "gamma") and name.endswith("-svip"):
                values[key] = _number(name, key, raw, float)
            elif key == "variant" and name.endswith("-svip"):
                values[key] = raw
            else:
                allowed = "total, depth, top_k" + (", h, gamma, variant" if name.endswith("-svip") else "")
                raise ValueError(f"{name}: unknown parameter {key!r} (allowed: {allowed})")
        return cls(**values)

    @property
    def spec(self) -> str:
        tree = f"total={self.total},depth={self.depth},top_k={self.top_k}"
        if not self.svip:
            return f"{EAGLE_PREFIX}:{tree}"
        return f"{EAGLE_PREFIX}-svip:h={self.h:g},gamma={self.gamma:g},variant={self.variant},{tree}"


def _number(name: str, key: str, raw: str, kind: type):
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}: {key} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
