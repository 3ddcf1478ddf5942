"""Registry kind ``cascade[:k=..,mag=..,sub=..,lenience=..][,handoff=1|0][+<policy>]``: CS Drafting in the vanilla engine."""

from __future__ import annotations

from svip.grammar import MethodSpec
from svip.method import InputError
from svip.runtime import cache_root
from svip.spec import policy_factory

from ..kinds import MethodKind, ModelSet
from ..vanilla.engine import EngineMethod
from .bigram import cached_bigram_table
from .maxgram import MaxGram
from .method import CASCADE, CascadeMethod, old_spelling
from .proposer import CascadeProposer

__all__ = ["CASCADE_KIND"]


def _canonical(spec: MethodSpec) -> str:
    return CascadeMethod.from_spec(spec).spec


def _maxgram(models: ModelSet) -> MaxGram:
    if models.tokenizer is None:
        raise InputError("cascade methods need the tokenizer (ModelSet(tokenizer=...)) for Max-Gram's bigram table")
    engine = models.engine()
    return MaxGram(cached_bigram_table(models.tokenizer, engine.vocab_size, cache_root() / "bigram"))


def _build(spec: MethodSpec, models: ModelSet) -> EngineMethod:
    cascade = CascadeMethod.from_spec(spec)
    models.require_draft(cascade.spec)
    if cascade.policy is not None and cascade.policy.startswith("oracle") and not models.sampling.greedy:
        raise InputError("the oracle policy is defined for greedy decoding only")
    engine = models.engine()
    inner = policy_factory(spec.policy_call, costs=models.cost_curve) if spec.policy_call is not None else None
    maxgram = models.shared("maxgram", lambda: _maxgram(models))
    proposer = CascadeProposer(engine.draft.model, engine.sampling, maxgram, cascade, engine.vocab_size)
    return EngineMethod(
        engine,
        lambda reference: cascade.engine_policy(reference=list(reference or []), inner=inner),
        proposer=proposer,
        spec=cascade.spec,
    )


CASCADE_KIND = MethodKind(
    CASCADE,
    _canonical,
    _build,
    alias=old_spelling,
    help="cascade[:k=5,mag=5,sub=10,lenience=1][,handoff=1|0][+<policy>]: CS Drafting (Max-Gram + draft review); +svip governs its draft level",
)
