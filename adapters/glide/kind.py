"""Registry kinds ``glide[+<policy>]`` and ``glide-cape[:bins=..,nodes=..][+<policy>]``: GliDe drafting on our engine.

``glide`` drafts upstream's fixed 4 tokens per round (``glide+constant:k=4``)
unless a policy is given (``glide+svip``); ``glide-cape`` expands the kept
chain with CaPE's candidates and verifies the tree in one target forward.
The issue's names ``glide-svip`` and ``glide-cape-svip`` are read as
``glide+svip`` and ``glide-cape+svip``. Every GliDe method needs the run's
GliDe draft (``--glide-draft DIR``, this module's option), built on its own
base model and loaded once per run, on first use (``ModelSet.shared``).
"""

from __future__ import annotations

from typing import Mapping

from svip.grammar import MethodSpec, MethodSpecError
from svip.method import InputError
from svip.spec import make_policy, policy_factory

from ..cape.method import CapeMethod
from ..cape.proposer import CapeProposer
from ..kinds import MethodKind, ModelSet, Option
from ..loading import Placement
from ..vanilla.engine import EngineMethod, SpeculativeEngine
from .draft import GlideDraft
from .proposer import GlideProposer

__all__ = ["DRAFT_OPTION", "GLIDE", "GLIDE_CAPE", "GLIDE_CAPE_KIND", "GLIDE_KIND", "attach_draft"]

GLIDE, GLIDE_CAPE = "glide", "glide-cape"
DEFAULT_POLICY = "constant:k=4"  # upstream GliDe drafts 4 tokens per round
DRAFT_OPTION = Option(
    "glide_draft",
    "GliDe draft for the glide* methods (built on its base draft model, reads the target's KV cache; "
    "make glide-draft; shipped: adapters/glide/drafts/...)",
    metavar="DIR",
)
_DRAFT = "glide-draft"  # the run's GliDe draft in ModelSet.shared
_MISSING = (
    "needs a GliDe draft (--glide-draft DIR; make glide-draft builds one, adapters/glide/drafts/ has shipped ones)"
)


def _check(spec: MethodSpec, options: Mapping[str, str | None]) -> None:
    if not options.get(DRAFT_OPTION.name):
        raise ValueError(f"{spec} {_MISSING}")


def attach_draft(models: ModelSet, draft: GlideDraft) -> ModelSet:
    """Give ``models`` an already built GliDe draft (tests, notebooks) instead of ``--glide-draft``'s directory."""
    models.shared(_DRAFT, lambda: draft)
    return models


def _draft(models: ModelSet, method: str) -> GlideDraft:
    """The run's GliDe draft: loaded from ``--glide-draft`` the first time a glide* method is built."""

    def load() -> GlideDraft:
        from .loading import load_glide_draft

        directory = models.options.get(DRAFT_OPTION.name)
        if not directory:
            raise InputError(f"{method} {_MISSING}")
        placement = models.request.draft_placement if models.request is not None else Placement()
        return load_glide_draft(directory, models.target, placement, models.tokenizer)

    return models.shared(_DRAFT, load)


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
    if models.loaded_by is not None or models.target is None:
        raise InputError(f"{method} needs the vanilla engine's target model (a run of the shared target + draft)")
    draft = _draft(models, method)
    engine = models.shared(
        "glide-engine",
        lambda: SpeculativeEngine(
            models.target,
            draft.model,
            sampling=models.sampling,
            record_cross_entropy=models.record_cross_entropy,
        ),
    )
    return engine, GlideProposer(draft, engine.draft.model, engine.target.model, models.sampling)


def _build_glide(spec: MethodSpec, models: ModelSet) -> EngineMethod:
    engine, proposer = _engine_and_proposer(models, str(spec))
    return EngineMethod(
        engine, policy_factory(spec.policy_call, costs=models.cost_curve), proposer=proposer, spec=str(spec)
    )


def _build_glide_cape(spec: MethodSpec, models: ModelSet) -> EngineMethod:
    method = CapeMethod.from_spec(spec, kind=GLIDE_CAPE)
    method.require_greedy(models.sampling)
    engine, proposer = _engine_and_proposer(models, method.spec)
    return EngineMethod(
        engine,
        policy_factory(spec.policy_call, costs=models.cost_curve),
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
    needs="target",
    options=(DRAFT_OPTION,),
    check=_check,
    help="glide[+<policy>]: GliDe's draft (cross-attention to the target's KV cache; --glide-draft) on the vanilla "
    "engine; default policy constant:k=4 (upstream); glide-svip = glide+svip",
)
GLIDE_CAPE_KIND = MethodKind(
    GLIDE_CAPE,
    _glide_cape_canonical,
    _build_glide_cape,
    alias=_respell_svip(GLIDE_CAPE),
    needs="target",
    options=(DRAFT_OPTION,),
    check=_check,
    help="glide-cape[:bins=8/8/8/6/6/6/4/4/2/2/2/2,nodes=64][+<policy>]: GliDe's chain expanded by CaPE, verified "
    "as a tree (greedy); glide-cape-svip = glide-cape+svip",
)
