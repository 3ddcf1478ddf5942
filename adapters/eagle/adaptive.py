"""``eagle2+svip-adaptive``: the cost-aware rule on EAGLE-2's dynamic tree.

The patched ``topK_genrate`` asks a *rule* two questions (see
``patches/README.md``): after each level, how many of its best nodes does the
next level expand? (``frontier_width``, given the frontier's entropy and the
level's path log-probs; 0 = grow no deeper) and, once grown, how many of the
best nodes to verify? (``tree_size``). This module answers both with the
core's parts, priced by the run's measured costs:

- depth: ``AdaptiveSvipPolicy`` with a level as its unit (one draft step =
  one head pass over the frontier). A level is priced as the best path's
  next node: the root's ``top_k`` children are scored in any case, and each
  deeper level adds one node to verify (``min(cap, top_k + L - 1) + 1``
  tokens after L levels). Pricing it at what the tree *can* hold (60 nodes
  from level 2 on) would charge a level for nodes the size rule then drops;
- size: ``TreeBudget`` (expected accepted length = calibrated sum of path
  probabilities, against ``verify(n + 1)`` from the same meter), down to a
  single node where drafting does not pay.
- width, where the two agree: the next level expands a node only if its best
  child (forecast as the node times its parent's top-1 probability) raises
  the size rule's best rate, for the seconds a level of that width costs (a
  line in the width through the levels timed). A node the size rule would
  not verify is drafted for nothing. Issue 33 on AMD Zen 5: with depth alone
  the tree grew 2.25 levels a round for 3.8 verified nodes of top_k 3 (16.7
  vs 8.9 ms of drafting a round against the fixed 4/3/3 tree); with EAGLE-2's
  width of 10 as the cap every level ran the head over 10 tokens (22.6 vs
  11.1 ms). ``top_k`` is now only a cap.

The policy's own fallback (target-only steps once first tokens do not pay)
is not used: EAGLE's head must run every round (its KV cache would fall
behind the base model), and a first-token acceptance measured on trees that
the size rule shrank would keep them shrunk. The cheapest tree (one node) is
the fallback here.
The meter is seeded by ``measure_tree_curve`` on the EAGLE base model at the
start of a run and updated by every round.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from svip.adaptive import AdaptiveSvipPolicy
from svip.costs import RoundTiming
from svip.tree_budget import TreeBudget

__all__ = ["AdaptiveTreeRule", "TreeRound", "measure_tree_curve"]


@dataclass(frozen=True)
class TreeRound:
    """One verified tree of ``eagle2+svip-adaptive``: the rule's forecasts beside what was measured (issue 33)."""

    levels: int  # levels grown
    nodes: int  # nodes verified (without the root)
    expected_accepted: float  # the size rule's forecast: calibrated sum of the chosen nodes' path probabilities
    accepted: int
    predicted_verify_s: float  # the meter's verify(nodes + 1) when the size was chosen
    verify_s: float  # measured
    draft_s: float  # measured (the head's passes over every level)


class _Level:
    """What ``AdaptiveSvipPolicy.continue_drafting`` reads of a draft step: its entropy."""

    __slots__ = ("entropy",)

    def __init__(self, entropy: float) -> None:
        self.entropy = entropy


class AdaptiveTreeRule:
    """Depth by ``AdaptiveSvipPolicy``, size by ``TreeBudget``; one instance learns across a run's prompts."""

    def __init__(
        self, policy: AdaptiveSvipPolicy, *, top_k: int, total: int, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.policy = policy
        self.clock = clock  # seconds; a test passes its own
        self.budget = TreeBudget(policy.meter, prior=policy.prior)
        self.top_k, self.cap = top_k, total - 1
        policy.verify_tokens = self.verify_tokens
        self._draft_start = 0.0
        self.first_tree = True
        self.levels = 0  # of the tree last grown
        self.size = 0  # nodes (without the root) of the tree last grown
        self.draft_seconds = 0.0
        self.log: list[TreeRound] = []  # one entry per verified tree: what the rule predicted and what happened
        self._tree_nodes: list[tuple[float, int]] = []  # (path probability, depth) of the nodes grown so far
        self._frontier: list[float] = [1.0]  # path probabilities of the nodes the next level expands, best first
        self._level_start = 0.0  # when the level being drafted started
        self._level_seconds: deque[tuple[int, float]] = deque(maxlen=64)  # (width, seconds) of recent levels
        self._prediction: tuple[float, float] = (0.0, 0.0)  # (expected accepted, verify seconds) of the tree chosen

    def verify_tokens(self, levels: int) -> int:
        """Tokens priced for a tree of ``levels`` levels: the root's children, one node per deeper level, the root."""
        nodes = 0 if levels <= 0 else self.top_k + levels - 1
        return min(self.cap, nodes) + 1

    # -- the engine's calls -------------------------------------------------
    def start_sequence(self) -> None:
        self.policy.start_sequence()
        self.first_tree = True

    def start_draft(self) -> None:
        self._draft_start = self.clock()

    def end_draft(self, levels: int, nodes: int) -> None:
        self.levels, self.size = levels, nodes
        self.draft_seconds = self.clock() - self._draft_start

    def observe(self, accepted: int, verify_seconds: float) -> None:
        """After the target verified the tree last grown (before the next one is drafted)."""
        self.policy.observe(self.levels, min(accepted, self.levels))
        expected, predicted_verify = self._prediction
        self.log.append(
            TreeRound(self.levels, self.size, expected, accepted, predicted_verify, verify_seconds, self.draft_seconds)
        )
        self.budget.observe(accepted)
        draft = None if self.first_tree else self.draft_seconds  # the first tree's draft includes the head's prefill
        self.policy.observe_timing(RoundTiming(self.levels, draft, self.size + 1, verify_seconds))
        self.first_tree = False

    # -- the patched tree's calls -------------------------------------------
    def frontier_width(self, entropy: float, levels: int, candidates: torch.Tensor) -> int:
        """How many of the best nodes the last level added the next level expands (0: grow no deeper), after
        ``levels`` levels. ``candidates``: the path log-probs of the nodes that level added, one row per node it
        expanded (the frontier, best first; the root's children: one row).

        A node is expanded only if its best child, forecast as the node times its parent's top-1 probability,
        raises the size rule's best rate for the draft pass that expanding it costs (the measured seconds of a
        level, a line in its width): a child the size rule would not verify is drafted for nothing, and EAGLE-2's
        width of 10 doubled the seconds a round drafted on a CPU (issue 33). The depth rule (entropy, acceptance
        learned online) can stop the tree first.
        """
        now = self.clock()
        rows = candidates.float().exp().view(-1, candidates.shape[-1])
        if levels <= 1:
            self._tree_nodes, self._frontier = [], [1.0]
        else:
            self._level_seconds.append((len(self._frontier), now - self._level_start))
        self._level_start = now
        level = rows.view(-1).tolist()
        self._tree_nodes.extend((p, levels) for p in level)
        top1 = rows.max(dim=-1).values.tolist()  # each expanded node's best child
        parents = self._frontier + [self._frontier[-1]] * (len(top1) - len(self._frontier))
        order = sorted(range(len(level)), key=level.__getitem__, reverse=True)[: self.top_k]
        children = [level[j] * top1[j // rows.shape[1]] / parents[j // rows.shape[1]] for j in order]
        if not self.policy.continue_drafting(_Level(entropy)):
            return 0
        width = (
            self._best_width(children, levels + 1, now - self._draft_start) if self.policy.meter.known else len(order)
        )
        self._frontier = [level[j] for j in order[:width]]
        return width

    def _best_width(self, children: list[float], depth: int, elapsed: float) -> int:
        """The number of candidates (best first; ``children``: each one's forecast best child, ``depth`` levels
        below the root) whose expansion maximises the size rule's best rate, 0 if no level pays."""
        nodes = self._best_nodes(self._tree_nodes)
        size, best_rate = self.budget.best([p for p, _ in nodes], elapsed, [d for _, d in nodes])
        nodes = nodes[: size + len(children) + 8]  # far past the best size now, a size stays worse: keep it cheap
        best_width = 0
        for width in range(1, len(children) + 1):
            grown = self._best_nodes([*nodes, *((p, depth) for p in children[:width])])
            _, rate = self.budget.best(
                [p for p, _ in grown], elapsed + self.level_seconds(width), [d for _, d in grown]
            )
            if rate <= best_rate:
                break  # the next candidates are less likely: a node that does not pay ends the scan
            best_width, best_rate = width, rate
        return best_width

    def _best_nodes(self, nodes: list[tuple[float, int]], n: Optional[int] = None) -> list[tuple[float, int]]:
        """The ``n`` most likely of ``nodes``, best first (default ``cap``: as many as tree_size is offered)."""
        return sorted(nodes, key=lambda node: node[0], reverse=True)[: self.cap if n is None else n]

    def level_seconds(self, width: int) -> float:
        """Seconds of a draft level expanding ``width`` nodes: a least-squares line through the levels timed in
        this run once two widths were; before that their mean, and before any the meter's draft step (which
        includes the root's pass)."""
        timed = self._level_seconds
        if len({w for w, _ in timed}) < 2:
            return statistics.fmean(s for _, s in timed) if timed else self.policy.meter.draft()
        mean_w = statistics.fmean(w for w, _ in timed)
        mean_s = statistics.fmean(s for _, s in timed)
        slope = sum((w - mean_w) * (s - mean_s) for w, s in timed) / sum((w - mean_w) ** 2 for w, _ in timed)
        slope = max(0.0, slope)
        return max(0.0, mean_s + slope * (width - mean_w))

    def tree_size(self, path_log_probs: torch.Tensor) -> int:
        """Nodes to verify among the best ones (sorted, most likely first); ties at the cut are kept together."""
        scores = path_log_probs.float()
        probs = scores.exp().tolist()
        depths = self._depths_of(len(probs))
        chosen = self.budget.choose(probs, self.clock() - self._draft_start, depths)
        while chosen < scores.numel() and bool(scores[chosen] == scores[chosen - 1]):
            chosen += 1  # a tie may hold a child before its parent: cut only between distinct scores
        meter = self.policy.meter
        self._prediction = (
            self.budget.expected_accepted(probs[:chosen], depths[:chosen] if depths is not None else None),
            meter.verify(chosen + 1) if meter.known else float("nan"),
        )
        return chosen

    def _depths_of(self, n: int) -> Optional[list[int]]:
        """The depths of the ``n`` most likely nodes of the tree just grown, best first (None when the tree was
        not grown through ``frontier_width``: then the size rule uses its overall calibration)."""
        if len(self._tree_nodes) < n:
            return None
        return [depth for _, depth in self._best_nodes(self._tree_nodes, n)]


@torch.inference_mode()
def measure_tree_curve(
    model, prompt: Sequence[int], sizes: Sequence[int] = (2, 4, 8, 16, 32, 64), repeats: int = 5
) -> dict:
    """Median seconds of a base-model step and verify(n)/step on EAGLE's own KV cache (after ``prompt``).

    ``model`` is an ``EaModel`` whose ``past_key_values`` are allocated; the cache lengths are reset after.
    """
    base, lengths = model.base_model, model.current_length_data
    device = base.model.embed_tokens.weight.device
    ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    lengths.zero_()
    base.model.tree_mask = None
    base(ids, past_key_values=model.past_key_values, use_cache=True)
    start_length = len(prompt)
    filler = int(prompt[-1])
    all_sizes = (1, *sizes)

    def timed(n: int) -> float:
        lengths.fill_(start_length)
        begin = time.perf_counter()
        base(
            torch.full((1, n), filler, dtype=torch.long, device=device),
            past_key_values=model.past_key_values,
            use_cache=True,
        )
        return time.perf_counter() - begin

    for n in all_sizes:  # warm-up: every shape once
        timed(n)
    times: dict[int, list[float]] = {n: [] for n in all_sizes}
    for _ in range(repeats):
        for n in all_sizes:  # interleaved, so drift hits every size alike
            times[n].append(timed(n))
    lengths.zero_()
    step = statistics.median(times[1])
    return {
        "repeats": repeats,
        "prompt_tokens": len(prompt),
        "target_step_s": step,
        "verify_over_step": {str(n): statistics.median(times[n]) / step for n in sizes},
    }
