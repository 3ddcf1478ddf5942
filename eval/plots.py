"""PNG plots from stored records (matplotlib, headless).

- entropy vs acceptance: the paper's Figure 2 from our own runs. Draft token
  i of a round was accepted iff i < the round's accepted count, so every
  drafted token gives one (entropy, accepted?) point;
- draft-length distribution per method;
- speedup bars per group.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .metrics import AVERAGE, TARGET_ONLY, groups_in_order, speedups

__all__ = ["entropy_acceptance_points", "plot_all"]


def entropy_acceptance_points(records: list[dict]) -> list[tuple[float, bool]]:
    """(draft entropy, accepted?) for every drafted token of every speculative record."""
    points = []
    for record in records:
        for entropies, accepted in zip(record.get("entropies", []), record.get("accepted", [])):
            points.extend((h, i < accepted) for i, h in enumerate(entropies))
    return points


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_entropy_vs_acceptance(records: list[dict], out: Path, bins: int = 20) -> Path:
    plt = _figure()
    points = entropy_acceptance_points(records)
    if not points:
        raise ValueError("no drafted tokens in these records")
    top = max(h for h, _ in points) or 1.0
    width = top / bins
    totals, hits = [0] * bins, [0] * bins
    for h, ok in points:
        b = min(bins - 1, int(h / width))
        totals[b] += 1
        hits[b] += ok
    centers = [(b + 0.5) * width for b in range(bins) if totals[b]]
    rates = [hits[b] / totals[b] for b in range(bins) if totals[b]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(centers, rates, marker="o")
    ax.set_xlabel("draft entropy H (nats)")
    ax.set_ylabel("acceptance rate")
    ax.set_title(f"Draft entropy vs acceptance ({len(points)} drafted tokens)")
    ax.axvline(0.3**2 / 0.15, linestyle="--", color="grey", label="SVIP stop, h=0.3, gamma=0.15")
    ax.legend()
    return _save(plt, fig, out)


def plot_draft_lengths(records: list[dict], out: Path) -> Path:
    plt = _figure()
    lengths = defaultdict(list)
    for record in records:
        if record["method"] != TARGET_ONLY:
            lengths[record["method"]].extend(record["drafted"])
    fig, ax = plt.subplots(figsize=(7, 4))
    top = max((max(v) for v in lengths.values() if v), default=1)
    for method, values in lengths.items():
        ax.hist(values, bins=range(1, top + 2), histtype="step", label=method, density=True)
    ax.set_xlabel("draft tokens per round")
    ax.set_ylabel("share of rounds")
    ax.legend(fontsize=7)
    return _save(plt, fig, out)


def plot_speedups(records: list[dict], out: Path) -> Path:
    plt = _figure()
    table = speedups(records)
    groups = groups_in_order(records) + [AVERAGE]
    methods = [m for m in table if m != TARGET_ONLY]
    fig, ax = plt.subplots(figsize=(max(6, len(groups) * 1.2), 4))
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        values = [table[method][g].speedup if g in table[method] else 0 for g in groups]
        ax.bar([x + i * width for x in range(len(groups))], values, width, label=method)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([x + width * (len(methods) - 1) / 2 for x in range(len(groups))], groups, fontsize=8)
    ax.set_ylabel("speedup over target-only")
    ax.legend(fontsize=7)
    return _save(plt, fig, out)


def plot_all(records: list[dict], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [
        plot_entropy_vs_acceptance(records, directory / "entropy_vs_acceptance.png"),
        plot_draft_lengths(records, directory / "draft_lengths.png"),
        plot_speedups(records, directory / "speedups.png"),
    ]
