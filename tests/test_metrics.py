"""Speedups and draft statistics on hand-made records with known answers."""

import pytest

from svip.eval.metrics import draft_summary, speedups
from svip.eval.tables import speedup_table

SVIP = "svip:h=0.3,gamma=0.15,max=40"


def record(question, group, method, tokens, seconds, drafted=(), accepted=()):
    return dict(question_id=question, group=group, category=group, method=method, new_tokens=tokens,
                wall_time=seconds, drafted=list(drafted), accepted=list(accepted), token_match=1.0)  # fmt: skip


RECORDS = [
    record("1", "qa", "target-only", 10, 1.0, [0] * 10, [0] * 10),
    record("1", "qa", SVIP, 10, 0.5, [3, 3], [2, 3]),
    record("1", "qa", "constant:k=5", 10, 0.8, [5, 5], [4, 4]),
    record("2", "rag", "target-only", 20, 4.0),
    record("2", "rag", SVIP, 20, 1.0, [4, 4, 4], [4, 4, 3]),
    record("2", "rag", "constant:k=5", 20, 2.0, [5, 5, 5], [5, 5, 4]),
]


def test_speedup_is_a_ratio_of_throughput_totals():
    table = speedups(RECORDS)
    assert table[SVIP]["qa"].speedup == pytest.approx(2.0)
    assert table[SVIP]["rag"].speedup == pytest.approx(4.0)
    # Avg.: (30 tokens / 1.5 s) / (30 tokens / 5 s) = 3.33; mean of per-question ratios = 3.0
    assert table[SVIP]["Avg."].speedup == pytest.approx(30 / 1.5 / (30 / 5.0))
    assert table[SVIP]["Avg."].mean_ratio == pytest.approx(3.0)
    assert (table[SVIP]["Avg."].low, table[SVIP]["Avg."].high) == (pytest.approx(2.0), pytest.approx(4.0))


def test_draft_summary():
    summary = draft_summary(RECORDS, SVIP)
    assert summary.drafted_per_round == pytest.approx(18 / 5)
    assert summary.accepted_per_round == pytest.approx(16 / 5)
    assert summary.acceptance_rate == pytest.approx(16 / 18)
    assert summary.tokens_per_round == pytest.approx(30 / 5)


def test_table_marks_gain_over_best_baseline():
    text = speedup_table(RECORDS)
    constant_avg = 30 / 2.8 / (30 / 5.0)
    assert f"({(30 / 1.5 / (30 / 5.0)) / constant_avg - 1:+.1%} vs best baseline)" in text


def test_entropy_acceptance_points_and_plots(tmp_path):
    from svip.eval.plots import entropy_acceptance_points, judged_tokens, plot_all

    # A round of 5 with 2 accepted gives exactly 3 points: two accepted, one rejected; the last 2 were never judged.
    assert judged_tokens([0.1, 0.2, 0.3, 0.4, 0.5], 2) == [(0.1, True), (0.2, True), (0.3, False)]
    assert judged_tokens([0.1, 0.2], 2) == [(0.1, True), (0.2, True)]  # all accepted: nothing rejected
    assert judged_tokens([0.7, 0.8, 0.9], 0) == [(0.7, False)]
    records = [dict(RECORDS[1], entropies=[[0.1, 0.2, 1.5], [0.3, 0.4, 0.5]])]  # accepted [2, 3]
    assert entropy_acceptance_points(records) == [
        (0.1, True),
        (0.2, True),
        (1.5, False),
        (0.3, True),
        (0.4, True),
        (0.5, True),
    ]
    constant = dict(RECORDS[2], entropies=[[0.1, 2.0, 2.1, 2.2, 2.3], [0.1, 0.2, 0.3, 0.4, 2.5]])  # accepted [4, 4]
    assert entropy_acceptance_points([constant]) == [(0.1, True), (2.0, True), (2.1, True), (2.2, True), (2.3, False)] + [
        (0.1, True), (0.2, True), (0.3, True), (0.4, True), (2.5, False)
    ]  # fmt: skip
    pngs = plot_all([RECORDS[0], *records, constant], tmp_path)
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_figure2_is_per_method_with_counts_per_bin():
    from svip.eval.plots import entropy_acceptance_by_method
    from svip.eval.tables import acceptance_by_entropy_table

    short = dict(RECORDS[1], entropies=[[0.1] * 3, [0.1] * 3], drafted=[3, 3], accepted=[0, 3])
    long = dict(RECORDS[2], entropies=[[0.1] * 5, [0.1] * 5], drafted=[5, 5], accepted=[1, 5])
    by_method = entropy_acceptance_by_method([RECORDS[0], short, long])
    assert list(by_method) == [SVIP, "constant:k=5"]
    assert [ok for _, ok in by_method[SVIP]] == [False, True, True, True]  # 1 + 3 judged
    assert [ok for _, ok in by_method["constant:k=5"]] == [True, False] + [True] * 5  # 2 + 5 judged
    text = acceptance_by_entropy_table([RECORDS[0], short, long])
    assert f"{SVIP}" in text and "0.75 (4)" in text and "0.86 (7)" in text


def _grid_records():
    rows = [record("1", "qa", "target-only", 10, 1.0)]
    for h, gamma, seconds in [("0.2", "0.1", 0.5), ("0.2", "0.15", 0.4), ("0.3", "0.1", 0.25), ("0.3", "0.15", 0.8)]:
        rows.append(record("1", "qa", f"svip:h={h},gamma={gamma},max=40", 10, seconds, [2], [1]))
    rows.append(record("1", "qa", "constant:k=5", 10, 0.5, [5], [2]))
    return rows


def test_ablation_marks_the_best_setting_and_draws_the_grid():
    from svip.eval.ablation import ablation_table

    text = ablation_table(_grid_records())
    best = next(line for line in text.splitlines() if line.lstrip().startswith("*"))
    assert "h=0.3,gamma=0.1," in best and "4.00" in best  # 10 tok / 0.25 s over 10 tok / 1 s
    assert "h (rows) x gamma (columns)" in text
    assert "4.00*" in text and "constant" not in text  # a single setting is not an ablation


def test_length_table_puts_lengths_in_columns():
    from svip.eval.tables import length_table

    short = [record("1", "qa", "target-only", 10, 1.0), record("1", "qa", SVIP, 10, 0.5, [2], [1])]
    long = [record("1", "qa", "target-only", 20, 2.0), record("1", "qa", SVIP, 20, 0.5, [2], [1])]
    lines = length_table([(256, long), (128, short)]).splitlines()
    assert lines[1].split()[1:] == ["128", "256"]
    assert lines[3].split() == [SVIP, "2.00", "4.00"]


def test_svip_gain_is_against_baselines_of_the_same_loop():
    rows = [
        record("1", "qa", "target-only", 10, 1.0),
        record("1", "qa", SVIP, 10, 0.5, [2], [1]),  # 2.0x
        record("1", "qa", "constant:k=5", 10, 0.8, [5], [2]),  # 1.25x
        record("1", "qa", "hf+" + SVIP, 10, 0.8, [2], [1]),  # 1.25x
        record("1", "qa", "hf+constant:k=5", 10, 1.0, [5], [2]),  # 1.0x
    ]
    lines = speedup_table(rows).splitlines()
    assert "(+60.0% vs best baseline)" in next(l for l in lines if l.startswith(SVIP))
    assert "(+25.0% vs best baseline)" in next(l for l in lines if l.startswith("hf+" + SVIP))


def test_time_table_splits_wall_time():
    from svip.eval.tables import time_table

    rows = [dict(record("1", "qa", "hf+" + SVIP, 10, 2.0, [2], [1]), draft_time=0.5, verify_time=1.0)]
    line = time_table(rows).splitlines()[1].split()
    assert line[1:] == ["2.0", "0.5", "1.0", "0.5", "25.0%", "200.0"]


def test_figure2_bins_keep_the_high_entropy_tail():
    """253 judged tokens, 37 of them a sparse high-entropy tail with low acceptance: all of them plotted."""
    from svip.eval.plots import binned, equal_count_bins

    body = [(0.01 * (i % 160), 1.0 if i % 10 else 0.0) for i in range(216)]  # H < 1.6, acceptance 0.9
    tail = [(1.7 + 0.05 * i, 1.0 if i % 4 == 0 else 0.0) for i in range(37)]  # H 1.7-3.5, acceptance ~0.27
    rows = equal_count_bins(body + tail, 12)
    assert sum(count for _, _, count in rows) == 253  # every judged token is in some bin
    assert rows[-1][0] > 2.5 and rows[-1][1] < 0.4  # the tail is a point of its own, low acceptance
    assert [x for x, _, _ in rows] == sorted(x for x, _, _ in rows)
    # the old equal-width bins with a minimum count dropped the tail entirely
    assert max(x for x, _, _ in binned(body + tail, 20)) < 1.7


def test_engine_table_prices_each_engine_against_its_own_target_only():
    """torch target-only 10 tok/s, llama.cpp target-only 20, llama.cpp + svip 25: 1.25x own, 2.5x torch."""
    from svip.eval.metrics import speedups
    from svip.eval.tables import engine_table

    def record(method, seconds, match=None):
        row = {"question_id": 1, "group": "qa", "method": method, "new_tokens": 10, "wall_time": seconds}
        return row if match is None else {**row, "token_match": match}

    svip = "llamacpp+svip:h=0.3,gamma=0.15,max=40"
    records = [record("target-only", 1.0), record("llamacpp", 0.5, 0.0), record(svip, 0.4, 1.0)]
    assert speedups(records)[svip]["Avg."].speedup == pytest.approx(1.25)
    assert speedups(records, "target-only")[svip]["Avg."].speedup == pytest.approx(2.5)
    table = engine_table(records)
    row = next(line for line in table.splitlines() if line.startswith(svip))
    assert row.split()[1:] == ["llamacpp", "40.0", "1.25x", "2.50x", "1.25x", "1.0000"]
    assert engine_table([record("target-only", 1.0), record("svip", 0.5)]) is None  # one engine: no such table


def test_an_engines_own_target_only_is_no_baseline_setting():
    """llama.cpp target-only 2x torch's; over it, k=2 (bf16 draft) 1.09x, svip 1.5x, k=3 and svip with a Q4_0 draft
    1.2x and 2.0x: each svip is priced against the fixed rule with its own draft, never against the engine's 2.0x
    over torch (a speed over another engine); the settings list leaves the engine's target-only out."""
    from svip.eval.ablation import ablation_table

    def record(method, seconds):
        row = {"question_id": 1, "group": "qa", "method": method, "new_tokens": 12, "wall_time": seconds}
        return {**row, "drafted": [], "accepted": [], "token_match": 1.0}

    svip, fixed = "llamacpp+svip:h=0.3,gamma=0.15,max=40", "llamacpp:draft=q4_0+constant:k=3"
    records = [record("target-only", 1.2), record("llamacpp", 0.6), record(fixed, 0.5), record(svip, 0.4)]
    cheap = "llamacpp:draft=q4_0+svip:h=0.3,gamma=0.15,max=40"
    table = speedup_table(records + [record("llamacpp+constant:k=2", 0.55), record(cheap, 0.3)]).splitlines()
    line = next(line for line in table if line.startswith(svip))
    assert line.endswith("(+37.5% vs best baseline)")  # over k=2's 1.09x: the fixed rule with the same draft
    assert next(line for line in table if line.startswith(cheap)).endswith("(+66.7% vs best baseline)")  # over k=3
    listed = ablation_table(records + [record("llamacpp:draft=q4_0+svip:h=0.3,gamma=0.15,max=40", 0.45)])
    assert "llamacpp: 2 settings" in listed and "  * llamacpp " not in listed and "\n    llamacpp " not in listed


def test_a_rule_on_a_draft_run_another_way_is_priced_against_fixed_rules_run_the_same_way():
    """``llamacpp:keep=1`` (the draft keeps its drafting's KV) speeds up every rule on that server: svip without it
    is priced against k=3 without it (1.06x -> +4.7%), never against k=3 with it (1.15x, which would print -3.5%)."""

    def record(method, seconds):
        row = {"question_id": 1, "group": "qa", "method": method, "new_tokens": 12, "wall_time": seconds}
        return {**row, "drafted": [], "accepted": [], "token_match": 1.0}

    svip, kept_svip = "llamacpp+svip:h=0.3,gamma=0.15,max=40", "llamacpp:keep=1+svip:h=0.3,gamma=0.15,max=40"
    records = [
        record("target-only", 2.0),
        record("llamacpp", 1.0),
        record("llamacpp+constant:k=3", 1 / 1.06),
        record("llamacpp:keep=1+constant:k=3", 1 / 1.15),
        record(svip, 1 / 1.11),
        record(kept_svip, 1 / 1.21),
    ]
    table = speedup_table(records).splitlines()
    assert next(line for line in table if line.startswith(svip)).endswith("(+4.7% vs best baseline)")
    assert next(line for line in table if line.startswith(kept_svip)).endswith("(+5.2% vs best baseline)")


def test_a_rule_is_also_priced_against_its_own_servers_target_alone():
    """Two llama-server processes of one target may step it at different speeds: here the calibrated server's
    target alone is 0.8x the target-only server's, so the adaptive rule on it reads 0.88x there but 1.10x over its
    own process. ``alone=1`` rows are no baseline setting: svip is still priced against k=3 on its server."""
    from svip.eval.tables import alone_table

    def record(question, group, method, seconds):
        row = {"question_id": question, "group": group, "method": method, "new_tokens": 10, "wall_time": seconds}
        return {**row, "drafted": [], "accepted": [], "token_match": 1.0}

    adaptive = "llamacpp:keep=1,calibrate=1+svip-adaptive:gamma=0.15,prior=4.0,probe=16,max=40"
    svip, fixed = "llamacpp:keep=1+svip:h=0.3,gamma=0.15,max=40", "llamacpp:keep=1+constant:k=3"
    records = []
    for question, group in (("1", "qa"), ("2", "rag")):
        records += [
            record(question, group, "target-only", 3.0),
            record(question, group, "llamacpp", 1.0),
            record(question, group, "llamacpp:keep=1,alone=1", 0.95),  # faster than k=3: still no baseline
            record(question, group, "llamacpp:keep=1,calibrate=1,alone=1", 1.25),
            record(question, group, adaptive, 1 / 0.88),
            record(question, group, svip, 1 / 1.05),
            record(question, group, fixed, 1 / 1.02 if group == "qa" else 1 / 1.04),
        ]
    table = alone_table(records).splitlines()
    row = next(line for line in table if line.startswith(adaptive))
    assert row.split()[1:] == ["1.10", "1.10", "1.10"]  # qa, rag, Avg.: 1.25 s alone over 1.136 s
    assert next(line for line in table if line.startswith(svip)).split()[1:] == ["1.00", "1.00", "1.00"]
    assert not any(line.startswith("llamacpp:keep=1,alone=1") for line in table)  # the references are no rows
    speed = speedup_table(records).splitlines()
    assert next(line for line in speed if line.startswith(svip)).endswith("(+2.0% vs best baseline)")  # k=3's 1.03x
    assert alone_table([r for r in records if "alone=1" not in r["method"]]) is None  # no alone rows: no table
