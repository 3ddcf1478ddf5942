"""The table ``svip simulate`` prints: simulated speedups, and a real run's measured ones beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .metrics import AVERAGE, TARGET_ONLY, groups_in_order, oracle_share, speedups
from .simulate import SimCosts, simulate, speedup_rows, summary

__all__ = ["simulate_report"]


def _measured(run_dir: str, methods: Sequence[str]) -> dict[str, dict[str, float]]:
    from .methods import canonical_method
    from .records import read_records

    records = read_records(Path(run_dir) / "results.jsonl")
    table = speedups(records)
    return {
        m: {g: c.speedup for g, c in table[canonical_method(m)].items()}
        for m in methods
        if canonical_method(m) in table
    }


def simulate_report(
    header: dict, rows: list[dict], methods: Sequence[str], costs: SimCosts, *, run_dir: str | None = None
) -> str:
    methods = [TARGET_ONLY] + [m for m in methods if m != TARGET_ONLY]
    simulated = simulate(header, rows, methods, costs)
    table = speedup_rows(simulated)
    groups = groups_in_order(rows) + [AVERAGE]
    oracle = next((table[m][AVERAGE] for m in methods if m.startswith("oracle")), None)
    measured = _measured(run_dir, methods) if run_dir else {}
    width = max(len(m) for m in methods) + 1
    head = (
        f"{'method':{width}}" + "".join(f"{g[:9]:>10}" for g in groups) + f"{'accept':>8}{'tok/rd':>8}{'oracle%':>8}"
    )
    if measured:
        head += f"{'measured':>10}{'sim/meas':>9}"
    lines = ["simulated speedup over target-only (total tokens / total cost per column)", head, "-" * len(head)]
    for method in methods[1:]:
        cells = "".join(f"{table[method].get(g, float('nan')):>10.2f}" for g in groups)
        info = summary(simulated[method][AVERAGE])
        share = oracle_share(table[method][AVERAGE], oracle)
        line = f"{method:{width}}{cells}{info['acceptance']:>8.1%}{info['tokens_per_round']:>8.2f}" + (
            f"{share:>8.0%}" if share is not None else f"{'-':>8}"
        )
        if measured and method in measured:
            real = measured[method][AVERAGE]
            line += f"{real:>10.2f}{table[method][AVERAGE] / real - 1:>+9.1%}"
        if info["cut_branches"]:
            line += f"  ({info['cut_branches']} rounds cut at the trace's branch depth)"
        lines.append(line)
    fixed = [m for m in methods[1:] if not m.startswith(("oracle", "svip-adaptive"))]
    if fixed:
        best = max(fixed, key=lambda m: table[m][AVERAGE])
        lines.append(f"best fixed rule in hindsight: {best} {table[best][AVERAGE]:.2f}x")
        for method in methods[1:]:
            if method.startswith("svip-adaptive"):
                gap = table[method][AVERAGE] / table[best][AVERAGE] - 1
                lines.append(f"{method}: {table[method][AVERAGE]:.2f}x ({gap:+.1%} vs that rule)")
    return "\n".join(lines)
