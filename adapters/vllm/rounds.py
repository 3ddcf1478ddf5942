"""One draft round of a vLLM batch: a rule per request, one entropy op per step, ragged lengths out.

vLLM's drafters draft the same number of tokens for every request of the
batch. This module is the framework-free half of the plugin: it decides,
for each row of a batch, when that row's draft stops, and it never imports
vLLM, so it is tested in this project's own environment.

Per draft step the proposer hands it the step's raw draft logits
(``[batch, vocab]``) and the tokens drafted from them. The entropies of all
rows are one vectorised op over the batch (full vocabulary, raw logits, fp32:
the paper's H); each still-drafting row's policy then says whether to go on.
A row stops after its first "no" (the token that crossed is kept) or at its
cap; the proposer ends vLLM's draft loop as soon as every row has stopped,
and each request is verified with its own number of tokens.

Policies are the core's ``DraftLengthPolicy`` objects, one per request (a
request's rule comes with the request, so one engine serves every rule); a
request's acceptance of its previous round is fed back through ``observe``
before its next round starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from svip.costs import RoundTiming
from svip.entropy import entropy
from svip.policies import DraftLengthPolicy, DraftStep

__all__ = ["BatchRound", "RequestRules", "RequestStats"]


@dataclass
class RequestStats:
    """What one request's rounds did: drafted and accepted tokens per round (the reports' acceptance, tokens/round)."""

    drafted: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    entropies: list[list[float]] = field(default_factory=list)  # per round, per drafted token (Figure 2's data)
    unverified: int | None = None  # the last round's draft when the request ended before its verdict reached us

    def as_dict(self) -> dict:
        return {
            "drafted": self.drafted,
            "accepted": self.accepted,
            "entropies": self.entropies,
            "unverified": self.unverified,
        }


class _Request:
    """One request's rule and the round it has in flight."""

    def __init__(self, policy: DraftLengthPolicy) -> None:
        self.policy = policy
        self.stats = RequestStats()
        self.pending: int | None = None  # tokens proposed last round, awaiting the verdict
        policy.start_sequence()


class RequestRules:
    """The policy of every live request, keyed by vLLM's request id, fed its verdicts and timings.

    ``rule_of(request_id)`` says which policy string a new request asked for
    (None: the engine's default); ``make`` builds a policy from such a string.
    """

    def __init__(
        self,
        make: Callable[[str], DraftLengthPolicy],
        rule_of: Callable[[str], str | None],
        default: str | None,
        min_open: float = 0.5,
    ) -> None:
        if not 0.0 <= min_open <= 1.0:
            raise ValueError(f"min_open must be within [0, 1], got {min_open}")
        self.min_open = min_open
        self._make = make
        self._rule_of = rule_of
        self.default = default
        self._requests: dict[str, _Request] = {}
        self.finished: dict[str, RequestStats] = {}
        self._last_round_end: float | None = None
        self._last_round_start: float | None = None

    def _request(self, request_id: str) -> _Request | None:
        live = self._requests.get(request_id)
        if live is None:
            rule = self._rule_of(request_id) or self.default
            if rule is None:
                return None
            live = self._requests[request_id] = _Request(self._make(rule))
        return live

    def start_round(self, request_ids: Sequence[str], rejected: Sequence[int] | None, cap: int) -> "BatchRound":
        """Feed each request the verdict on its last round, then open this round's per-row budgets.

        ``rejected[i]``: tokens of row i's last proposal the target rejected
        (vLLM's ``num_rejected_tokens``), None on a round that verified no draft.
        A row whose request has no rule drafts ``cap`` tokens (vLLM's fixed K).
        """
        now = time.perf_counter()
        verify_seconds = now - self._last_round_end if self._last_round_end is not None else None
        draft_seconds = (
            self._last_round_end - self._last_round_start
            if self._last_round_end is not None and self._last_round_start is not None
            else None
        )
        self._last_round_start = now
        live = set(request_ids)
        for gone in [r for r in self._requests if r not in live]:
            self._finish(gone)
        requests = [self._request(r) for r in request_ids]
        for row, request in enumerate(requests):
            if request is None or request.pending is None:
                continue
            drafted = request.pending
            accepted = max(0, drafted - int(rejected[row])) if rejected is not None else 0
            request.policy.observe(drafted, accepted)
            if drafted:
                request.policy.observe_timing(RoundTiming(drafted, draft_seconds, drafted + 1, verify_seconds))
            request.stats.drafted.append(drafted)
            request.stats.accepted.append(accepted)
            request.pending = None
        budgets = [cap if r is None else max(0, min(cap, r.policy.round_budget())) for r in requests]
        return BatchRound(requests, budgets, self.min_open)

    def end_round(self, round_: "BatchRound") -> list[int]:
        """Record what each row proposes (awaiting its verdict); returns the per-row lengths."""
        self._last_round_end = time.perf_counter()
        lengths = round_.lengths()
        for request, length, entropies in zip(round_.requests, lengths, round_.entropies):
            if request is not None:
                request.pending = length
                request.stats.entropies.append(entropies[:length])
        return lengths

    def stats(self, request_id: str) -> RequestStats | None:
        """A request's rounds so far, by vLLM's internal id (live or finished, not yet taken)."""
        live = self._requests.get(request_id)
        return live.stats if live is not None else self.finished.get(request_id)

    def _finish(self, request_id: str) -> None:
        request = self._requests.pop(request_id)
        request.stats.unverified = request.pending
        self.finished[request_id] = request.stats

    def take(self, external_id: str) -> RequestStats | None:
        """The rounds of a finished request, by the id vLLM's ``RequestOutput`` carries, and forget them.

        vLLM's scheduler runs on a request id of its own (``<external>-<suffix>``);
        a request that finished after the batch's last draft round is closed here.
        """
        for request_id in [r for r in self._requests if r == external_id or r.startswith(external_id + "-")]:
            self._finish(request_id)
        for request_id in list(self.finished):
            if request_id == external_id or request_id.startswith(external_id + "-"):
                return self.finished.pop(request_id)
        return None


class BatchRound:
    """One draft round over a batch: which rows still draft, and how many tokens each keeps.

    vLLM drafts every row of the batch in each step, open or not, so a step
    costs the batch the same whether one row or all still want a token. Once
    fewer than ``min_open`` of the rows are open, the round ends for all
    (each keeps what it drafted): a few long drafts no longer hold the whole
    batch in the draft loop. With one request (or ``min_open=0``) this is the
    per-request rule exactly.
    """

    def __init__(self, requests: list[_Request | None], budgets: list[int], min_open: float = 0.0) -> None:
        self.requests = requests
        self.budgets = budgets
        self.min_open = min_open
        self._drafted = [0] * len(requests)
        self._steps = 0  # draft steps the loop ran
        self._open = [b > 0 for b in budgets]
        self.entropies: list[list[float]] = [[] for _ in requests]

    @property
    def all_stopped(self) -> bool:
        return not any(self._open)

    def step(self, logits: torch.Tensor, tokens: torch.Tensor) -> bool:
        """Judge one drafted position of every row (``logits``: ``[batch, vocab]`` raw); True once all rows stopped.

        The entropies of every row are one op (recorded for each row, judged
        for the open ones): vLLM drafted every row anyway, and a uniform
        round proposes them all.
        """
        if logits.shape[0] != len(self.requests):
            raise ValueError(f"logits for {logits.shape[0]} rows, but the round has {len(self.requests)}")
        if self.all_stopped:
            return True
        self._steps += 1
        values = entropy(logits, kind="logits").tolist()
        chosen = tokens.tolist()
        for row, (value, token) in enumerate(zip(values, chosen)):
            self.entropies[row].append(value)
            if not self._open[row]:
                continue
            self._drafted[row] += 1
            request = self.requests[row]
            keep_going = True
            if request is not None:
                step = DraftStep(self._drafted[row] - 1, 0, int(token), logits[row])
                step.__dict__["entropy"] = value  # computed above for the whole batch; DraftStep caches it here
                keep_going = request.policy.continue_drafting(step)
            if not keep_going or self._drafted[row] >= self.budgets[row]:
                self._open[row] = False
        if sum(self._open) < self.min_open * len(self._open):
            self._open = [False] * len(self._open)  # too few rows left to pay for a step of the whole batch
        return self.all_stopped

    def pad_to_loop(self) -> None:
        """Uniform lengths: every row with a budget proposes all the loop drafted (it was drafted anyway)."""
        self._drafted = [min(self._steps, budget) for budget in self.budgets]

    def lengths(self) -> list[int]:
        """Tokens each row proposes: what it drafted before it stopped (0 for a row with no budget)."""
        return [min(d, b) for d, b in zip(self._drafted, self.budgets)]
