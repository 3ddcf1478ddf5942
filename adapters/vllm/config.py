"""The plugin's settings, the vLLM way: ``additional_config={"svip": {...}}`` (vLLM's field for plugins).

``speculative_config`` forbids unknown keys (its dataclass is ``extra="forbid"``),
so the rule's settings live in ``additional_config``, which vLLM keeps for
plugins and hashes into its compile cache key. Without an ``"svip"`` entry
the proposers are upstream's, unchanged::

    LLM(model=..., speculative_config={"method": "draft_model", "model": ..., "num_speculative_tokens": 16},
        additional_config={"svip": {"policy": "svip:h=0.3"}})

``policy`` is the engine's default rule (any of ``svip.POLICIES``' strings;
absent: requests without their own rule draft vLLM's fixed K); a request may
name its own with ``SamplingParams(extra_args={"svip_policy": "..."})``.
``num_speculative_tokens`` is every rule's cap. ``min_open`` (default 0.5) ends a
batch's draft loop once fewer than that share of its requests still draft
(vLLM drafts every row in every step); 0 keeps drafting while any does.
``uniform: true`` makes the rule choose one draft length per round for the
whole batch (the loop's length: every request proposes all it drafted), so
verification sees equal lengths, vLLM's fast path; by default each request
proposes its own length (ragged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from svip.policies import refuse_dropping
from svip.spec import make_policy

__all__ = ["SvipVllmConfig"]

KEY = "svip"
_FIELDS = ("policy", "min_open", "uniform")


@dataclass(frozen=True)
class SvipVllmConfig:
    policy: str | None = None  # the engine's default rule; None: vLLM's fixed K for requests that name none
    min_open: float = 0.5  # the batch's draft loop ends once fewer than this share of its rows still draft
    uniform: bool = False  # every request proposes the loop's length (a batch-level K per round), not its own

    @classmethod
    def from_mapping(cls, additional_config: Any) -> "SvipVllmConfig | None":
        """The ``"svip"`` entry of vLLM's ``additional_config``, checked; None when there is none."""
        if not isinstance(additional_config, Mapping) or KEY not in additional_config:
            return None
        entry = additional_config[KEY]
        if entry is None or entry is True:
            entry = {}
        if not isinstance(entry, Mapping):
            raise ValueError(f'additional_config["svip"] must be a mapping such as {{"policy": "svip"}}, got {entry!r}')
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            raise ValueError(f'additional_config["svip"]: unknown key(s) {unknown}; known: {list(_FIELDS)}')
        policy = entry.get("policy")
        if policy is not None:
            try:
                built = make_policy(policy)
                refuse_dropping(built, "vLLM's draft loop")
                policy = built.spec
            except ValueError as error:
                raise ValueError(f'additional_config["svip"]["policy"]: {error}') from None
        min_open = entry.get("min_open", cls.min_open)
        if not isinstance(min_open, (int, float)) or not 0.0 <= float(min_open) <= 1.0:
            raise ValueError(f'additional_config["svip"]["min_open"] must be a number in [0, 1], got {min_open!r}')
        uniform = entry.get("uniform", False)
        if not isinstance(uniform, bool):
            raise ValueError(f'additional_config["svip"]["uniform"] must be true or false, got {uniform!r}')
        return cls(policy, float(min_open), uniform)

    @classmethod
    def from_vllm(cls, vllm_config: Any) -> "SvipVllmConfig | None":
        return cls.from_mapping(getattr(vllm_config, "additional_config", None))
