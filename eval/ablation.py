"""Ablations: expand a parameter grid into methods, and print the grid with the best marked.

``svip:h=0.2|0.3|0.4,gamma=0.1|0.15`` is six methods (every combination),
run side by side like any others; ``ablation_table`` then lists each
policy family's settings with their average speedup and acceptance, marks
the best with ``*``, and shows SVIP's h x gamma grid as a matrix.
"""

from __future__ import annotations

from collections import defaultdict

from svip.grammar import expand_grid

from .metrics import AVERAGE, TARGET_ONLY, baseline_of, draft_summary, methods_in_order, speedups, target_alone

__all__ = ["expand_grid", "ablation_table"]


def _family_and_params(method: str) -> tuple[str, dict[str, str]]:
    name, _, params = method.partition(":")
    return name, dict(item.split("=", 1) for item in params.split(",") if "=" in item)


def ablation_table(records: list[dict]) -> str:
    """Per policy family with several settings: Avg. speedup, acceptance, tokens/round; best marked ``*``."""
    table = speedups(records)
    families: dict[str, list[str]] = defaultdict(list)
    ordered = methods_in_order(records)
    references = {TARGET_ONLY} | {baseline_of(m) for m in ordered}  # an engine's target-only is no setting
    for method in ordered:
        if method not in references and not target_alone(method) and AVERAGE in table.get(method, {}):
            families[_family_and_params(method)[0]].append(method)
    lines = []
    for family, methods in families.items():
        if len(methods) < 2:
            continue
        best = max(methods, key=lambda m: table[m][AVERAGE].speedup)
        width = max(len(m) for m in methods)
        lines.append(f"{family}: {len(methods)} settings (speedup = Avg. over all questions)")
        lines.append(
            f"  {'':1} {'method':{width}} {'speedup':>8} {'accept rate':>11} {'drafted/rnd':>11} {'tokens/rnd':>10}"
        )
        for method in methods:
            s = draft_summary(records, method)
            mark = "*" if method == best else " "
            lines.append(
                f"  {mark} {method:{width}} {table[method][AVERAGE].speedup:>8.2f} {s.acceptance_rate:>11.1%} {s.drafted_per_round:>11.2f} {s.tokens_per_round:>10.2f}"
            )
        lines.extend(_matrix(family, methods, table))
        lines.append("")
    return "\n".join(lines).rstrip() or "no policy family was run with more than one setting"


def _cell(value: float | None, best: float) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" + ("*" if value == best else " ")


def _matrix(family: str, methods: list[str], table) -> list[str]:
    """A two-parameter sweep (svip's h x gamma) as a matrix of speedups."""
    params = {m: _family_and_params(m)[1] for m in methods}
    varying = [
        k for k in dict.fromkeys(k for p in params.values() for k in p) if len({p.get(k) for p in params.values()}) > 1
    ]
    if len(varying) != 2:
        return []
    rows_key, cols_key = varying
    rows = list(dict.fromkeys(p[rows_key] for p in params.values()))
    cols = list(dict.fromkeys(p[cols_key] for p in params.values()))
    cell = {(p[rows_key], p[cols_key]): table[m][AVERAGE].speedup for m, p in params.items()}
    best = max(cell.values())
    corner = f"{rows_key}/{cols_key}"
    out = [
        f"  {family} speedup, {rows_key} (rows) x {cols_key} (columns):",
        f"  {corner:>12}" + "".join(f"{c:>9}" for c in cols),
    ]
    for r in rows:
        cells = "".join(f"{_cell(cell.get((r, c)), best):>9}" for c in cols)
        out.append(f"  {r:>12}{cells}")
    return out
