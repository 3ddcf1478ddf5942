"""Registry kind ``eagle2[:total=60,depth=7,top_k=10][,variant=min]+svip[:h=..,gamma=..]``: the patched upstream EAGLE-2.

An EAGLE run brings its own models (``load_models``: ``EaModel`` on the
target's base model and ``--eagle-head``); its target-only decodes on the
same base model and cache, and its cost curve is the verify curve there.
"""

from __future__ import annotations

from typing import Mapping

from svip.grammar import MethodSpec
from svip.method import SpeculativeMethod

from ..kinds import MethodKind, ModelSet
from .loading import HEAD_OPTION, generator_of, load_eagle_models
from .method import EAGLE_PREFIX, EagleMethod, respell

__all__ = ["EAGLE2_KIND"]


def _canonical(spec: MethodSpec) -> str:
    return EagleMethod.from_spec(spec).spec


def _check(spec: MethodSpec, options: Mapping[str, str | None]) -> None:
    if not options.get(HEAD_OPTION.name):
        raise ValueError(f"{spec} needs an EAGLE head ({HEAD_OPTION.flag} {HEAD_OPTION.metavar})")


def _build(spec: MethodSpec, models: ModelSet) -> SpeculativeMethod:
    from .generator import EagleMethodRunner  # imports EAGLE only when an EAGLE method is really built

    method = EagleMethod.from_spec(spec)
    return EagleMethodRunner(generator_of(models, method.spec), method)


def _cost_curve(models: ModelSet, prompt: list[int]) -> dict:
    """The verify curve on EAGLE's base model and cache (svip-adaptive starts from it)."""
    return generator_of(models, EAGLE_PREFIX).cost_curve(prompt)


def _describe_draft(options: Mapping[str, str | None]) -> str | None:
    """Which drafter ran: the head's format picks EAGLE-3's tree or EAGLE-1/2's."""
    from .generator import is_eagle3_head

    head = options.get(HEAD_OPTION.name)
    return f"{'EAGLE-3' if is_eagle3_head(head) else 'EAGLE-1/2'} head {head}" if head else None


EAGLE2_KIND = MethodKind(
    EAGLE_PREFIX,
    _canonical,
    _build,
    alias=respell,
    needs="target",
    help="eagle2[:total=60,depth=7,top_k=10][,variant=min|weighted|top][+svip:h=0.3,gamma=0.15]: "
    "the patched upstream EAGLE-2 tree (--eagle-head; its own venv)",
    options=(HEAD_OPTION,),
    check=_check,
    load_models=load_eagle_models,
    cost_curve=_cost_curve,
    describe_draft=_describe_draft,
)
