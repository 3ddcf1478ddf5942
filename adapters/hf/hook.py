"""Put a draft-length policy inside transformers' assisted generation.

transformers drafts by calling ``assistant_model.generate(...)`` once per
round from its ``AssistedCandidateGenerator``, with a generation config that
has ``is_assistant=True``. ``enable(draft, ...)`` wraps that one method on the
draft *instance* (nothing global, nothing on the class):

- the round's token budget becomes ``min(transformers' budget, policy.round_budget())``;
- a ``StoppingCriteria`` asks the policy after every drafted token whether to
  go on; SVIP's entropy is taken from the draft's *raw* logits, captured by a
  forward hook on its LM head (the ``scores`` transformers hands to stopping
  criteria are already temperature/top-p processed);
- how many drafted tokens the target accepted is read off the next round's
  input length and fed to ``policy.observe``.

The user's other ``generate`` kwargs pass through untouched, a direct
``draft.generate(...)`` call (not as an assistant) is not affected, and
``disable(draft)`` restores the draft's generation config and removes the
wrapper and the hook. Verification stays transformers' own, so losslessness is
transformers'.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedModel, StoppingCriteria, StoppingCriteriaList

from svip.policies import DraftLengthPolicy, DraftStep
from svip.spec import make_policy

__all__ = ["DraftRound", "SvipHook", "disable", "enable", "hook_of"]

_ATTRIBUTE = "_svip_hook"
# The assistant options transformers reads from ``assistant_model.generation_config``.
_ASSISTANT_FIELDS = ("num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold")


@dataclass
class DraftRound:
    """One call of the draft's ``generate`` inside assisted generation."""

    start_length: int  # tokens in the sequence when the round began
    drafted: int = 0
    entropies: list[float] = field(default_factory=list)  # raw-logit entropies, when the policy computed them
    seconds: float = 0.0


class _LogitsTap:
    """Forward hook on the LM head: keeps the raw logits of the last position."""

    def __init__(self, head: torch.nn.Module) -> None:
        self.last: torch.Tensor | None = None
        self._handle = head.register_forward_hook(self._capture)

    def _capture(self, module, inputs, output) -> None:
        self.last = output[:, -1, :].detach()

    def remove(self) -> None:
        self._handle.remove()


class _PolicyCriteria(StoppingCriteria):
    """Asks the policy, after each drafted token, whether to draft another."""

    def __init__(self, policy: DraftLengthPolicy, tap: _LogitsTap, round_: DraftRound, generated_before: int) -> None:
        self.policy = policy
        self.tap = tap
        self.round = round_
        self.generated_before = generated_before

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        index = input_ids.shape[-1] - self.round.start_length - 1
        step = DraftStep(
            index=index, position=self.generated_before + index, token=int(input_ids[0, -1]), logits=self.tap.last[0]
        )
        stop = not self.policy.continue_drafting(step)
        if "entropy" in step.__dict__:  # computed by the policy: log it for free
            self.round.entropies.append(step.entropy)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class SvipHook:
    """The state ``enable`` attaches to a draft model (see module docstring)."""

    def __init__(self, draft: PreTrainedModel, policy: DraftLengthPolicy | None) -> None:
        self.draft = draft
        self.policy = policy
        self.rounds: list[DraftRound] = []
        self._prompt_length = 0
        self._saved_config = {name: getattr(draft.generation_config, name, None) for name in _ASSISTANT_FIELDS}
        self._original_generate = draft.generate  # bound method of the class
        self._tap = _LogitsTap(draft.get_output_embeddings()) if policy is not None else None
        if policy is not None:
            # transformers' own schedules off: our policy decides, within its hard cap.
            draft.generation_config.num_assistant_tokens = policy.max_draft
            draft.generation_config.num_assistant_tokens_schedule = "constant"
            draft.generation_config.assistant_confidence_threshold = 0.0  # None would be refilled with 0.4
        draft.generate = self._generate  # instance attribute shadows the class method

    def _generate(self, *args: Any, **kwargs: Any):
        config = kwargs.get("generation_config")
        if config is None or not getattr(config, "is_assistant", False):
            return self._original_generate(*args, **kwargs)
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None or input_ids.shape[0] != 1:
            raise ValueError(
                "svip's assisted-generation hook supports batch size 1 (as does transformers' assisted decoding)"
            )
        length = input_ids.shape[-1]
        self._begin_round(length, first=kwargs.get("past_key_values") is None)
        round_ = self.rounds[-1]
        if self.policy is not None:
            budget = max(
                1, min(int(kwargs.get("max_new_tokens") or self.policy.max_draft), self.policy.round_budget())
            )
            kwargs["max_new_tokens"] = budget
            kwargs["min_new_tokens"] = min(int(kwargs.get("min_new_tokens") or 0), budget)
            criteria = _PolicyCriteria(self.policy, self._tap, round_, generated_before=length - self._prompt_length)
            kwargs["stopping_criteria"] = StoppingCriteriaList([*(kwargs.get("stopping_criteria") or []), criteria])
        start = time.perf_counter()
        output = self._original_generate(*args, **kwargs)
        round_.seconds = time.perf_counter() - start
        round_.drafted = output.sequences.shape[-1] - length
        return output

    def _begin_round(self, length: int, *, first: bool) -> None:
        if first:  # a new assisted generate() call: the input is the prompt
            self.rounds = []
            self._prompt_length = length
            if self.policy is not None:
                self.policy.start_sequence()
        elif self.rounds and self.policy is not None:
            previous = self.rounds[-1]
            accepted = max(0, min(previous.drafted, length - previous.start_length - 1))
            self.policy.observe(previous.drafted, accepted)
        self.rounds.append(DraftRound(start_length=length))

    def remove(self) -> None:
        """Undo everything ``enable`` did to the draft model."""
        if self.draft.__dict__.get("generate") == self._generate:
            del self.draft.generate
        for name, value in self._saved_config.items():
            setattr(self.draft.generation_config, name, value)
        if self._tap is not None:
            self._tap.remove()
        self.draft.__dict__.pop(_ATTRIBUTE, None)


def enable(
    draft: PreTrainedModel,
    policy: str | DraftLengthPolicy | None = "svip",
    *,
    h: float | None = None,
    gamma: float | None = None,
    max_draft: int | None = None,
) -> SvipHook:
    """Make ``target.generate(..., assistant_model=draft)`` draft under ``policy``.

    ``enable(draft)`` is SVIP with the paper's defaults; ``enable(draft, h=0.4)``
    overrides them; any policy string or object works (``"constant:k=3"``).
    ``policy=None`` only records rounds and leaves transformers' own schedule
    in charge (what the harness's ``hf-constant`` etc. use). Calling ``enable``
    again replaces the previous hook.
    """
    if hook_of(draft) is not None:
        disable(draft)
    if isinstance(policy, str):
        overrides = {k: v for k, v in {"h": h, "gamma": gamma, "max": max_draft}.items() if v is not None}
        name, _, params = policy.partition(":")
        extra = ",".join(f"{k}={v}" for k, v in overrides.items())
        policy = make_policy(name + ":" + ",".join(p for p in (params, extra) if p) if (params or extra) else name)
    elif policy is not None and (h is not None or gamma is not None or max_draft is not None):
        raise ValueError("h/gamma/max_draft go with a policy name, not with a policy object")
    hook = SvipHook(draft, policy)
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
