"""Registry kind ``eagle2[:total=60,depth=7,top_k=10][,variant=min]+svip[:h=..,gamma=..]``: the patched upstream EAGLE-2."""

from __future__ import annotations

from svip.grammar import MethodSpec
from svip.method import InputError, SpeculativeMethod

from ..kinds import MethodKind, ModelSet
from .method import EAGLE_PREFIX, EagleMethod, respell

__all__ = ["EAGLE2_KIND"]


def _canonical(spec: MethodSpec) -> str:
    return EagleMethod.from_spec(spec).spec


def _build(spec: MethodSpec, models: ModelSet) -> SpeculativeMethod:
    from .generator import EagleMethodRunner  # imports EAGLE only when an EAGLE method is really built

    method = EagleMethod.from_spec(spec)
    if models.eagle is None:
        raise InputError(f"{method.spec} runs on EAGLE's EaModel: give the run an EAGLE head (--eagle-head)")
    return EagleMethodRunner(models.eagle, method)


EAGLE2_KIND = MethodKind(
    EAGLE_PREFIX,
    _canonical,
    _build,
    alias=respell,
    needs="eagle",
    help="eagle2[:total=60,depth=7,top_k=10][,variant=min|weighted|top][+svip:h=0.3,gamma=0.15]: "
    "the patched upstream EAGLE-2 tree (--eagle-head; its own venv)",
)
