"""Why a tree rule wins or loses: per verified tree, the size chosen, the forecasts and what was measured.

Issue 33: on unseen prompts ``eagle2+svip-adaptive`` lost 20% to a fixed
16-node tree while verifying twice its nodes. This tool decodes the same
questions with every given EAGLE method, interleaved (question by question),
and prints per method its tokens per second, tokens per round, nodes, levels
and seconds per round; for the adaptive tree it also buckets the rounds by the
size it chose and prints, per bucket, the accepted length it expected against
the one it got and the verify seconds it predicted against the measured ones.
Run in EAGLE's venv::

    third_party/eagle-venv/bin/python -m svip.eval.eagle.tree_log --target qwen2.5-coder-1.5b \\
        --eagle-head adapters/eagle/heads/qwen2.5-coder-1.5b --dtype bf16 --questions heldout \\
        --methods 'eagle2:total=16,depth=3,top_k=15+svip' eagle2+svip-adaptive
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict

from svip.kernels import KERNELS

__all__ = ["bucket_rounds", "main"]

BUCKETS = (1, 4, 8, 16, 32, 64)


def bucket_rounds(log: list) -> list[dict]:
    """Adaptive rounds grouped by nodes verified (upper bounds ``BUCKETS``): forecasts vs measurements."""
    groups: dict[int, list] = defaultdict(list)
    for entry in log:
        groups[next((b for b in BUCKETS if entry.nodes <= b), BUCKETS[-1])].append(entry)
    rows = []
    for bound in sorted(groups):
        entries = groups[bound]
        rows.append(
            {
                "nodes_up_to": bound,
                "rounds": len(entries),
                "mean_nodes": statistics.mean(e.nodes for e in entries),
                "mean_levels": statistics.mean(e.levels for e in entries),
                "expected_accepted": statistics.mean(e.expected_accepted for e in entries),
                "accepted": statistics.mean(e.accepted for e in entries),
                "predicted_verify_ms": 1000 * statistics.median(e.predicted_verify_s for e in entries),
                "verify_ms": 1000 * statistics.median(e.verify_s for e in entries),
                "draft_ms": 1000 * statistics.median(e.draft_s for e in entries),
            }
        )
    return rows


def rule_prices(rule) -> dict:
    """What an adaptive rule prices a tree by at the end of the run: verify(n), its calibration per depth,
    and a level's seconds by width (a rule that shrinks trees for a bad price shows it here)."""
    meter = rule.policy.meter
    sizes = (1, 2, 3, 4, 5, 6, 8, 12, 16)
    return {
        "verify_ms": {n: 1000 * meter.verify(n) for n in sizes} if meter.known else {},
        "scale_by_depth": {d: rule.budget.scale_at(d) for d in range(1, 8)},
        "level_ms": {w: 1000 * rule.level_seconds(w) for w in range(1, rule.top_k + 1)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="qwen2.5-coder-1.5b")
    parser.add_argument("--eagle-head", required=True)
    parser.add_argument("--dtype", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--kernels", default="default", choices=sorted(KERNELS))
    parser.add_argument("--questions", default="heldout")
    parser.add_argument("--per-category", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--methods", nargs="+", required=True, help="eagle2 methods (one learner per adaptive one)")
    parser.add_argument("--out", help="write the summary as JSON here too")
    args = parser.parse_args(argv)

    from transformers import AutoTokenizer

    from svip.adapters.eagle import EagleMethod
    from svip.adapters.eagle.generator import EagleGenerator
    from svip.eval.datasets import load_questions, per_category
    from svip.eval.prompts import encode_prompt

    from .export import eagle_base

    base = eagle_base(args.target)
    generator = EagleGenerator(base, args.eagle_head, dtype=args.dtype, kernels=args.kernels)
    tokenizer = AutoTokenizer.from_pretrained(base)
    methods = [EagleMethod.parse(m) for m in args.methods]
    questions = per_category(load_questions(args.questions), args.per_category, shortest=True)
    prompts = [encode_prompt(tokenizer, q.turns[0]) for q in questions]
    for method in methods:  # warm-up: first calls, and the adaptive rule's cost curve (measured once), stay out
        generator.generate(prompts[0], method, max_new_tokens=8)
    totals = {m.spec: defaultdict(float) for m in methods}
    for rule in generator.adaptive_rules.values():
        rule.log.clear()
    for index, prompt in enumerate(prompts):
        for method in methods:
            result = generator.generate(prompt, method, max_new_tokens=args.max_new_tokens)
            total = totals[method.spec]
            rounds = result.rounds[1:]  # the first round is the prefill
            total["tokens"] += len(result.tokens)
            total["seconds"] += result.wall_time
            total["rounds"] += len(rounds)
            total["nodes"] += sum(generator.sizes)
            total["levels"] += sum(generator.levels)
            total["trees"] += len(generator.sizes)
            total["draft_s"] += sum(r.draft_time for r in rounds)
            total["verify_s"] += sum(r.verify_time for r in rounds)
            total["accepted"] += sum(r.accepted for r in rounds)
        print(f"[tree-log] {index + 1}/{len(prompts)} {questions[index].question_id}", flush=True)
    summary = {"target": args.target, "head": args.eagle_head, "dtype": args.dtype, "questions": args.questions,
               "prompts": len(prompts), "max_new_tokens": args.max_new_tokens, "methods": {}}  # fmt: skip
    print(f"\n{'method':<48} {'tok/s':>6} {'tok/rnd':>7} {'nodes':>6} {'levels':>6} {'draft ms':>8} {'verify ms':>9}")
    for method in methods:
        t = totals[method.spec]
        row = {
            "tokens_per_s": t["tokens"] / t["seconds"],
            "tokens_per_round": (t["accepted"] + t["rounds"]) / t["rounds"],
            "nodes_per_tree": t["nodes"] / t["trees"],
            "levels_per_tree": t["levels"] / t["trees"],
            "draft_ms_per_round": 1000 * t["draft_s"] / t["rounds"],
            "verify_ms_per_round": 1000 * t["verify_s"] / t["rounds"],
        }
        summary["methods"][method.spec] = row
        print(
            f"{method.spec:<48} {row['tokens_per_s']:6.2f} {row['tokens_per_round']:7.2f} {row['nodes_per_tree']:6.1f} "
            f"{row['levels_per_tree']:6.2f} {row['draft_ms_per_round']:8.1f} {row['verify_ms_per_round']:9.1f}"
        )
    for spec, rule in generator.adaptive_rules.items():
        rows = bucket_rounds(rule.log)
        summary["methods"][spec]["by_size"] = rows
        scale = rule.budget.scale()
        print(f"\n{spec}: rounds by nodes verified (calibration scale now {scale:.2f})")
        print(f"{'nodes<=':>7} {'rounds':>6} {'nodes':>6} {'levels':>6} {'E[acc]':>7} {'acc':>6} "
              f"{'pred verify ms':>14} {'verify ms':>9} {'draft ms':>8}")  # fmt: skip
        for r in rows:
            print(
                f"{r['nodes_up_to']:>7} {r['rounds']:>6} {r['mean_nodes']:6.1f} {r['mean_levels']:6.2f} "
                f"{r['expected_accepted']:7.2f} {r['accepted']:6.2f} {r['predicted_verify_ms']:14.1f} "
                f"{r['verify_ms']:9.1f} {r['draft_ms']:8.1f}"
            )
        prices = rule_prices(rule)
        summary["methods"][spec]["prices"] = prices
        print("prices now: verify(n) ms " + " ".join(f"{n}:{ms:.1f}" for n, ms in prices["verify_ms"].items()))
        print("  calibration by depth " + " ".join(f"{d}:{s:.2f}" for d, s in prices["scale_by_depth"].items()))
        print("  a level of width w, ms " + " ".join(f"{w}:{ms:.1f}" for w, ms in prices["level_ms"].items()))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
