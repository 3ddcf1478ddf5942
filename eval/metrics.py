"""Speedups and draft statistics from stored benchmark records (no models needed).

Speedup of a method in a group = (its total new tokens / its total wall
time) divided by the same ratio for target-only on the same questions: the
"total tokens over total time" ratio the paper's tables use. The mean of
per-question ratios is reported beside it, and the spread (min-max over
questions) so a reader sees how noisy a cell is.
"""

from __future__ import annotations

import statistics
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Iterable

from svip.grammar import parse_method

__all__ = [
    "TARGET_ONLY",
    "baseline_of",
    "method_kind",
    "ms_per_token",
    "policy_name",
    "GroupSpeed",
    "DraftSummary",
    "speedups",
    "draft_summary",
    "groups_in_order",
    "methods_in_order",
    "draft_forwards",
    "target_forwards",
    "oracle_share",
]

TARGET_ONLY = "target-only"
AVERAGE = "Avg."


def method_kind(method: str) -> str:
    """Which kind ran a stored method: ``vanilla``, ``hf``, ``cascade``, ``eagle2``, ``target-only``, ..."""
    return parse_method(method).kind


def policy_name(method: str) -> str | None:
    """``hf+svip:h=0.3`` -> ``svip``: the draft-length policy whatever runs it (None: the kind's own schedule)."""
    policy = parse_method(method).policy
    return policy.partition(":")[0] if policy else None


def target_alone(method: str) -> bool:
    """A ``llamacpp:...,alone=1`` row: a speculative server's target decoding alone, a reference for the rules on
    that server (``tables.alone_table``), not a setting or a baseline."""
    return parse_method(method).params.get("alone", "0") == "1"


def draft_forwards(record: dict) -> list[int]:
    """Draft-model forward passes per round; records from before the key drafted one token per forward."""
    return record.get("draft_forwards") or list(record["drafted"])


def target_forwards(record: dict) -> list[int]:
    """Target forward passes per round; records from before the key: one per round (every loop here)."""
    return record.get("target_forwards") or [1] * len(record["drafted"])


@dataclass
class GroupSpeed:
    speedup: float  # ratio of throughputs over the group's totals
    mean_ratio: float  # mean of per-question speedups
    low: float
    high: float
    questions: int


@dataclass
class DraftSummary:
    drafted_per_round: float
    accepted_per_round: float
    acceptance_rate: float
    tokens_per_round: float  # tau: new tokens per target forward
    token_match: float  # mean prefix-match fraction vs target-only (1.0 = identical)


def oracle_share(speedup: float, oracle: float | None) -> float | None:
    """How much of the oracle's gain over target-only a method gets: (S - 1) / (S_oracle - 1)."""
    if oracle is None or oracle <= 1.0:
        return None
    return (speedup - 1.0) / (oracle - 1.0)


def groups_in_order(records: Iterable[dict]) -> list[str]:
    return list(OrderedDict.fromkeys(r["group"] for r in records))


def methods_in_order(records: Iterable[dict]) -> list[str]:
    return list(OrderedDict.fromkeys(r["method"] for r in records))


def baseline_of(method: str) -> str:
    """The method a stored method is compared with: its engine's own target-only (``llamacpp+svip`` ->
    ``llamacpp``), else ``target-only`` (the registry's answer; a name no kind reads compares with target-only)."""
    from svip.adapters.registry import baseline_of as registry_baseline

    return TARGET_ONLY if method == TARGET_ONLY else registry_baseline(method)


def _paired(records: list[dict], method: str, against: str | None = None) -> dict[str, list[tuple[dict, dict]]]:
    """Per group: (method record, baseline record) for questions both finished; the baseline is the method's
    own (``baseline_of``) unless ``against`` names one."""
    against = against or baseline_of(method)
    baseline = {r["question_id"]: r for r in records if r["method"] == against}
    pairs: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for record in records:
        if record["method"] == method and record["question_id"] in baseline:
            pair = (record, baseline[record["question_id"]])
            pairs[record["group"]].append(pair)
            pairs[AVERAGE].append(pair)
    return pairs


def _speed(pairs: list[tuple[dict, dict]]) -> GroupSpeed:
    tokens_m = sum(m["new_tokens"] for m, _ in pairs)
    time_m = sum(m["wall_time"] for m, _ in pairs)
    tokens_t = sum(t["new_tokens"] for _, t in pairs)
    time_t = sum(t["wall_time"] for _, t in pairs)
    per_question = [
        (m["new_tokens"] / m["wall_time"]) / (t["new_tokens"] / t["wall_time"])
        for m, t in pairs
        if m["wall_time"] > 0 and t["new_tokens"] > 0
    ]
    return GroupSpeed(
        speedup=(tokens_m / time_m) / (tokens_t / time_t),
        mean_ratio=statistics.fmean(per_question),
        low=min(per_question),
        high=max(per_question),
        questions=len(pairs),
    )


def speedups(records: list[dict], against: str | None = None) -> dict[str, dict[str, GroupSpeed]]:
    """method -> group (and "Avg.") -> speedup over its own baseline (its engine's target-only, else
    target-only), or over ``against`` for every method when given."""
    return {
        method: {group: _speed(pairs) for group, pairs in _paired(records, method, against).items()}
        for method in methods_in_order(records)
    }


def ms_per_token(records: list[dict], method: str) -> float | None:
    """Total wall milliseconds over total new tokens of a method (prefill included, as in its speedups)."""
    rows = [r for r in records if r["method"] == method]
    tokens = sum(r["new_tokens"] for r in rows)
    return 1000 * sum(r["wall_time"] for r in rows) / tokens if tokens else None


def draft_summary(records: list[dict], method: str) -> DraftSummary:
    """The paper's Figure 5 numbers for one method, over all its rounds."""
    rows = [r for r in records if r["method"] == method]
    rounds = sum(len(r["drafted"]) for r in rows)
    drafted = sum(sum(r["drafted"]) for r in rows)
    accepted = sum(sum(r["accepted"]) for r in rows)
    tokens = sum(r["new_tokens"] for r in rows)
    matches = [r["token_match"] for r in rows if "token_match" in r]
    return DraftSummary(
        drafted_per_round=drafted / rounds if rounds else 0.0,
        accepted_per_round=accepted / rounds if rounds else 0.0,
        acceptance_rate=accepted / drafted if drafted else float("nan"),
        tokens_per_round=tokens / rounds if rounds else 0.0,
        token_match=statistics.fmean(matches) if matches else float("nan"),
    )
