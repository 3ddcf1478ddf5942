"""``cape`` method strings: CaPE's confidence bins and a node cap, with the policy that stops the draft chain.

Grammar (canonical form)::

    cape:bins=8/8/8/6/6/6/4/4/2/2/2/2,nodes=64+constant:k=4     upstream GliDe+CaPE's setting
    cape+svip                                                   SVIP stops the chain, CaPE expands it

``bins[int(10 * p_top1)]`` is how many candidates a drafted position gets (its
own token included): upstream's ``prob_to_top`` (``inference/cape/cape.sh``),
so an unsure position (low top-1 probability) gets up to 8, a sure one 2.
``nodes`` caps the tree (chain + alternatives). Without a policy the chain is
upstream's fixed 4 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from svip import make_policy
from svip.grammar import MethodSpec
from svip.method import InputError
from svip.policies import refuse_dropping

__all__ = ["CAPE", "CapeMethod", "UPSTREAM_BINS"]

CAPE = "cape"
UPSTREAM_BINS = (8, 8, 8, 6, 6, 6, 4, 4, 2, 2, 2, 2)
DEFAULT_POLICY = "constant:k=4"  # GliDe drafts 4 tokens per round upstream
MAX_NODES = 256


@dataclass(frozen=True)
class CapeMethod:
    bins: tuple[int, ...] = UPSTREAM_BINS
    nodes: int = 64
    policy: str = DEFAULT_POLICY  # canonical spec of the chain's draft-length policy
    kind: str = CAPE  # the method kind spelled in ``spec`` (``glide-cape``: the same tree on GliDe's chain)

    def __post_init__(self) -> None:
        if len(self.bins) < 11 or not all(isinstance(b, int) and 1 <= b <= 64 for b in self.bins):
            raise ValueError(
                f"cape: bins needs 11+ integers in [1, 64] (one per tenth of top-1 probability), got {self.bins}"
            )
        if not (isinstance(self.nodes, int) and 1 <= self.nodes <= MAX_NODES):
            raise ValueError(f"cape: nodes must be an integer in [1, {MAX_NODES}], got {self.nodes!r}")

    def candidates(self, top1_prob: float) -> int:
        """Candidates at a drafted position (its own token included)."""
        return self.bins[min(int(top1_prob * 10), len(self.bins) - 1)]

    def require_greedy(self, sampling) -> None:
        """Refuse sampling at build time: tree verification is greedy only (the scorer refuses it too)."""
        if not sampling.greedy:
            raise InputError(
                f"{self.spec}: tree verification is greedy only (multi-candidate rejection sampling is not implemented)"
            )

    @classmethod
    def from_spec(cls, spec: MethodSpec, kind: str = CAPE) -> "CapeMethod":
        if spec.kind != kind:
            raise ValueError(f"not a {kind} method: {str(spec)!r}")
        values: dict = {"kind": kind}
        for key, raw in spec.call.items:
            if key == "bins":
                try:
                    values["bins"] = tuple(int(b) for b in raw.split("/"))
                except ValueError:
                    raise ValueError(
                        f"cape: bins are integers joined by '/', e.g. 8/8/8/6/6/6/4/4/2/2/2/2, got {raw!r}"
                    ) from None
            elif key == "nodes":
                try:
                    values["nodes"] = int(raw)
                except ValueError:
                    raise ValueError(f"cape: nodes must be an integer, got {raw!r}") from None
            else:
                raise ValueError(f"{kind}: unknown parameter {key!r} (allowed: bins, nodes; the policy goes after '+')")
        if spec.policy is not None:
            policy = make_policy(spec.policy)
            refuse_dropping(policy, "CaPE's drafter")
            values["policy"] = policy.spec
        else:
            values["policy"] = make_policy(DEFAULT_POLICY).spec
        return cls(**values)

    @property
    def spec(self) -> str:
        return f"{self.kind}:bins={'/'.join(map(str, self.bins))},nodes={self.nodes}+{self.policy}"
