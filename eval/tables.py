"""Plain-text tables in the paper's layout, from stored records."""

from __future__ import annotations

from svip.grammar import parse_method

from .metrics import (
    AVERAGE,
    TARGET_ONLY,
    baseline_of,
    draft_forwards,
    draft_summary,
    groups_in_order,
    method_kind,
    methods_in_order,
    ms_per_token,
    oracle_share,
    policy_name,
    speedups,
    target_alone,
    target_forwards,
)

__all__ = [
    "acceptance_by_entropy_table",
    "alone_table",
    "engine_table",
    "speedup_table",
    "draft_table",
    "time_table",
    "length_table",
    "cross_entropy_summary",
    "eagle_table",
    "glide_table",
    "cost_table",
    "draft_cost_ratio",
]

_SHORT = {
    "mt-bench": "MT-Bench",
    "translation": "Trans.",
    "summarization": "Sum.",
    "qa": "QA",
    "math_reasoning": "Math",
    "rag": "RAG",
    "h-eval": "H-Eval",
    "gsm8k": "GSM8K",
    "cnn/dm": "CNN/DM",
}


_OURS = ("svip", "svip-adaptive", "oracle")  # not baselines: the method itself and its upper bound


_DRAFTER_PARAMS = ("draft", "window", "keep")  # kind parameters that set up the drafter (0: the default)


def _loop(method: str) -> str:
    """Which loop (and drafter) ran the method: its kind (``hf``, ``vanilla``, ``cascade``, ...).

    SVIP is compared with baselines of its own kind only: a cascade is
    another drafter, not a draft-length baseline, so ``cascade:...+svip``
    is compared with plain ``cascade:...`` settings and plain ``svip`` with
    plain policies. A kind's ``draft=`` parameter (``llamacpp:draft=q4_0``)
    names another draft's weights, so it is another drafter too, and so do
    the parameters that run the same draft another way (``window=``, what
    the draft reads; ``keep=1``, whether it re-evaluates verified tokens):
    a rule is credited only with what the rule itself changes.
    """
    spec = parse_method(method)
    named = [f"{key}={spec.params[key]}" for key in _DRAFTER_PARAMS if spec.params.get(key, "0") != "0"]
    return spec.kind + (":" + ",".join(named) if named else "")


def _server(method: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The kind and the kind parameters but ``alone``: the server a method ran on (llama.cpp starts one per set)."""
    spec = parse_method(method)
    return spec.kind, tuple(sorted((k, v) for k, v in spec.params.items() if k != "alone" and v != "0"))


def _stop_rule(method: str) -> str | None:
    """The draft-length policy a method runs (``cascade:...+svip:...`` -> ``svip``; plain cascade: None)."""
    return policy_name(method)


def speedup_table(records: list[dict]) -> str:
    """Table 1 layout: speedup over target-only per group + Avg., SVIP's gain over the best baseline.

    SVIP is compared with the best baseline *of the same loop* (vanilla engine
    or transformers' assisted generation), so loop overheads never count as
    a policy's gain.
    """
    table = speedups(records)
    groups = groups_in_order(records) + [AVERAGE]
    methods = [m for m in table if m != TARGET_ONLY]
    # an engine's own target-only (``llamacpp``) is every method's 1.00 there; its row is its speed over torch's
    references = {baseline_of(m) for m in methods}
    best_baseline = {
        loop: max(
            (
                table[m][AVERAGE].speedup
                for m in methods
                if _loop(m) == loop
                and _stop_rule(m) not in _OURS
                and AVERAGE in table[m]
                and m not in references
                and not target_alone(m)
            ),
            default=None,
        )
        for loop in {_loop(m) for m in methods}
    }
    width = max([len(m) for m in methods] + [12])
    header = _group_header(groups, width)
    lines = [header, "-" * len(header)]
    for method in methods:
        line = _group_row(method, table[method], groups, width)
        best = best_baseline[_loop(method)]
        if _stop_rule(method) in ("svip", "svip-adaptive") and best and AVERAGE in table[method]:
            line += f"  ({table[method][AVERAGE].speedup / best - 1:+.1%} vs best baseline)"
        lines.append(line)
    lines.extend(_oracle_lines(table, methods))
    lines.append("")
    lines.append(
        "speedup = (method tokens / method time) / (target-only tokens / target-only time), totals per column;"
    )
    lines.append("Avg. over all questions. Mean of per-question ratios [min, max]:")
    for method in methods:
        cell = table[method].get(AVERAGE)
        if cell:
            lines.append(
                f"  {method:{width}} {cell.mean_ratio:.2f} [{cell.low:.2f}, {cell.high:.2f}] over {cell.questions} questions"
            )
    return "\n".join(lines)


def _group_header(groups: list[str], width: int) -> str:
    return f"{'method':{width}} " + " ".join(f"{_SHORT.get(g, g)[:9]:>9}" for g in groups)


def _group_row(method: str, speeds: dict, groups: list[str], width: int) -> str:
    """A method's speedup per group, ``-`` where it has none."""
    cells = (speeds.get(group) for group in groups)
    return f"{method:{width}} " + " ".join(f"{c.speedup:>9.2f}" if c else f"{'-':>9}" for c in cells)


def _oracle_lines(table: dict, methods: list[str]) -> list[str]:
    """Per loop with an oracle: each method's share of the oracle's gain; the adaptive rule vs the best fixed one."""
    lines = []
    for loop in ("vanilla", "hf", "cascade"):
        ours = [m for m in methods if _loop(m) == loop and AVERAGE in table[m]]
        oracle = next((table[m][AVERAGE].speedup for m in ours if _stop_rule(m) == "oracle"), None)
        if oracle is None:
            continue
        shares = []
        for m in ours:
            share = oracle_share(table[m][AVERAGE].speedup, oracle)
            if share is not None and _stop_rule(m) != "oracle":
                shares.append(f"{m} {share:.0%}")
        lines.append(f"share of the oracle's gain ({loop}, Avg.): " + ", ".join(shares))
        fixed = [m for m in ours if _stop_rule(m) not in ("oracle", "svip-adaptive")]
        adaptive = [m for m in ours if _stop_rule(m) == "svip-adaptive"]
        if fixed and adaptive:
            best = max(fixed, key=lambda m: table[m][AVERAGE].speedup)
            for m in adaptive:
                worst = min((c.speedup, g) for g, c in table[m].items() if g != AVERAGE)
                lines.append(
                    f"{m}: {table[m][AVERAGE].speedup / table[best][AVERAGE].speedup - 1:+.1%} vs the best fixed rule "
                    f"in hindsight ({best}, {table[best][AVERAGE].speedup:.2f}x); lowest category {worst[1]} {worst[0]:.2f}x"
                )
    return lines


def draft_table(records: list[dict]) -> str:
    """Figure 5 numbers: draft length, accepted length, acceptance rate (plus tau and token-match)."""
    methods = [m for m in dict.fromkeys(r["method"] for r in records) if m != TARGET_ONLY]
    width = max([len(m) for m in methods] + [12])
    lines = [
        f"{'method':{width}} {'drafted/rnd':>11} {'accepted/rnd':>12} {'accept rate':>11} {'tokens/rnd':>10} {'token-match':>11}"
    ]
    for method in methods:
        s = draft_summary(records, method)
        lines.append(
            f"{method:{width}} {s.drafted_per_round:>11.2f} {s.accepted_per_round:>12.2f} {s.acceptance_rate:>11.1%} {s.tokens_per_round:>10.2f} {s.token_match:>11.4f}"
        )
    return "\n".join(lines)


def time_table(records: list[dict]) -> str:
    """Where each method's wall time goes: drafting, target forwards, and the rest (the loop's own overhead).

    For the vanilla engine "verify" is the target forward plus the acceptance test; for transformers'
    loop (hf-*) it is the target forward alone, so "other" holds its candidate bookkeeping, logits
    processing and cache cropping -- the measured part of any gap between the two loops.
    """
    methods = list(dict.fromkeys(r["method"] for r in records))
    width = max([len(m) for m in methods] + [12])
    lines = [
        f"{'method':{width}} {'wall s':>8} {'draft s':>8} {'verify s':>8} {'other s':>8} {'other %':>7} {'ms/token':>8}"
    ]
    for method in methods:
        rows = [r for r in records if r["method"] == method]
        wall = sum(r["wall_time"] for r in rows)
        draft = sum(r.get("draft_time", 0.0) for r in rows)
        verify = sum(r.get("verify_time", 0.0) for r in rows)
        tokens = sum(r["new_tokens"] for r in rows)
        other = wall - draft - verify
        lines.append(
            f"{method:{width}} {wall:>8.1f} {draft:>8.1f} {verify:>8.1f} {other:>8.1f} {other / wall:>7.1%} {1000 * wall / max(1, tokens):>8.1f}"
        )
    return "\n".join(lines)


def length_table(runs: list[tuple[int, list[dict]]]) -> str:
    """Table 2/6 layout: Avg. speedup per method (rows) by generation length (columns), one run per length."""
    runs = sorted(runs, key=lambda run: run[0])
    tables = [(length, speedups(records)) for length, records in runs]
    methods = list(dict.fromkeys(m for _, table in tables for m in table if m != TARGET_ONLY))
    width = max([len(m) for m in methods] + [12])
    header = f"{'method':{width}} " + " ".join(f"{length:>8}" for length, _ in tables)
    lines = ["Avg. speedup over target-only by max new tokens:", header, "-" * len(header)]
    for method in methods:
        cells = [
            f"{table[method][AVERAGE].speedup:>8.2f}" if AVERAGE in table.get(method, {}) else f"{'-':>8}"
            for _, table in tables
        ]
        lines.append(f"{method:{width}} " + " ".join(cells))
    return "\n".join(lines)


def cross_entropy_summary(records: list[dict]) -> str | None:
    """Figure 3 in numbers: the spread of H(q, p) / H(q) over drafted tokens."""
    from .plots import MIN_ENTROPY, cross_entropy_ratios

    method, ratios = cross_entropy_ratios(records)
    if not ratios:
        return None
    ratios = sorted(ratios)
    pick = lambda q: ratios[int(q * (len(ratios) - 1))]  # noqa: E731
    return (
        f"H(q,p)/H(q) over {len(ratios)} drafted tokens of {method} (H(q) > {MIN_ENTROPY} nats): "
        f"median {pick(0.5):.2f}, 10-90% [{pick(0.1):.2f}, {pick(0.9):.2f}], 25-75% [{pick(0.25):.2f}, {pick(0.75):.2f}]"
    )


def _tau_table(records: list[dict], title: str, methods: list[str], base_of, base_name: str) -> str:
    """Speedup (tau) per column for ``methods``; a row with a ``base_of`` row is also given as a gain over it.

    tau = new tokens per target forward (the prefill forward included).
    """
    table = speedups(records)
    groups = groups_in_order(records) + [AVERAGE]
    width = max(len(m) for m in methods)
    header = f"{'method':{width}} " + " ".join(f"{_SHORT.get(g, g)[:11]:>11}" for g in groups)
    lines = [title, header, "-" * len(header)]
    for method in methods:
        cells = []
        for group in groups:
            rows = [r for r in records if r["method"] == method and (group == AVERAGE or r["group"] == group)]
            rounds = sum(len(r["accept_lengths"]) for r in rows)
            tau = sum(r["new_tokens"] for r in rows) / rounds if rounds else float("nan")
            cell = table.get(method, {}).get(group)
            cells.append(f"{f'{cell.speedup:.2f} ({tau:.2f})' if cell else '-':>11}")
        line = f"{method:{width}} " + " ".join(cells)
        base = base_of(method)
        if base and base != method and AVERAGE in table.get(base, {}) and AVERAGE in table.get(method, {}):
            line += f"  ({table[method][AVERAGE].speedup / table[base][AVERAGE].speedup - 1:+.1%} vs {base_name})"
        lines.append(line)
    return "\n".join(lines)


def eagle_table(records: list[dict]) -> str | None:
    """Table 4 layout for EAGLE-2 runs: speedup and mean accepted length (tau) per column.

    Each ``eagle2:...+svip`` row is compared with the ``eagle2`` row of the
    same tree (total, depth, top_k), so the gain is SVIP's alone.
    """
    methods = [m for m in dict.fromkeys(r["method"] for r in records) if method_kind(m) == "eagle2"]
    if not methods:
        return None

    def tree(method: str) -> tuple[str | None, ...]:
        params = parse_method(method).params
        return tuple(params.get(key) for key in ("total", "depth", "top_k"))

    plain = {tree(m): m for m in methods if policy_name(m) is None}
    return _tau_table(
        records,
        "EAGLE-2 (Table 4 layout): speedup (tau) per column",
        methods,
        lambda m: plain.get(tree(m)) if policy_name(m) is not None else None,
        "eagle2, same tree",
    )


def glide_table(records: list[dict]) -> str | None:
    """Table 3 layout for GliDe runs: speedup (tau) per column of every speculative method of the run.

    A ``glide...+<policy>`` row is compared with the same kind (and CaPE
    settings) under upstream's fixed 4 tokens, so the gain is the policy's.
    """
    methods = [m for m in dict.fromkeys(r["method"] for r in records) if m != TARGET_ONLY]
    if not any(method_kind(m).startswith("glide") for m in methods):
        return None

    def fixed(method: str) -> str | None:
        if not method_kind(method).startswith("glide"):
            return None
        head = method.partition("+")[0]
        return f"{head}+constant:k=4" if f"{head}+constant:k=4" in methods else None

    return _tau_table(records, "GliDe (Table 3 layout): speedup (tau) per column", methods, fixed, "4 tokens")


def draft_cost_ratio(records: list[dict]) -> float | None:
    """c = time of one draft forward / time of one target step, measured in this run.

    From methods that draft one token per forward (plain policies in the
    vanilla engine) against target-only's time per token; None without them.
    """
    plain = [r for r in records if method_kind(r["method"]) == "vanilla"]
    baseline = [r for r in records if r["method"] == TARGET_ONLY]
    forwards = sum(sum(draft_forwards(r)) for r in plain)
    tokens = sum(r["new_tokens"] for r in baseline)
    if not forwards or not tokens:
        return None
    step = sum(r["wall_time"] for r in baseline) / tokens
    return sum(r["draft_time"] for r in plain) / forwards / step


def cost_table(records: list[dict], draft_cost: float | None = None) -> str | None:
    """CS Drafting's cost metric beside wall-clock speedup (None: no speculative methods to show).

    Cost of a method = target forwards + c x draft-model forwards (Max-Gram
    costs 0); target-only pays one target forward per token, so the
    cost-based speedup is tokens / cost -- what CS Drafting reports as
    "standardized walltime improvement". c is ``draft_cost`` when given,
    else measured in this run (``draft_cost_ratio``). The model assumes a
    forward over many tokens costs what a one-token forward does: close on a
    GPU, not on a CPU, where the cascade's multi-token reviews cost more --
    hence both columns.
    """
    methods = [
        m for m in dict.fromkeys(r["method"] for r in records) if m != TARGET_ONLY and method_kind(m) != "eagle2"
    ]
    if not methods:
        return None
    c, source = (draft_cost, "given") if draft_cost is not None else (draft_cost_ratio(records), "measured here")
    if c is None:
        return "CS Drafting cost: no draft/target cost ratio c (no plain-policy and target-only runs to measure it from); pass --draft-cost C"
    table = speedups(records)
    width = max([len(m) for m in methods] + [12])
    lines = [
        f"CS Drafting cost (target forward = 1, draft forward = c = {c:.3f}, {source}; Max-Gram = 0):",
        f"{'method':{width}} {'wall spd':>8} {'tau':>6} {'tgt fwd':>8} {'draft fwd':>9} {'fwd/rnd':>7} {'cost spd':>8}",
    ]
    for method in methods:
        rows = [r for r in records if r["method"] == method]
        rounds = sum(len(r["drafted"]) for r in rows)
        target = sum(sum(target_forwards(r)) for r in rows)
        forwards = sum(sum(draft_forwards(r)) for r in rows)
        tokens = sum(r["new_tokens"] for r in rows)
        wall = table.get(method, {}).get(AVERAGE)
        lines.append(
            f"{method:{width}} {wall.speedup if wall else float('nan'):>8.2f} {tokens / target:>6.2f} {target:>8d} {forwards:>9d} "
            f"{forwards / rounds:>7.2f} {tokens / (target + c * forwards):>8.2f}"
        )
    lines.append(
        "tau = new tokens per target forward; fwd/rnd = draft-model forwards per round; cost spd = tokens / (tgt fwd + c x draft fwd)"
    )
    return "\n".join(lines)


ENTROPY_EDGES = (0.0, 0.3, 0.6, 1.0, 2.0, 3.0, float("inf"))  # nats; 0.6 = SVIP's threshold h^2/gamma at the defaults


def acceptance_by_entropy_table(records: list[dict]) -> str | None:
    """Figure 2 in numbers: P(accept | draft entropy) per method and entropy bin, "rate (tokens)".

    Counted over judged tokens only (the accepted ones and the first rejected
    one of each round, ``plots.judged_tokens``), one row per method.
    """
    from .plots import entropy_acceptance_by_method

    by_method = entropy_acceptance_by_method(records)
    if not by_method:
        return None
    labels = [
        f"[{lo:g},{hi:g})" if hi != float("inf") else f">={lo:g}" for lo, hi in zip(ENTROPY_EDGES, ENTROPY_EDGES[1:])
    ]
    width = max(len(m) for m in by_method)
    lines = ["P(accept | draft entropy H in nats), judged tokens only (accepted + first rejected per round): rate (tokens)",
             f"{'method':{width}} " + " ".join(f"{label:>12}" for label in labels)]  # fmt: skip
    for method, points in by_method.items():
        cells = []
        for lo, hi in zip(ENTROPY_EDGES, ENTROPY_EDGES[1:]):
            inside = [ok for h, ok in points if lo <= h < hi]
            cells.append(f"{f'{sum(inside) / len(inside):.2f} ({len(inside)})' if inside else '-':>12}")
        lines.append(f"{method:{width}} " + " ".join(cells))
    return "\n".join(lines)


LLAMACPP_TARGET_ONLY = "llamacpp"  # the engine CPU users run: every method is also priced against it


def engine_table(records: list[dict]) -> str | None:
    """Both engines in one table: ms/token, the speedup over the method's own engine's target-only, over our
    torch target-only and over llama.cpp's target-only, and token-match against its own baseline.

    Printed only for runs whose methods have more than one baseline (e.g. the torch engine and llama.cpp).
    """
    methods = methods_in_order(records)
    if len({baseline_of(m) for m in methods}) < 2:
        return None
    own = speedups(records)
    columns = [("own", own), ("vs torch t-o", speedups(records, TARGET_ONLY))]
    if any(r["method"] == LLAMACPP_TARGET_ONLY for r in records):
        columns.append(("vs llama.cpp t-o", speedups(records, LLAMACPP_TARGET_ONLY)))
    width = max(len(m) for m in methods)
    header = f"{'method':{width}} {'baseline':>11} {'ms/token':>9} " + " ".join(f"{name:>16}" for name, _ in columns)
    lines = [header + f" {'token-match':>11}", "-" * (len(header) + 12)]
    for method in methods:
        cells = []
        for _, table in columns:
            cell = table.get(method, {}).get(AVERAGE)
            cells.append(f"{cell.speedup:>15.2f}x" if cell else f"{'-':>16}")
        matches = [r["token_match"] for r in records if r["method"] == method and "token_match" in r]
        match = f"{sum(matches) / len(matches):>11.4f}" if matches else f"{'-':>11}"
        ms = ms_per_token(records, method)
        baseline = "-" if method == TARGET_ONLY else baseline_of(method)
        lines.append(f"{method:{width}} {baseline:>11} {ms:>9.1f} " + " ".join(cells) + f" {match}")
    lines.append(
        "own = over the method's own engine's target-only (llamacpp+* over llamacpp); ms/token = total wall time "
        "(prefill included) / total new tokens; token-match against the method's own baseline"
    )
    return "\n".join(lines)


def alone_table(records: list[dict]) -> str | None:
    """Each llama.cpp rule over its own server's target decoding alone (a ``llamacpp:...,alone=1`` row of the same
    server flags), per group.

    The engine table prices a rule against llama.cpp's target-only server, another process; on a shared VM two
    processes of the same target stepped it up to 15% apart for their whole lives (docs/adapters/llamacpp.md), as
    much as a rule that drafts little gains. Over its own process's target, a rule is credited with its drafting
    alone. Printed only for runs with such rows.
    """
    methods = methods_in_order(records)
    alone = {_server(m): m for m in methods if target_alone(m)}
    rules = [m for m in methods if not target_alone(m) and policy_name(m) and _server(m) in alone]
    if not rules:
        return None
    groups = groups_in_order(records) + [AVERAGE]
    over = {reference: speedups(records, reference) for reference in {alone[_server(m)] for m in rules}}
    width = max(len(m) for m in [*rules, "method"])
    header = _group_header(groups, width)
    lines = [header, "-" * len(header)]
    for method in rules:
        lines.append(_group_row(method, over[alone[_server(method)]][method], groups, width))
    lines.append(
        "speedup over the row with the same server flags and alone=1: the same llama-server process, its draft never run"
    )
    return "\n".join(lines)
