"""PNG plots from stored records (matplotlib, headless).

- entropy vs acceptance: the paper's Figure 2 from our own runs. Draft token
  i of a round was accepted iff i < the round's accepted count, so every
  drafted token gives one (entropy, accepted?) point;
- H(q, p) / H(q) per drafted token: the paper's Figure 3, needs runs that
  recorded the cross-entropy to the target (``svip bench`` does by default);
- draft-length distribution per method;
- speedup bars per group.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .metrics import AVERAGE, TARGET_ONLY, groups_in_order, speedups

__all__ = [
    "binned",
    "equal_count_bins",
    "cross_entropy_ratios",
    "entropy_acceptance_by_method",
    "entropy_acceptance_points",
    "judged_tokens",
    "plot_all",
]

MIN_ENTROPY = 0.05  # nats: below this H(q) ~ 0 and the ratio is noise over noise


def judged_tokens(entropies: list[float], accepted: int) -> list[tuple[float, bool]]:
    """(entropy, accepted?) for the drafted tokens of one round that the target actually judged.

    The target accepts a prefix: tokens ``0..accepted-1`` were accepted, token
    ``accepted`` (if drafted) was the first rejection, and the tokens after it
    were never judged -- counting them as rejected would mix each method's
    round lengths into P(accept | H). So a round of 5 with 2 accepted gives
    exactly 3 points: two accepted, one rejected.
    """
    return [(h, i < accepted) for i, h in enumerate(entropies[: accepted + 1])]


def entropy_acceptance_points(records: list[dict]) -> list[tuple[float, bool]]:
    """(draft entropy, accepted?) for every *judged* drafted token of the records (the paper's Figure 2)."""
    return [
        point
        for record in records
        for entropies, accepted in zip(record.get("entropies", []), record.get("accepted", []))
        for point in judged_tokens(entropies, accepted)
    ]


def entropy_acceptance_by_method(records: list[dict]) -> dict[str, list[tuple[float, bool]]]:
    """Figure 2 per method: each method drafts (and stops) differently, so their points are never pooled."""
    methods = [m for m in dict.fromkeys(r["method"] for r in records) if m != TARGET_ONLY]
    by_method = {m: entropy_acceptance_points([r for r in records if r["method"] == m]) for m in methods}
    return {m: points for m, points in by_method.items() if points}


def cross_entropy_ratios(records: list[dict]) -> tuple[str | None, list[float]]:
    """(method, H(q,p)/H(q) per drafted token) from one method that recorded cross-entropies.

    One method only: the methods draft mostly the same positions, pooling
    them would count a token several times. Constant-k is preferred (it
    drafts past high-entropy tokens, so the whole range is covered).
    """
    methods = list(dict.fromkeys(r["method"] for r in records if r.get("cross_entropies")))
    if not methods:
        return None, []
    method = next((m for m in methods if m.startswith("constant")), methods[0])
    ratios = []
    for record in records:
        if record["method"] != method:
            continue
        for entropies, crosses in zip(record["entropies"], record["cross_entropies"]):
            ratios.extend(
                c / h for h, c in zip(entropies, crosses or []) if h > MIN_ENTROPY and c == c and c != float("inf")
            )
    return method, ratios


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


MIN_BIN_COUNT = 10  # a bin with fewer points is noise, not a trend


def binned(points: list[tuple[float, float]], bins: int, top: float | None = None) -> list[tuple[float, float, int]]:
    """(bin centre, mean y, count) over equal-width bins of [0, top]; bins under MIN_BIN_COUNT points are left out."""
    if not points:
        raise ValueError("no drafted tokens in these records")
    width = (top or max(x for x, _ in points) or 1.0) / bins
    sums, counts = [0.0] * bins, [0] * bins
    for x, y in points:
        b = min(bins - 1, int(x / width))
        sums[b] += y
        counts[b] += 1
    kept = [b for b in range(bins) if counts[b] >= MIN_BIN_COUNT] or [b for b in range(bins) if counts[b]]
    return [((b + 0.5) * width, sums[b] / counts[b], counts[b]) for b in kept]


def equal_count_bins(points: list[tuple[float, float]], bins: int) -> list[tuple[float, float, int]]:
    """(mean x, mean y, count) over ``bins`` bins of (nearly) equal count, sorted by x: every point is in one bin.

    Figure 2's tail is few tokens spread over a wide entropy range; equal-width
    bins with a minimum count dropped it (the part of the curve that justifies
    the stop rule), equal-count bins keep it as its own point.
    """
    if not points:
        raise ValueError("no drafted tokens in these records")
    ordered = sorted(points)
    bins = max(1, min(bins, len(ordered)))
    edges = [round(i * len(ordered) / bins) for i in range(bins + 1)]
    rows = []
    for lo, hi in zip(edges, edges[1:]):
        chunk = ordered[lo:hi]
        if chunk:
            rows.append((sum(x for x, _ in chunk) / len(chunk), sum(y for _, y in chunk) / len(chunk), len(chunk)))
    return rows


def _binned_means(points: list[tuple[float, float]], bins: int) -> tuple[list[float], list[float]]:
    rows = binned(points, bins)
    return [c for c, _, _ in rows], [m for _, m, _ in rows]


def plot_entropy_vs_acceptance(records: list[dict], out: Path, bins: int = 12) -> Path:
    """Figure 2: P(accept | draft entropy) per method over judged tokens only, equal-count bins (every token
    plotted, each point at its bin's mean entropy), with the token count of each bin."""
    plt = _figure()
    by_method = entropy_acceptance_by_method(records)
    if not by_method:
        raise ValueError("no drafted tokens in these records")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for method, points in by_method.items():
        rows = equal_count_bins([(h, float(ok)) for h, ok in points], bins)
        line = ax.plot(
            [c for c, _, _ in rows], [m for _, m, _ in rows], marker="o", label=f"{method} ({len(points)} tokens)"
        )[0]
        for centre, mean, count in rows:
            ax.annotate(
                str(count),
                (centre, mean),
                textcoords="offset points",
                xytext=(0, 4),
                fontsize=5,
                color=line.get_color(),
            )
    ax.set_xlabel("draft entropy H (nats)")
    ax.set_ylabel("P(accept | reached)")
    ax.set_ylim(0, 1.05)
    ax.set_title(
        "Draft entropy vs acceptance (judged tokens: accepted + first rejected per round; n per bin)", fontsize=8
    )
    ax.axvline(0.3**2 / 0.15, linestyle="--", color="grey", label="SVIP stop, h=0.3, gamma=0.15")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(plt, fig, out)


def plot_entropy_vs_accepted_length(records: list[dict], out: Path, bins: int = 15) -> Path:
    """Per round: entropy of the first drafted token vs tokens accepted in that round."""
    plt = _figure()
    points = [(e[0], float(a)) for r in records for e, a in zip(r.get("entropies", []), r.get("accepted", [])) if e]
    centers, means = _binned_means(points, bins)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(centers, means, marker="o")
    ax.set_xlabel("entropy of the round's first draft token (nats)")
    ax.set_ylabel("mean accepted tokens in the round")
    ax.set_title(f"Draft entropy vs accepted length ({len(points)} rounds)")
    return _save(plt, fig, out)


def plot_cross_entropy_ratio(records: list[dict], out: Path) -> Path | None:
    """Histogram of H(q, p) / H(q) (Figure 3); None when no run recorded cross-entropies."""
    method, ratios = cross_entropy_ratios(records)
    if not ratios:
        return None
    plt = _figure()
    ratios.sort()
    clip = ratios[int(0.99 * (len(ratios) - 1))]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist([min(r, clip) for r in ratios], bins=40)
    median = ratios[len(ratios) // 2]
    ax.axvline(median, color="black", linestyle="--", label=f"median {median:.2f}")
    ax.set_xlabel("H(q, p) / H(q)   (draft q, target p; clipped at the 99th percentile)")
    ax.set_ylabel("drafted tokens")
    ax.set_title(
        f"Cross-entropy over draft entropy, {method} ({len(ratios)} tokens with H(q) > {MIN_ENTROPY})", fontsize=8
    )
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
    fig, ax = plt.subplots(figsize=(max(6, len(groups) * 1.2) + 3, 4))
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        values = [table[method][g].speedup if g in table[method] else 0 for g in groups]
        ax.bar([x + i * width for x in range(len(groups))], values, width, label=method)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([x + width * (len(methods) - 1) / 2 for x in range(len(groups))], groups, fontsize=8)
    ax.set_ylabel("speedup over target-only")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(plt, fig, out)


def plot_all(records: list[dict], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        plot_entropy_vs_acceptance(records, directory / "entropy_vs_acceptance.png"),
        plot_entropy_vs_accepted_length(records, directory / "entropy_vs_accepted_length.png"),
        plot_cross_entropy_ratio(records, directory / "cross_entropy_ratio.png"),
        plot_draft_lengths(records, directory / "draft_lengths.png"),
        plot_speedups(records, directory / "speedups.png"),
    ]
    return [path for path in written if path is not None]
