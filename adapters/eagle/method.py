"""Method strings for EAGLE-2 runs: ``eagle2[:tree]``, ``eagle2[:tree,variant=..]+svip[:h=..,gamma=..]``
and ``eagle2[:tree,variant=..]+svip-adaptive[:..]``.

``eagle2:total=60,depth=7,top_k=10`` is upstream EAGLE-2 (the defaults of
``EaModel.from_pretrained``); ``eagle2:total=60,depth=7,top_k=10,variant=min+svip:h=0.3,gamma=0.15``
adds the entropy stop of ``patches/eagle2-svip.patch`` on top of the same
tree (``variant``: which frontier node's entropy counts). ``+svip-adaptive``
replaces the threshold by the cost-aware rule: the tree's depth from the
rule, and how many nodes to verify (at most ``total - 1``) from the measured
verify curve (``adaptive.py``). The old spelling
``eagle2-svip:h=0.3,variant=min,...`` is read as an alias. Parsing lives here, free of torch and of EAGLE, so the harness can
validate a method before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from svip.adaptive import AdaptiveSvipPolicy
from svip.grammar import MethodSpec, move_keys_to_policy, parse_method
from svip.policies import DEFAULT_MAX_DRAFT, SvipPolicy
from svip.spec import make_policy

__all__ = ["EAGLE_PREFIX", "EagleMethod", "is_eagle_method", "respell"]

EAGLE_PREFIX = "eagle2"
_VARIANTS = ("min", "weighted", "top")
_VOCABS = ("head", "full")


def is_eagle_method(method: str) -> bool:
    try:
        return parse_method(respell(method) or method).kind == EAGLE_PREFIX
    except ValueError:
        return False


def respell(text: str) -> str | None:
    """``eagle2-svip:h=0.3,variant=min,total=60`` (before one grammar) -> ``eagle2:variant=min,total=60+svip:h=0.3``."""
    name, _, params = text.strip().partition(":")
    if name.strip() != EAGLE_PREFIX + "-svip":
        return None
    return move_keys_to_policy(EAGLE_PREFIX, params, ("h", "gamma"), "svip")


@dataclass(frozen=True)
class EagleMethod:
    """One EAGLE-2 configuration; ``h`` and ``adaptive`` both ``None`` mean SVIP off (upstream behaviour)."""

    total: int = 60  # nodes per draft tree incl. the root (EaModel's total_token)
    depth: int = 7
    top_k: int = 10
    h: float | None = None
    gamma: float = 0.15
    variant: str = "min"
    adaptive: str | None = None  # the svip-adaptive policy's spec, when that rule grows the tree
    vocab: str = "head"  # "head": the head's draft vocabulary (draft_vocab.json) if it has one; "full": all tokens

    def __post_init__(self) -> None:
        if not (isinstance(self.total, int) and self.total >= 2):
            raise ValueError(f"eagle2: total must be an integer >= 2, got {self.total!r}")
        if not (isinstance(self.depth, int) and self.depth >= 1):
            raise ValueError(f"eagle2: depth must be an integer >= 1, got {self.depth!r}")
        if not (isinstance(self.top_k, int) and 1 <= self.top_k <= self.total - 1):
            raise ValueError(f"eagle2: top_k must be an integer in [1, total-1], got {self.top_k!r}")
        if self.h is not None and not (self.h >= 0 and self.gamma > 0):
            raise ValueError(f"eagle2+svip: needs h >= 0 and gamma > 0, got h={self.h}, gamma={self.gamma}")
        if self.h is not None and self.adaptive is not None:
            raise ValueError("eagle2: +svip and +svip-adaptive are two rules; choose one")
        if self.vocab not in _VOCABS:
            raise ValueError(f"eagle2: vocab must be one of {', '.join(_VOCABS)}, got {self.vocab!r}")
        if self.variant not in _VARIANTS:
            raise ValueError(f"eagle2: variant must be one of {', '.join(_VARIANTS)}, got {self.variant!r}")

    @property
    def svip(self) -> bool:
        return self.h is not None or self.adaptive is not None

    @classmethod
    def parse(cls, method: str) -> "EagleMethod":
        return cls.from_spec(parse_method(respell(method) or method))

    @classmethod
    def from_spec(cls, spec: MethodSpec) -> "EagleMethod":
        if spec.kind != EAGLE_PREFIX:
            raise ValueError(
                f"not an EAGLE method: {str(spec)!r} (use eagle2[:total=60,depth=7,top_k=10] or eagle2[:...]+svip)"
            )
        values: dict = {}
        if spec.policy is not None:
            policy = make_policy(spec.policy)
            if not isinstance(policy, (SvipPolicy, AdaptiveSvipPolicy)):
                raise ValueError(
                    "eagle2: the patched tree stops on SVIP's entropy rule (+svip:h=..,gamma=..) or the cost-aware "
                    f"one (+svip-adaptive), got +{policy.spec}"
                )
            if policy.max_draft != DEFAULT_MAX_DRAFT:
                raise ValueError(
                    "eagle2: the tree's depth caps EAGLE's draft length; set depth=N instead of the policy's max"
                )
            if isinstance(policy, SvipPolicy):
                values.update(h=policy.h, gamma=policy.gamma)
            else:
                values.update(adaptive=policy.spec)
        for key, raw in spec.call.items:
            if key in ("total", "depth", "top_k"):
                values[key] = _number(key, raw, int)
            elif key == "vocab":
                values[key] = raw
            elif key == "variant" and spec.policy is not None:
                values[key] = raw
            else:
                allowed = "total, depth, top_k, vocab" + (", variant" if spec.policy is not None else " (variant with +svip)")
                raise ValueError(f"eagle2: unknown parameter {key!r} (allowed: {allowed})")
        return cls(**values)

    @property
    def spec(self) -> str:
        tree = f"total={self.total},depth={self.depth},top_k={self.top_k}" + (",vocab=full" if self.vocab == "full" else "")
        if not self.svip:
            return f"{EAGLE_PREFIX}:{tree}"
        rule = self.adaptive if self.adaptive is not None else SvipPolicy(h=self.h, gamma=self.gamma).spec
        return f"{EAGLE_PREFIX}:{tree},variant={self.variant}+{rule}"


def _number(key: str, raw: str, kind: type):
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"eagle2: {key} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
