"""``svip simulate``: replay draft-length policies over a trace under a cost curve.

Greedy speculative decoding on the vanilla loop is fully determined by the
trace (``svip trace``): which draft tokens match the target and what
entropy and top-1 probability each had. What a method *costs* is a cost
curve: seconds of a target step, verify(n)/step and draft step/step. The
simulator walks the rounds exactly as ``SpeculativeEngine`` does -- the
policy is asked for a budget, sees every drafted token, is told the counts
and (cost-aware policies) the modelled seconds -- and prices them:

    round = drafted * draft + verify(drafted + 1);   target-only step = verify(1) = 1
    first round: + the prompt's prefill (target, and draft when drafting)

So a user with a GPU cost curve can pick settings from a CPU trace, and the
cost-aware rule can be tested in regimes this machine does not have. Check a
curve against a real run with ``--run`` (simulated vs measured speedups).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

from svip.costs import CostMeter, RoundTiming
from svip.grammar import parse_method
from svip.policies import DraftLengthPolicy, DraftStep
from svip.spec import policy_factory

from .metrics import AVERAGE, TARGET_ONLY

__all__ = ["SimCosts", "SimResult", "parse_costs", "simulate", "simulate_question", "speedup_rows"]


@dataclass(frozen=True)
class SimCosts:
    """A cost curve in units of one target step (verify(1) = 1)."""

    curve: Mapping  # the stored format: target_step_s, verify_over_step {n: ratio}, draft_over_step
    prefill: bool = True  # charge the prompt's prefill (from the trace's measured seconds)

    def meter(self) -> CostMeter:
        meter = CostMeter()
        meter.seed({**self.curve, "target_step_s": 1.0})
        return meter


def parse_costs(text: str, base: Mapping | None = None) -> SimCosts:
    """``draft=0.1,verify=flat`` (GPU-like), ``verify=slope:0.05`` or ``verify=2:1.1/4:1.3``; keys missing: from ``base``."""
    curve = dict(base or {"target_step_s": 1.0, "verify_over_step": {}, "draft_over_step": 0.3})
    prefill = True
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"cost curve: expected key=value, got {item!r}")
        if key == "draft":
            curve["draft_over_step"] = float(value)
        elif key == "verify" and value == "flat":
            curve["verify_over_step"] = {"2": 1.0, "16": 1.0}
        elif key == "verify" and value.startswith("slope:"):
            slope = float(value.partition(":")[2])
            curve["verify_over_step"] = {str(n): 1 + slope * (n - 1) for n in (2, 16)}
        elif key == "verify":
            pairs = [pair.split(":") for pair in value.split("/")]
            curve["verify_over_step"] = {str(int(n)): float(r) for n, r in pairs}
        elif key == "prefill":
            prefill = value not in ("0", "no", "false")
        else:
            raise ValueError(f"cost curve: unknown key {key!r} (draft, verify, prefill)")
    return SimCosts(curve, prefill)


@dataclass
class SimResult:
    tokens: int
    cost: float  # in target steps
    rounds: int
    drafted: int
    accepted: int
    cut_branches: int  # rounds that drafted past a rejection further than the trace rolled out


def _step(index: int, position: int, token: int, entropy: float, top1: float) -> DraftStep:
    step = DraftStep(index=index, position=position, token=token, logits=None)
    step.__dict__.update(entropy=entropy, token_prob=top1)  # what the cached properties would compute
    return step


def simulate_question(
    row: dict, policy: DraftLengthPolicy | None, costs: SimCosts, meter: CostMeter, stops: Sequence[int]
) -> SimResult:
    """One question's rounds under ``policy`` (None: target-only), priced by ``meter``."""
    tokens, argmax = row["tokens"], row["draft_argmax"]
    step_s = costs.curve["target_step_s"]
    prefill_target = row["prefill_s"]["target"] / step_s if costs.prefill else 1.0
    prefill_draft = row["prefill_s"]["draft"] / step_s if costs.prefill else meter.draft()
    total, t, rounds, drafted_total, accepted_total, cut = 0.0, 0, 0, 0, 0, 0
    if policy is None:
        return SimResult(len(tokens), prefill_target + (len(tokens) - 1) * meter.verify(1), len(tokens), 0, 0, 0)
    policy.start_sequence()
    draft_started = False
    while t < len(tokens):
        first = rounds == 0
        budget = min(policy.round_budget(), len(tokens) - t)
        rounds += 1
        if budget <= 0:
            total += prefill_target if first else meter.verify(1)
            policy.observe(0, 0)
            policy.observe_timing(RoundTiming(0, None, 1, None if first else meter.verify(1) * step_s))
            t += 1
            continue
        drafted, accepted, on_path, branch, drafted_at_miss, forwards = 0, 0, True, [], 0, 0
        for index in range(budget):
            position = t + index
            if on_path:
                token, entropy, top1 = argmax[position], row["draft_entropy"][position], row["draft_top1"][position]
            elif index - drafted_at_miss - 1 < len(branch):
                token = -1
                entropy, top1 = branch[index - drafted_at_miss - 1]
            else:
                cut += 1
                break
            drafted += 1
            forwards += 1
            agreed = on_path and token == tokens[position]
            if agreed:
                accepted += 1
            elif on_path:
                on_path, drafted_at_miss = False, index
                branch = row["branches"].get(str(position), [])
            if token in stops:
                break
            if not policy.continue_drafting(_step(index, position, token, entropy, top1)):
                if policy.drops_crossing_token and index > 0:  # the rule stops before this token (AdaEDL)
                    drafted -= 1
                    accepted -= int(agreed)
                break
        verify = meter.verify(drafted + 1) + ((prefill_target - meter.verify(1)) if first else 0.0)
        draft = forwards * meter.draft() + ((prefill_draft - meter.draft()) if not draft_started else 0.0)
        draft_started = True
        total += draft + verify
        policy.observe(drafted, accepted)
        policy.observe_timing(
            RoundTiming(forwards, None if first else forwards * meter.draft() * step_s, drafted + 1,
                        None if first else meter.verify(drafted + 1) * step_s)
        )  # fmt: skip
        t += min(accepted + 1, len(tokens) - t)
        drafted_total += drafted
        accepted_total += accepted
    return SimResult(len(tokens), total, rounds, drafted_total, accepted_total, cut)


def _check_simulable(method: str) -> str:
    spec = parse_method(method)
    if spec.kind == TARGET_ONLY:
        return method
    if spec.kind != "vanilla":
        raise ValueError(f"simulate replays the vanilla loop only; {method!r} runs on {spec.kind}")
    return spec.policy


def simulate(header: dict, rows: list[dict], methods: Sequence[str], costs: SimCosts) -> dict[str, dict]:
    """method -> {group and "Avg.": [SimResult, ...]} over the trace, methods in the given order."""
    stops = header.get("stop_tokens", [])
    out: dict[str, dict] = {}
    for method in methods:
        policy_text = _check_simulable(method)
        meter = costs.meter()
        factory = None if policy_text == TARGET_ONLY else policy_factory(policy_text, costs=lambda: costs.curve)
        groups: dict[str, list[SimResult]] = defaultdict(list)
        for row in rows:
            policy = factory(row["tokens"]) if factory is not None else None
            result = simulate_question(row, policy, costs, meter, stops)
            groups[row["group"]].append(result)
            groups[AVERAGE].append(result)
        out[method] = groups
    return out


def speedup_rows(simulated: dict[str, dict]) -> dict[str, dict[str, float]]:
    """method -> group -> speedup over target-only (total tokens / total cost, as the run's tables)."""
    base = simulated[TARGET_ONLY]
    rows = {}
    for method, groups in simulated.items():
        rows[method] = {}
        for group, results in groups.items():
            ours = sum(r.tokens for r in results) / sum(r.cost for r in results)
            theirs = sum(r.tokens for r in base[group]) / sum(r.cost for r in base[group])
            rows[method][group] = ours / theirs
    return rows


def summary(results: list[SimResult]) -> dict:
    rounds = sum(r.rounds for r in results)
    drafted = sum(r.drafted for r in results)
    return {
        "acceptance": sum(r.accepted for r in results) / drafted if drafted else float("nan"),
        "tokens_per_round": sum(r.tokens for r in results) / rounds if rounds else 0.0,
        "cut_branches": sum(r.cut_branches for r in results),
        "median_cost_per_token": statistics.median(r.cost / r.tokens for r in results if r.tokens),
    }
