"""Registry kinds of the vanilla engine: ``target-only`` and any bare policy string (``svip:h=0.3``)."""

from __future__ import annotations

from svip.grammar import MethodSpec, MethodSpecError
from svip.spec import make_policy, policy_factory

from ..kinds import TARGET_ONLY, MethodKind, ModelSet
from .engine import EngineMethod

__all__ = ["TARGET_ONLY", "TARGET_ONLY_KIND", "VANILLA_KIND"]


def _target_only_canonical(spec: MethodSpec) -> str:
    if spec.params or spec.policy:
        raise MethodSpecError("target-only takes no parameters and no policy")
    return TARGET_ONLY


def _build_target_only(spec: MethodSpec, models: ModelSet) -> EngineMethod:
    if models.target_only is not None:  # a kind's own models (EAGLE's EaModel) decode target-only themselves
        return models.target_only()
    return EngineMethod(models.engine(), None, spec=TARGET_ONLY)


def _engine_cost_curve(models: ModelSet, prompt: list[int]) -> dict:
    """The vanilla engine's cost curve on the run's warm-up prompt: every run's target-only measures it.

    Shared as ``cost_curve``, so a cost-aware policy (svip-adaptive) starts from it.
    """
    from .costs import measure_cost_curve

    return models.shared("cost_curve", lambda: measure_cost_curve(models.engine(), prompt))


def _vanilla_canonical(spec: MethodSpec) -> str:
    if spec.params:
        raise MethodSpecError(
            f"vanilla takes no parameters of its own, got {', '.join(spec.params)}; put them in the policy"
        )
    if not spec.policy:
        raise MethodSpecError("vanilla needs a policy: vanilla+svip or just svip:h=0.3,gamma=0.15")
    return make_policy(spec.policy).spec


def _build_vanilla(spec: MethodSpec, models: ModelSet) -> EngineMethod:
    models.require_draft(spec.policy)
    return EngineMethod(models.engine(), policy_factory(spec.policy_call, costs=models.cost_curve), spec=spec.policy)


TARGET_ONLY_KIND = MethodKind(
    TARGET_ONLY,
    _target_only_canonical,
    _build_target_only,
    needs="target",
    help="target-only: plain decoding on the same loop (the baseline of every speedup)",
    cost_curve=_engine_cost_curve,
)
VANILLA_KIND = MethodKind(
    "vanilla",
    _vanilla_canonical,
    _build_vanilla,
    help="<policy> (= vanilla+<policy>): the streamlined draft/verify loop, e.g. svip:h=0.3,gamma=0.15 or constant:k=5",
)
