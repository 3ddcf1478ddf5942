"""``PolicyCandidateGenerator``: transformers' ``AssistedCandidateGenerator`` under a draft-length policy.

transformers' assisted generation asks a ``CandidateGenerator`` for each
round's draft (``get_candidates``) and reports the verification back
(``update_candidate_strategy(input_ids, scores, num_matches)``). This
subclass keeps transformers' drafting (the assistant's own ``generate``, its
cache handling, its logits processors) and changes two things:

- the round's length: ``min(policy.round_budget(), ...)`` tokens at most,
  and a ``StoppingCriteria`` that asks the policy after every drafted token
  (SVIP's entropy is taken from the draft's *raw* logits, captured by a
  forward hook on its LM head: the ``scores`` handed to stopping criteria are
  already temperature/top-p processed);
- the bookkeeping: each round's drafted count, ``num_matches`` as transformers
  hands it over, and its own timings (drafting = ``get_candidates``; verify =
  from there to ``update_candidate_strategy``: the target forward and the
  acceptance test).

With ``policy=None`` transformers' own schedule stays in charge (constant,
heuristic, confidence threshold) and the rounds are only recorded.
transformers' online ROC re-fit of the confidence threshold runs only for its
exact class (``type(self) is AssistedCandidateGenerator``, in ``__init__``,
``_generate_candidates`` and ``update_candidate_strategy``) and only with
scikit-learn installed; being a subclass, this generator skips it unless
``transformers_refit`` is set (``hf+confidence:...,refit=1``): then those
three calls of transformers' own code run as the exact class, so the re-fit is
transformers' code, not a copy.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.candidate_generator import AssistedCandidateGenerator

from svip.costs import RoundTiming
from svip.policies import DraftLengthPolicy, DraftStep, refuse_dropping
from svip.results import RoundStats

__all__ = ["LogitsTap", "PolicyCandidateGenerator"]


class LogitsTap:
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

    def __init__(
        self,
        policy: DraftLengthPolicy,
        tap: LogitsTap,
        start_length: int,
        generated_before: int,
        entropies: list[float],
    ):
        self.policy, self.tap, self.start_length, self.generated_before, self.entropies = (
            policy,
            tap,
            start_length,
            generated_before,
            entropies,
        )

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        index = input_ids.shape[-1] - self.start_length - 1
        step = DraftStep(
            index=index, position=self.generated_before + index, token=int(input_ids[0, -1]), logits=self.tap.last[0]
        )
        stop = not self.policy.continue_drafting(step)
        if "entropy" in step.__dict__:  # computed by the policy: log it for free
            self.entropies.append(step.entropy)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class PolicyCandidateGenerator(AssistedCandidateGenerator):
    """Drafts under ``policy`` (None: transformers' schedule) and appends one ``RoundStats`` per round to ``rounds``."""

    def __init__(
        self,
        *args,
        policy: DraftLengthPolicy | None,
        tap: LogitsTap | None,
        rounds: list[RoundStats],
        transformers_refit: bool = False,
        **kwargs,
    ) -> None:
        self.transformers_refit = transformers_refit and policy is None
        with self._as_transformers():  # (explicit base calls: super() refuses an instance of another class)
            AssistedCandidateGenerator.__init__(self, *args, **kwargs)
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None or input_ids.shape[0] != 1:
            raise ValueError(
                "svip's candidate generator supports batch size 1 (as does transformers' assisted decoding)"
            )
        refuse_dropping(policy, "transformers' assisted generation")
        self.policy, self.tap, self.rounds = policy, tap, rounds
        self.prompt_length = input_ids.shape[-1]
        if policy is not None:
            if tap is None:
                raise ValueError("a policy needs the LM-head tap for raw logits")
            policy.start_sequence()
        self._start_length = 0
        self._entropies: list[float] = []
        self._draft_seconds = 0.0
        self._verify_start = 0.0
        self._drafted = 0
        self._round = 0
        self._draft_in_step = False  # did the previous round draft (so the assistant's cache is current)?
        self._draft_clean = False
        self._catch_up_seconds = 0.0

    def get_candidates(self, input_ids: torch.LongTensor, **kwargs):
        start = time.perf_counter()
        self._start_length = input_ids.shape[-1]
        self._entropies = []
        self._draft_clean = self._draft_in_step  # a first round (the prompt's prefill) is not a step
        self._catch_up_seconds = 0.0
        if self.policy is not None:
            budget = self.policy.round_budget()
            if budget <= 0:  # the policy judged drafting does not pay: transformers runs a plain target step
                self._drafted, self._draft_in_step = 0, False
                self._verify_start = time.perf_counter()
                self._draft_seconds = self._verify_start - start
                return input_ids, None
            self.num_assistant_tokens = budget
            if not self._draft_in_step:
                caught_up = time.perf_counter()
                self._draft_clean = self._catch_up(input_ids)  # its forward is not a draft step: priced apart
                self._catch_up_seconds = time.perf_counter() - caught_up
        candidate_ids, candidate_logits = super().get_candidates(input_ids, **kwargs)
        self._draft_in_step = True
        self._drafted = candidate_ids.shape[-1] - input_ids.shape[-1]
        self._verify_start = time.perf_counter()
        self._draft_seconds = self._verify_start - start
        return candidate_ids, candidate_logits

    @contextmanager
    def _as_transformers(self):
        """With ``transformers_refit``: run transformers' code as its exact class, so its ROC re-fit runs."""
        if not self.transformers_refit:
            yield
            return
        own = self.__class__
        self.__class__ = AssistedCandidateGenerator
        try:
            yield
        finally:
            self.__class__ = own

    def _generate_candidates(self, generation_args: dict):
        with self._as_transformers():
            return AssistedCandidateGenerator._generate_candidates(self, generation_args)

    @property
    def confidence_threshold(self) -> float | None:
        """The threshold in force (transformers' re-fit moves it)."""
        return self.assistant_generation_config.assistant_confidence_threshold

    def _catch_up(self, input_ids: torch.LongTensor) -> bool:
        """Feed the assistant the tokens decoded while it sat out (target-only rounds); whether it is now current.

        transformers expects the assistant's cache to lag the input by the
        round's last tokens only, and its masks to match; after rounds without
        drafting both are stale and transformers would misplace positions.
        ``False``: it never drafted in this generation, so its first draft
        forward still carries the prompt's prefill (not a price of a step).
        """
        cache = self.assistant_kwargs.get("past_key_values")
        if cache is None:  # it never drafted in this generation: its masks still describe the prompt
            if self.assistant_kwargs.get("position_ids") is not None:
                self.assistant_kwargs["position_ids"] = torch.arange(input_ids.shape[-1], device=input_ids.device)[
                    None
                ]
            if self.assistant_kwargs.get("attention_mask") is not None:
                self.assistant_kwargs["attention_mask"] = torch.ones_like(input_ids)
            return False
        have, want = cache.get_seq_length(), input_ids.shape[-1] - 2
        if have < want:
            self.assistant_model(
                input_ids=input_ids[:, have:want].to(self.assistant_model.device),
                past_key_values=cache,
                use_cache=True,
            )
        return True

    def _prepare_generation_args(self, input_ids: torch.LongTensor, min_new_tokens: int, max_new_tokens: int) -> dict:
        args = super()._prepare_generation_args(input_ids, min_new_tokens, max_new_tokens)
        if self.policy is not None:
            criteria = _PolicyCriteria(
                self.policy, self.tap, input_ids.shape[-1], input_ids.shape[-1] - self.prompt_length, self._entropies
            )
            args["stopping_criteria"] = StoppingCriteriaList([criteria])
        return args

    def update_candidate_strategy(self, input_ids: torch.LongTensor, scores: torch.Tensor, num_matches: int) -> None:
        verify_seconds = time.perf_counter() - self._verify_start
        # transformers cuts the round at EOS / the length limit and hands over num_matches after the cut,
        # so emitted = num_matches + 1 is exact; accepted is exact except in such a cut last round.
        accepted = min(int(num_matches), self._drafted)
        self.rounds.append(
            RoundStats(
                self._drafted,
                accepted,
                int(num_matches) + 1,
                list(self._entropies),
                self._draft_seconds,
                verify_seconds,
            )
        )
        if self.policy is not None:
            self.policy.observe(self._drafted, accepted)
            self.policy.observe_timing(
                RoundTiming(
                    self._drafted,
                    self._draft_seconds - self._catch_up_seconds if self._draft_clean and self._drafted else None,
                    self._drafted + 1,
                    verify_seconds if self._round > 0 else None,  # round 0 verifies the whole prompt
                )
            )
            self._round += 1
        else:
            with self._as_transformers():
                AssistedCandidateGenerator.update_candidate_strategy(self, input_ids, scores, num_matches)
