"""vLLM's draft-model and EAGLE proposers with a per-request stop (runs inside vLLM; imports it).

vLLM's ``SpecDecodeBaseProposer.propose`` drafts ``num_speculative_tokens``
for every request, sampling each step through ``_sample_draft_tokens``. The
mixin here wraps those two methods and nothing else:

- ``_sample_draft_tokens`` computes the step's logits once (as upstream's
  greedy path does), hands them to the round's ``BatchRound`` (one entropy
  op over the batch) and, once every row has stopped, leaves vLLM's loop by
  raising ``_EveryRowStopped`` -- the tokens are already recorded here, so
  no draft step runs that no request will use;
- ``propose`` opens the round (each request's verdict on its last round fed
  to its policy), runs upstream's ``propose`` and returns each request's
  draft cut to its own length, as the ragged ``list[list[int]]`` that vLLM's
  scheduler already takes from its n-gram drafters; verification then scores
  each request's own number of tokens (``SpecDecodeMetadata.num_draft_tokens``).

Which rule a request runs comes with the request
(``SamplingParams(extra_args={"svip_policy": "svip:h=0.3"})``) or from the
engine's default (``additional_config={"svip": {"policy": "svip"}}``); a
request with neither drafts vLLM's fixed ``num_speculative_tokens``, which is
also every rule's cap.
"""

from __future__ import annotations

import torch
from vllm.v1.spec_decode.draft_model import DraftModelProposer
from vllm.v1.spec_decode.eagle import EagleProposer

from svip.policies import DraftLengthPolicy, refuse_dropping
from svip.spec import make_policy

from .config import SvipVllmConfig
from .method import POLICY_KEY
from .rounds import BatchRound, RequestRules

__all__ = ["SvipDraftModelProposer", "SvipEagleProposer"]


def _kept_token_rule(spec: str) -> DraftLengthPolicy:
    """A request's rule; one that leaves its stop token out (AdaEDL's drop=1) is refused: vLLM keeps every token."""
    policy = make_policy(spec)
    refuse_dropping(policy, "vLLM's draft loop")
    return policy


class _EveryRowStopped(Exception):
    """Raised from a draft step once no row drafts on: ends upstream's loop early."""


class SvipStopMixin:
    """The per-request stop for any ``SpecDecodeBaseProposer`` that samples through ``_sample_draft_tokens``."""

    def _init_svip(self, vllm_config, runner) -> None:
        self.svip_runner = runner  # upstream's base class does not keep it: the batch's request ids live there
        self.svip_rules: RequestRules | None = None
        self._svip_round: BatchRound | None = None
        config = SvipVllmConfig.from_vllm(vllm_config)
        if config is None:  # no "svip" in additional_config: this proposer is upstream's, unchanged
            return
        if self.speculative_config.use_heterogeneous_vocab or self.speculative_config.use_local_argmax_reduction:
            raise ValueError(
                "svip: the entropy stop needs the draft's full-vocabulary logits; "
                "use_heterogeneous_vocab and use_local_argmax_reduction are not supported"
            )
        self.svip_rules = RequestRules(_kept_token_rule, self._rule_of, config.policy, config.min_open)
        self._svip_uniform = config.uniform
        self._svip_tokens: list[torch.Tensor] = []
        self._svip_probs: list[torch.Tensor] | None = None

    def _rule_of(self, request_id: str) -> str | None:
        state = self.svip_runner.requests.get(request_id) if self.svip_runner is not None else None
        params = getattr(state, "sampling_params", None)
        extra = getattr(params, "extra_args", None) or {}
        return extra.get(POLICY_KEY)

    def _sample_draft_tokens(self, hidden_states, sampling_metadata):
        round_ = self._svip_round
        if round_ is None:  # a dummy run (warm-up, profiling): upstream's behaviour
            return super()._sample_draft_tokens(hidden_states, sampling_metadata)
        logits = self.model.compute_logits(hidden_states)
        if not self._enable_probabilistic_draft_probs or sampling_metadata.all_greedy:
            tokens, probs = logits.argmax(dim=-1), None
        else:
            tokens, probs = self._sample_from_logits(logits, sampling_metadata)
        rows = len(round_.requests)
        self._svip_tokens.append(tokens[:rows])
        if probs is not None:
            if self._svip_probs is None:
                self._svip_probs = []
            self._svip_probs.append(probs[:rows])
        if round_.step(logits[:rows], tokens[:rows]) and len(self._svip_tokens) < self.num_speculative_tokens:
            raise _EveryRowStopped
        return tokens, probs

    def propose(self, num_speculative_tokens, *args, **kwargs):
        common = kwargs.get("common_attn_metadata")
        if self.svip_rules is None or num_speculative_tokens == 0 or self.svip_runner is None or common is None:
            return super().propose(num_speculative_tokens, *args, **kwargs)
        rows = common.batch_size()
        request_ids = list(self.svip_runner.input_batch.req_ids[:rows])
        rejected = kwargs.get("num_rejected_tokens_gpu")
        rejected_list = rejected[:rows].tolist() if rejected is not None else None
        self._svip_round = self.svip_rules.start_round(request_ids, rejected_list, num_speculative_tokens)
        self._svip_tokens, self._svip_probs = [], None
        try:
            super().propose(num_speculative_tokens, *args, **kwargs)
        except _EveryRowStopped:
            pass
        finally:
            round_, self._svip_round = self._svip_round, None
        if self._svip_uniform:  # one length for the batch: every row proposes what the loop drafted
            round_.pad_to_loop()
        lengths = self.svip_rules.end_round(round_)
        drafted = torch.stack(self._svip_tokens, dim=1).tolist()  # [rows, steps run]
        if self._svip_probs is not None:
            self._last_draft_probs = torch.stack(self._svip_probs, dim=1).contiguous()
        return [row[:length] for row, length in zip(drafted, lengths)]


class SvipDraftModelProposer(SvipStopMixin, DraftModelProposer):
    """vLLM's draft-model proposer (``method="draft_model"``) with the per-request stop."""

    def __init__(self, vllm_config, device, runner=None) -> None:
        super().__init__(vllm_config=vllm_config, device=device, runner=runner)
        self._init_svip(vllm_config, runner)


class SvipEagleProposer(SvipStopMixin, EagleProposer):
    """vLLM's EAGLE/EAGLE-3 proposer with the per-request stop (a chain: the tree is vLLM's own)."""

    def __init__(self, vllm_config, device, runner=None) -> None:
        super().__init__(vllm_config=vllm_config, device=device, runner=runner)
        self._init_svip(vllm_config, runner)
