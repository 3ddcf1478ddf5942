"""Registry kind ``cape[:bins=..,nodes=..][+<policy>]``: CaPE's tree on the vanilla engine's draft chain."""

from __future__ import annotations

from svip.grammar import MethodSpec
from svip.spec import policy_factory

from ..kinds import MethodKind, ModelSet
from ..vanilla.engine import EngineMethod
from .method import CAPE, CapeMethod
from .proposer import CapeProposer

__all__ = ["CAPE_KIND"]


def _canonical(spec: MethodSpec) -> str:
    return CapeMethod.from_spec(spec).spec


def _build(spec: MethodSpec, models: ModelSet) -> EngineMethod:
    method = CapeMethod.from_spec(spec)
    models.require_draft(method.spec)
    method.require_greedy(models.sampling)
    engine = models.engine()
    proposer = CapeProposer(engine.draft, method)
    return EngineMethod(
        engine, policy_factory(spec.policy_call, costs=models.cost_curve), proposer=proposer, spec=method.spec
    )


CAPE_KIND = MethodKind(
    CAPE,
    _canonical,
    _build,
    help="cape[:bins=8/8/8/6/6/6/4/4/2/2/2/2,nodes=64][+<policy>]: CaPE's extra candidates where the draft is unsure, "
    "verified as a tree (greedy); the policy (default constant:k=4) stops the chain",
)
