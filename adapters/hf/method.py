"""Registry kind ``hf+<policy>``: transformers' own assisted generation.

``hf+constant:k=5``, ``hf+heuristic:k0=5`` and ``hf+confidence:p_min=0.4``
run transformers' *own* schedules (``num_assistant_tokens``, its +2/-1
heuristic, ``assistant_confidence_threshold``); any other policy
(``hf+svip``) runs through ``enable`` inside transformers' loop. The old
spelling ``hf-<policy>`` is read as an alias.
"""

from __future__ import annotations

from typing import Sequence

from svip.grammar import MethodSpec, MethodSpecError
from svip.method import Decoded, GenerationRequest, SpeculativeMethod
from svip.policies import refuse_dropping
from svip.spec import PolicyFactory, make_policy, policy_factory

from ..kinds import MethodKind, ModelSet
from .assisted import AssistedGenerator

__all__ = ["HF", "HF_KIND", "HF_NATIVE", "HfMethod"]

HF = "hf"
HF_NATIVE = frozenset({"constant", "heuristic", "confidence"})  # policies transformers implements itself
_OLD_PREFIX = "hf-"


class HfMethod(SpeculativeMethod):
    """One policy inside ``target.generate(assistant_model=draft)``."""

    def __init__(self, generator: AssistedGenerator, policy: str, factory: PolicyFactory | None = None) -> None:
        self.generator, self.policy = generator, policy
        self.factory = factory or policy_factory(policy)
        self.native = policy.partition(":")[0] in HF_NATIVE
        self.spec = f"{HF}+{policy}"
        self.vocab_size, self.context_length = generator.vocab_size, generator.context_length

    def _decode(self, request: GenerationRequest, reference: Sequence[int] | None) -> Decoded:
        return self.generator.decode(request, self.factory(reference), native=self.native)


def _canonical(spec: MethodSpec) -> str:
    if spec.params:
        raise MethodSpecError(
            f"hf takes no parameters of its own, got {', '.join(spec.params)}; put them in the policy"
        )
    if not spec.policy:
        raise MethodSpecError(
            "hf needs a policy: hf+svip, hf+heuristic:k0=5, hf+constant:k=5, hf+confidence:p_min=0.4"
        )
    policy = make_policy(spec.policy)
    refuse_dropping(policy, "transformers' assisted generation")
    return f"{HF}+{policy.spec}"


def _build(spec: MethodSpec, models: ModelSet) -> HfMethod:
    models.require_draft(str(spec))
    generator = models.shared("hf-assisted", lambda: AssistedGenerator(models.target, models.draft, models.sampling))
    return HfMethod(generator, spec.policy, policy_factory(spec.policy_call, costs=models.cost_curve))


def _alias(text: str) -> str | None:
    """``hf-svip:h=0.3`` (before one grammar) -> ``hf+svip:h=0.3``."""
    return HF + "+" + text[len(_OLD_PREFIX) :] if text.startswith(_OLD_PREFIX) else None


HF_KIND = MethodKind(
    HF,
    _canonical,
    _build,
    alias=_alias,
    help="hf+<policy>: transformers' assisted generation; hf+constant/heuristic/confidence use transformers' own schedules",
)
