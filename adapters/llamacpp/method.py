"""``llamacpp[+policy]``: one method string -> one ``/completion`` request to the patched llama-server.

llama.cpp decides the draft length inside its own loop (the patch), so a
method here is only the request fields that select the rule, per request:

=====================================  ==========================================================
``llamacpp``                           target-only, on a server with no draft model loaded
``llamacpp+constant:k=3``              ``speculative.n_max = 3`` (upstream's fixed length)
``llamacpp+confidence:p_min=0.75``     upstream's ``p_min`` (top-1 of its top-10 sampler; the failing token dropped)
``llamacpp+svip[:h=..,gamma=..]``      the patch's entropy stop (full-vocabulary H, the crossing token kept)
``llamacpp+svip-adaptive``             the patch's cost-aware rule (llama.cpp measures its own costs)
``llamacpp:draft=q4_0+svip``           the same rule with the draft's weights at another GGUF type (a cheaper draft)
``llamacpp:window=256+svip``           the draft reads only a prompt's last 256 tokens (``--spec-draft-window``)
``llamacpp:keep=1+svip``               the draft keeps the KV it wrote while drafting (``--spec-draft-keep-kv``)
``llamacpp:calibrate=1+svip-adaptive`` the server times its costs at start (``--spec-draft-svip-calibrate``), the
                                       rule's first prices
``llamacpp:keep=1,alone=1``            no rule: the target decodes alone on the speculative server of those flags
                                       (its draft loaded, never run), to time that process against the target-only
                                       server's (see ``LlamaCppSpec.alone``)
=====================================  ==========================================================

The weights' type is the run's (``--llamacpp-gguf``, default from ``--dtype``:
bf16 -> bf16, fp32 -> f32); ``draft=TYPE`` changes the draft's alone, so one
run compares drafts of several costs against the same target. Every rule is llama.cpp's own code; nothing of ours runs
per token on this path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from svip.grammar import MethodSpec, MethodSpecError
from svip.method import Decoded, GenerationRequest, InputError, SpeculativeMethod, clip
from svip.results import RoundStats
from svip.sampling import SamplingConfig
from svip.spec import make_policy

from .server import LlamaServer, LlamaServerError

__all__ = ["LLAMACPP", "LlamaCppMethod", "LlamaCppSpec", "rounds_from"]

LLAMACPP = "llamacpp"
POLICIES = ("constant", "confidence", "svip", "svip-adaptive")  # rules llama.cpp runs itself (upstream or the patch)


@dataclass(frozen=True)
class LlamaCppSpec:
    """A parsed ``llamacpp`` method: the policy llama.cpp runs (None: target-only) and its draft's GGUF type."""

    policy: str | None = None
    draft_gguf: str | None = None  # None: the run's --llamacpp-gguf
    window: int = 0  # the draft reads at most this many of a prompt's last tokens (0: all of it)
    keep_kv: bool = False  # the draft keeps its drafting's KV instead of re-evaluating the verified batch
    calibrate: bool = False  # the server times the verify curve and a draft step at start (the cost-aware rule's prices)
    # no rule: the speculative server's target decodes alone. Two llama-server processes of the same target can step
    # it at speeds 5-10% apart on a shared VM (docs/adapters/llamacpp.md), as much as a rule that drafts little
    # gains; this row times the rules' own process, so a rule can also be read against it
    alone: bool = False

    @classmethod
    def from_spec(cls, spec: MethodSpec) -> "LlamaCppSpec":
        from .gguf import OUTTYPES

        unknown = sorted(set(spec.params) - {"draft", "window", "keep", "calibrate", "alone"})
        if unknown:
            raise MethodSpecError(
                f"llamacpp takes only draft=TYPE (the draft's GGUF type), window=N (the draft reads a prompt's "
                f"last N tokens), keep=0|1 (the draft keeps its drafting's KV), calibrate=0|1 (the server times "
                f"its costs at start) and alone=1 (its target decodes alone), got {', '.join(unknown)}; the target's type is --llamacpp-gguf, the rule's "
                "parameters go in the policy"
            )
        alone = spec.params.get("alone", "0")
        if alone not in ("0", "1"):
            raise MethodSpecError(f"llamacpp: alone must be 0 or 1, got {alone!r}")
        if alone == "1" and spec.policy:
            raise MethodSpecError("llamacpp:...,alone=1 decodes with the target alone on that server; it takes no rule")
        if spec.params and not spec.policy and alone != "1":
            raise MethodSpecError(
                "llamacpp:draft=..., window=..., keep=... and calibrate=... set up the draft, so the method needs a "
                "rule: llamacpp:draft=q4_0+svip (or alone=1: that server's target decoding alone)"
            )
        draft_gguf = spec.params.get("draft")
        if draft_gguf is not None:
            draft_gguf = draft_gguf.lower()
            if draft_gguf not in OUTTYPES:
                raise MethodSpecError(f"llamacpp: draft must be one of {', '.join(OUTTYPES)}, got {draft_gguf!r}")
        window = 0
        if "window" in spec.params:
            try:
                window = int(spec.params["window"])
            except ValueError:
                window = -1
            if window < 1:
                raise MethodSpecError(f"llamacpp: window must be a whole number of tokens >= 1, got {spec.params['window']!r}")
        keep = spec.params.get("keep", "0")
        if keep not in ("0", "1"):
            raise MethodSpecError(f"llamacpp: keep must be 0 or 1, got {keep!r}")
        calibrate = spec.params.get("calibrate", "0")
        if calibrate not in ("0", "1"):
            raise MethodSpecError(f"llamacpp: calibrate must be 0 or 1, got {calibrate!r}")
        policy = None
        if spec.policy:
            built = make_policy(spec.policy)
            if built.name not in POLICIES:
                raise MethodSpecError(
                    f"llamacpp runs {', '.join(POLICIES)} inside llama.cpp; {built.name!r} has no llama.cpp implementation"
                )
            if getattr(built, "refit", 0):
                raise MethodSpecError("llama.cpp's p_min rule has no ROC re-fit; use llamacpp+confidence:p_min=...")
            policy = built.spec
            if calibrate == "1" and built.name != "svip-adaptive":  # alone=1 may name the calibrated server
                raise MethodSpecError(
                    f"llamacpp: calibrate=1 prices the cost-aware rule, {built.name!r} reads no costs; use it with "
                    "svip-adaptive"
                )
        return cls(policy, draft_gguf, window, keep == "1", calibrate == "1", alone == "1")

    @property
    def text(self) -> str:
        params = (
            ([f"draft={self.draft_gguf}"] if self.draft_gguf else [])
            + ([f"window={self.window}"] if self.window else [])
            + (["keep=1"] if self.keep_kv else [])
            + (["calibrate=1"] if self.calibrate else [])
            + (["alone=1"] if self.alone else [])
        )
        kind = LLAMACPP + (":" + ",".join(params) if params else "")
        return kind + (f"+{self.policy}" if self.policy else "")

    @property
    def drafts(self) -> bool:
        """Whether the method runs on a speculative server (one with the draft loaded)."""
        return self.policy is not None or self.alone

    def server_args(self) -> tuple[str, ...]:
        """The flags of the speculative server this method needs (none: upstream's defaults); methods with the same
        flags and draft type share one server, whose rule is chosen per request."""
        return (
            (("--spec-draft-window", str(self.window)) if self.window else ())
            + (("--spec-draft-keep-kv",) if self.keep_kv else ())
            + (("--spec-draft-svip-calibrate",) if self.calibrate else ())
        )

    def request_fields(self) -> dict:
        """The per-request ``speculative.*`` fields that select this rule (the patch's server schema)."""
        if self.alone:  # the patch's cost-aware rule capped at 0: the draft's catch-up is deferred, never run
            return {"speculative.n_max": 0, "speculative.svip_adaptive": True}
        if self.policy is None:
            return {}
        policy = make_policy(self.policy)
        fields: dict = {"speculative.n_min": 0, "speculative.p_min": 0.0, "speculative.svip_h": 0.0}
        if policy.name == "constant":
            fields["speculative.n_max"] = policy.k
        elif policy.name == "confidence":
            fields.update({"speculative.n_max": policy.max_draft, "speculative.p_min": policy.p_min})
        elif policy.name == "svip":
            fields.update(
                {"speculative.n_max": policy.max_draft, "speculative.svip_h": policy.h, "speculative.svip_gamma": policy.gamma}
            )
        else:  # svip-adaptive
            fields.update(
                {"speculative.n_max": policy.max_draft, "speculative.svip_adaptive": True, "speculative.svip_gamma": policy.gamma}
            )
        return fields


def rounds_from(timings: dict, new_tokens: int) -> list[RoundStats]:
    """Rounds from llama.cpp's own per-request statistics: its draft rounds, then its one-token steps.

    A draft round emits its accepted tokens plus the target's own; every
    other generated token came from a target-only step.
    """
    rounds = [
        RoundStats(
            drafted=int(r["drafted"]),
            accepted=int(r["accepted"]),
            emitted=int(r["accepted"]) + 1,
            entropies=[float(h) for h in r.get("entropies", [])],
        )
        for r in timings.get("draft_rounds", [])
    ]
    emitted = sum(r.emitted for r in rounds)
    if rounds and emitted > new_tokens:  # the last round was clipped at EOS or the limit
        rounds[-1].emitted -= emitted - new_tokens
        emitted = new_tokens
    rounds += [RoundStats(drafted=0, accepted=0, emitted=1) for _ in range(max(0, new_tokens - emitted))]
    return rounds


class LlamaCppMethod(SpeculativeMethod):
    """One ``llamacpp`` method on its server (the speculative one, or the target-only one)."""

    def __init__(self, server: LlamaServer, method: LlamaCppSpec, sampling: SamplingConfig, context_length: int) -> None:
        self.server, self.method, self.sampling = server, method, sampling
        self.spec, self.context_length = method.text, context_length

    def payload(self, request: GenerationRequest) -> dict:
        greedy = self.sampling.temperature <= 0
        payload = {
            "prompt": list(request.prompt),
            "n_predict": request.max_new_tokens,
            "cache_prompt": False,  # every method prefills its prompt itself, as in the torch engine
            "return_tokens": True,
            "stream": False,
            "temperature": 0.0 if greedy else self.sampling.temperature,
            "top_k": 1 if greedy else 0,
            "top_p": 1.0 if greedy else self.sampling.top_p,
            "min_p": 0.0,
            "seed": request.seed if request.seed is not None else 0,
            **self.method.request_fields(),
        }
        if self.method.drafts:
            payload["speculative.rounds"] = True
        return payload

    def _decode(self, request: GenerationRequest, reference: Sequence[int] | None) -> Decoded:
        try:
            answer = self.server.post("/completion", self.payload(request))
        except LlamaServerError as error:
            if "HTTP 400" in str(error):
                raise InputError(str(error)) from None
            raise
        tokens = clip([int(t) for t in answer.get("tokens", [])], request.stop_tokens, request.max_new_tokens)
        timings = answer.get("timings", {})
        return Decoded(tokens, rounds_from(timings, len(tokens)))
