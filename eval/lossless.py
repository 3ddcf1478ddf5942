"""Greedy losslessness check: every policy's output against its baseline (target-only), token by token.

Speculative decoding must not change the greedy output. In fp32 the match
should be exact; in bf16/fp16 the verification forward over several tokens
rounds differently from one-token steps, so near-ties can flip and the
match *rate* is what to report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from tqdm.auto import tqdm

from svip.adapters import registry
from svip.adapters.kinds import Method, ModelSet
from svip.adapters.vanilla import SpeculativeEngine

from .methods import TARGET_ONLY, MethodRunner

__all__ = ["PolicyMatch", "check_greedy_lossless", "prefix_match", "format_report"]


def prefix_match(reference: Sequence[int], candidate: Sequence[int]) -> int:
    """Leading tokens the two outputs share (after a divergence they decouple)."""
    shared = 0
    for a, b in zip(reference, candidate):
        if a != b:
            break
        shared += 1
    return shared


@dataclass
class PolicyMatch:
    policy: str
    prompts: int = 0
    identical: int = 0
    matched_tokens: int = 0
    reference_tokens: int = 0
    drafted: int = 0
    accepted: int = 0
    mismatches: list[str] = field(default_factory=list)  # prompt labels that differed

    @property
    def token_match_rate(self) -> float:
        return self.matched_tokens / self.reference_tokens if self.reference_tokens else 1.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else float("nan")


def check_greedy_lossless(
    engine: SpeculativeEngine | MethodRunner,
    prompts: Sequence[tuple[str, Sequence[int]]],
    policies: Iterable[str | Method],
    *,
    max_new_tokens: int,
    stop_tokens: Iterable[int] = (),
    progress: bool = True,
    references: Mapping[str, Sequence[int]] | None = None,
) -> list[PolicyMatch]:
    """Run each method's baseline once per prompt (target-only, or a kind's own), then every method; count identical outputs.

    ``policies`` are methods of any kind (``svip``, ``hf+svip``,
    ``cascade:...+svip``); with a bare engine, only kinds that run on it.
    ``references`` (prompt label -> target-only tokens at these settings) skips
    the target-only runs when the caller already has them, e.g. one set shared
    by several drafts of the same target.
    """
    if isinstance(engine, MethodRunner):
        runner = engine
    else:  # an engine the caller built: its models and sampling, its KV caches
        draft = engine.draft.model.model if engine.draft else None
        runner = MethodRunner.for_models(ModelSet(engine.target.model.model, draft, sampling=engine.sampling))
        runner.models.shared("engine", lambda: engine)
    if not runner.models.sampling.greedy:
        raise ValueError("the losslessness check compares greedy outputs; use temperature 0")
    given = list(policies)
    methods = [registry.parse(p) for p in given]
    specs = [str(p) for p in given]  # rows keep the caller's spelling
    baselines = [registry.baseline_of(m) for m in methods]
    results = {spec: PolicyMatch(spec) for spec in specs}
    stops = frozenset(stop_tokens)
    runs_per_prompt = len(specs) + len(set(baselines) - ({TARGET_ONLY} if references is not None else set()))
    bar = tqdm(total=len(prompts) * runs_per_prompt, desc="lossless", disable=not progress, unit="gen")
    for label, prompt in prompts:
        outputs: dict[str, list[int]] = {TARGET_ONLY: list(references[label])} if references is not None else {}
        for spec, method, baseline in zip(specs, methods, baselines):
            if baseline not in outputs:
                outputs[baseline] = runner.run(
                    baseline, prompt, max_new_tokens=max_new_tokens, stop_tokens=stops, seed=None
                ).tokens
                bar.update()
            reference = outputs[baseline]
            output = runner.run(
                method, prompt, max_new_tokens=max_new_tokens, stop_tokens=stops, seed=None, reference=reference
            )
            row = results[spec]
            row.prompts += 1
            row.reference_tokens += len(reference)
            row.matched_tokens += prefix_match(reference, output.tokens)
            row.drafted += output.drafted
            row.accepted += output.accepted
            if output.tokens == reference:
                row.identical += 1
            else:
                row.mismatches.append(label)
            bar.update()
    bar.close()
    return [results[spec] for spec in specs]


def format_report(rows: Sequence[PolicyMatch]) -> str:
    """A plain table: identical outputs, token-match rate, acceptance."""
    lines = [f"{'policy':34} {'identical':>11} {'token-match':>12} {'acceptance':>11} {'drafted':>8}"]
    for row in rows:
        lines.append(
            f"{row.policy:34} {row.identical:>5}/{row.prompts:<5} {row.token_match_rate:>12.4f} "
            f"{row.acceptance_rate:>11.3f} {row.drafted:>8}"
        )
    return "\n".join(lines)
