"""Plain-text tables in the paper's layout, from stored records."""

from __future__ import annotations

from .metrics import AVERAGE, TARGET_ONLY, draft_summary, groups_in_order, speedups

__all__ = ["speedup_table", "draft_table"]

_SHORT = {"mt-bench": "MT-Bench", "translation": "Trans.", "summarization": "Sum.", "qa": "QA", "math_reasoning": "Math", "rag": "RAG"}


def speedup_table(records: list[dict]) -> str:
    """Table 1 layout: speedup over target-only per group + Avg., SVIP's gain over the best baseline."""
    table = speedups(records)
    groups = groups_in_order(records) + [AVERAGE]
    methods = [m for m in table if m != TARGET_ONLY]
    baselines = [m for m in methods if not m.startswith(("svip", "oracle"))]
    best_baseline = max((table[m][AVERAGE].speedup for m in baselines if AVERAGE in table[m]), default=None)
    width = max([len(m) for m in methods] + [12])
    header = f"{'method':{width}} " + " ".join(f"{_SHORT.get(g, g)[:9]:>9}" for g in groups)
    lines = [header, "-" * len(header)]
    for method in methods:
        cells = []
        for group in groups:
            cell = table[method].get(group)
            cells.append(f"{cell.speedup:>9.2f}" if cell else f"{'-':>9}")
        line = f"{method:{width}} " + " ".join(cells)
        if method.startswith("svip") and best_baseline and AVERAGE in table[method]:
            line += f"  ({table[method][AVERAGE].speedup / best_baseline - 1:+.1%} vs best baseline)"
        lines.append(line)
    lines.append("")
    lines.append("speedup = (method tokens / method time) / (target-only tokens / target-only time), totals per column;")
    lines.append("Avg. over all questions. Mean of per-question ratios [min, max]:")
    for method in methods:
        cell = table[method].get(AVERAGE)
        if cell:
            lines.append(f"  {method:{width}} {cell.mean_ratio:.2f} [{cell.low:.2f}, {cell.high:.2f}] over {cell.questions} questions")
    return "\n".join(lines)


def draft_table(records: list[dict]) -> str:
    """Figure 5 numbers: draft length, accepted length, acceptance rate (plus tau and token-match)."""
    methods = [m for m in dict.fromkeys(r["method"] for r in records) if m != TARGET_ONLY]
    width = max([len(m) for m in methods] + [12])
    lines = [f"{'method':{width}} {'drafted/rnd':>11} {'accepted/rnd':>12} {'accept rate':>11} {'tokens/rnd':>10} {'token-match':>11}"]
    for method in methods:
        s = draft_summary(records, method)
        lines.append(f"{method:{width}} {s.drafted_per_round:>11.2f} {s.accepted_per_round:>12.2f} {s.acceptance_rate:>11.1%} {s.tokens_per_round:>10.2f} {s.token_match:>11.4f}")
    return "\n".join(lines)
