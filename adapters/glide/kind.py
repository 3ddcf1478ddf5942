"""Registry kinds ``glide[+<policy>]`` and ``glide-cape[:bins=..,nodes=..][+<policy>]``: GliDe drafting on our engine.

``glide`` drafts upstream's fixed 4 tokens per round (``glide+constant:k=4``)
unless a policy is given (``glide+svip``); ``glide-cape`` expands the kept
chain with CaPE's candidates and verifies the tree in one target forward.
The issue's names ``glide-svip`` and ``glide-cape-svip`` are read as
``glide+svip`` and ``glide-cape+svip``. Every GliDe method needs the run's
GliDe draft (``--glide-draft DIR``), which is built on the base draft model.
"""

from __future__ import annotations

from svip.grammar import MethodSpec, MethodSpecError
from svip.method import InputError
from svip.spec import make_policy, policy_factory

from ..cape.method import CapeMethod
from ..cape.proposer import CapeProposer
from ..kinds import MethodKind, ModelSet
from ..vanilla.engine import EngineMethod, SpeculativeEngine
from .proposer import GlideProposer

__all__ = ["GLIDE", "GLIDE_CAPE", "GLIDE_CAPE_KIND", "GLIDE_KIND"]

GLIDE, GLIDE_CAPE = "glide", "glide-cape"
DEFAULT_POLICY = "constant:k=4"  # upstream GliDe drafts 4 tokens per round


def _glide_canonical(spec: MethodSpec) -> str:
    if spec.params:
        raise MethodSpecError(
            f"glide takes no parameters of its own, got {', '.join(spec.params)}; put them in the policy"
        )
    return f"{GLIDE}+{make_policy(spec.policy or DEFAULT_POLICY).spec}"


def _glide_cape_canonical(spec: MethodSpec) -> str:
    return CapeMethod.from_spec(spec, kind=GLIDE_CAPE).spec


def _engine_and_proposer(models: ModelSet, method: str) -> tuple[SpeculativeEngine, GlideProposer]:
    """One engine per run on (target, GliDe draft): its own caches, the target's weights shared."""
    if models.eagle is not None or models.target is None:
        raise InputError(f"{method} needs the vanilla engine's target model (a run without --eagle-head)")
    if models.glide is None:
        raise InputError(f"{method} needs a GliDe draft (--glide-draft DIR; make glide-draft builds one)")
    engine = models.shared(
        "glide-engine",
        lambda: SpeculativeEngine(
            models.target,
            models.glide.model,
            sampling=models.sampling,
            record_cross_entropy=models.record_cross_entropy,
        ),
    )
    return engine, GlideProposer(models.glide, engine.draft.model, engine.target.model, models.sampling)


def _build_glide(spec: MethodSpec, models: ModelSet) -> EngineMethod:
    canonical = _glide_canonical(spec)
    policy = canonical.partition("+")[2]
    engine, proposer = _engine_and_proposer(models, canonical)
    return EngineMethod(engine, policy_factory(policy, costs=models.cost_curve), proposer=proposer, spec=canonical)


def _build_glide_cape(spec: MethodSpec, models: ModelSet) -> EngineMethod:
    method = CapeMethod.from_spec(spec, kind=GLIDE_CAPE)
    method.require_greedy(models.sampling)
    engine, proposer = _engine_and_proposer(models, method.spec)
    return EngineMethod(
        engine,
        policy_factory(method.policy, costs=models.cost_curve),
        proposer=CapeProposer(proposer, method),
        spec=method.spec,
    )


def _respell_svip(kind: str):
    """``glide-svip`` -> ``glide+svip``; ``glide-svip:h=0.4`` -> ``glide+svip:h=0.4`` (the issue's names)."""

    def respell(text: str) -> str | None:
        name, colon, params = text.partition(":")
        if name.strip().lower() != f"{kind}-svip" or "+" in text:
            return None
        return f"{kind}+svip" + (colon + params if colon else "")

    return respell


GLIDE_KIND = MethodKind(
    GLIDE,
    _glide_canonical,
    _build_glide,
    alias=_respell_svip(GLIDE),
    help="glide[+<policy>]: GliDe's draft (cross-attention to the target's KV cache; --glide-draft) on the vanilla "
    "engine; default policy constant:k=4 (upstream); glide-svip = glide+svip",
)
GLIDE_CAPE_KIND = MethodKind(
    GLIDE_CAPE,
    _glide_cape_canonical,
    _build_glide_cape,
    alias=_respell_svip(GLIDE_CAPE),
    help="glide-cape[:bins=8/8/8/6/6/6/4/4/2/2/2/2,nodes=64][+<policy>]: GliDe's chain expanded by CaPE, verified "
    "as a tree (greedy); glide-cape-svip = glide-cape+svip",
)
