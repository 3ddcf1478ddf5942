"""Put a draft-length policy inside transformers' assisted generation: ``enable(draft)`` / ``disable(draft)``.

``enable(draft, policy)`` attaches a ``SvipHook`` to the draft *instance*: the
policy, an LM-head tap for raw logits, and the draft's assistant settings
(saved, and set so that the policy alone decides). When
``target.generate(..., assistant_model=draft)`` then builds its candidate
generator, it gets a ``PolicyCandidateGenerator`` (transformers' own
``AssistedCandidateGenerator``, subclassed) instead of the stock one; a draft
without a hook, and every other kind of candidate generator (prompt lookup,
early exit, different tokenizers), are left to transformers.

The one private entry point is ``GenerationMixin._get_candidate_generator``,
wrapped once (inert for drafts without a hook); ``tests/test_hf_adapter.py``
pins its signature and its call in ``_assisted_decoding`` so that a
transformers upgrade that moves it fails loudly instead of silently drafting
without the policy. ``disable(draft)`` restores the draft's settings and
removes the tap. Verification stays transformers' own, so losslessness is
transformers'.
"""

from __future__ import annotations

import functools
from typing import Any

from transformers import PreTrainedModel
from transformers.generation.utils import GenerationMixin

from svip.grammar import Call, parse_call
from svip.policies import DraftLengthPolicy
from svip.results import RoundStats
from svip.spec import PolicySpecError, make_policy

from .candidates import LogitsTap, PolicyCandidateGenerator

__all__ = ["SvipHook", "disable", "enable", "hook_of", "install_dispatch"]

_ATTRIBUTE = "_svip_hook"
# The assistant options transformers reads from ``assistant_model.generation_config``.
_ASSISTANT_FIELDS = ("num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold")


class SvipHook:
    """The state ``enable`` attaches to a draft model; ``rounds`` holds the last assisted call's rounds."""

    def __init__(
        self, draft: PreTrainedModel, policy: DraftLengthPolicy | None, *, transformers_refit: bool = False
    ) -> None:
        self.draft = draft
        self.policy = policy
        self.transformers_refit = transformers_refit  # policy None: let transformers re-fit its confidence threshold
        self.rounds: list[RoundStats] = []
        self._saved_config = {name: getattr(draft.generation_config, name, None) for name in _ASSISTANT_FIELDS}
        self._tap = LogitsTap(draft.get_output_embeddings()) if policy is not None else None
        if policy is not None:
            # transformers' own schedules off: our policy decides, within its hard cap.
            draft.generation_config.num_assistant_tokens = policy.max_draft
            draft.generation_config.num_assistant_tokens_schedule = "constant"
            draft.generation_config.assistant_confidence_threshold = 0.0  # None would be refilled with 0.4

    def candidate_generator(self, **kwargs: Any) -> PolicyCandidateGenerator:
        """A fresh candidate generator for one assisted ``generate`` call (its rounds land in ``self.rounds``)."""
        self.rounds = []
        return PolicyCandidateGenerator(
            policy=self.policy, tap=self._tap, rounds=self.rounds, transformers_refit=self.transformers_refit, **kwargs
        )

    def remove(self) -> None:
        """Undo everything ``enable`` did to the draft model."""
        for name, value in self._saved_config.items():
            setattr(self.draft.generation_config, name, value)
        if self._tap is not None:
            self._tap.remove()
        self.draft.__dict__.pop(_ATTRIBUTE, None)


_ORIGINAL = GenerationMixin._get_candidate_generator


@functools.wraps(_ORIGINAL)
def _get_candidate_generator(
    self,
    generation_config,
    input_ids,
    inputs_tensor,
    logits_processor,
    model_kwargs,
    assistant_model=None,
    target_tokenizer=None,
    assistant_tokenizer=None,
):
    hook = hook_of(assistant_model) if assistant_model is not None else None
    stock = (
        hook is None
        or generation_config.assistant_early_exit is not None
        or generation_config.prompt_lookup_num_tokens is not None
        or all(v is not None for v in (target_tokenizer, assistant_tokenizer))
    )
    if stock:
        return _ORIGINAL(self, generation_config, input_ids, inputs_tensor, logits_processor, model_kwargs,
                         assistant_model, target_tokenizer, assistant_tokenizer)  # fmt: skip
    return hook.candidate_generator(
        input_ids=input_ids,
        assistant_model=assistant_model,
        generation_config=generation_config,
        model_kwargs=model_kwargs,
        inputs_tensor=inputs_tensor,
        logits_processor=logits_processor,
    )


def install_dispatch() -> None:
    """Route assisted generation with a hooked draft to ``PolicyCandidateGenerator`` (idempotent)."""
    if GenerationMixin._get_candidate_generator is not _get_candidate_generator:
        GenerationMixin._get_candidate_generator = _get_candidate_generator


def _with_overrides(policy: str, overrides: dict[str, object]) -> str:
    """``("svip:h=0.3", {"h": 0.4})`` -> ``"svip:h=0.4"``, through the one grammar."""
    call = parse_call(policy, error=PolicySpecError)
    items = dict(call.items)
    items.update({k: str(v) for k, v in overrides.items()})
    return str(Call(call.name, tuple(items.items())))


def enable(
    draft: PreTrainedModel,
    policy: str | DraftLengthPolicy | None = "svip",
    *,
    h: float | None = None,
    gamma: float | None = None,
    max_draft: int | None = None,
    transformers_refit: bool = False,
) -> SvipHook:
    """Make ``target.generate(..., assistant_model=draft)`` draft under ``policy``.

    ``enable(draft)`` is SVIP with the paper's defaults; ``enable(draft, h=0.4)``
    overrides them; any policy string or object works (``"constant:k=3"``).
    ``policy=None`` only records rounds and leaves transformers' own schedule
    in charge (what the harness's ``hf+constant`` etc. use); with it,
    ``transformers_refit`` lets transformers re-fit its confidence threshold
    (scikit-learn needed). Calling ``enable`` again replaces the previous hook.
    """
    if hook_of(draft) is not None:
        disable(draft)
    overrides = {k: v for k, v in {"h": h, "gamma": gamma, "max": max_draft}.items() if v is not None}
    if isinstance(policy, str):
        policy = make_policy(_with_overrides(policy, overrides))
    elif policy is not None and overrides:
        raise ValueError("h/gamma/max_draft go with a policy name, not with a policy object")
    install_dispatch()
    hook = SvipHook(draft, policy, transformers_refit=transformers_refit)
    draft.__dict__[_ATTRIBUTE] = hook
    return hook


def hook_of(draft: PreTrainedModel) -> SvipHook | None:
    """The active hook on ``draft``, if any."""
    return draft.__dict__.get(_ATTRIBUTE)


def disable(draft: PreTrainedModel) -> None:
    """Restore ``draft`` to plain transformers behaviour (no-op when not enabled)."""
    hook = hook_of(draft)
    if hook is not None:
        hook.remove()
