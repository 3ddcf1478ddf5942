"""vLLM at batch 1, 4 and 16: every method on the same questions, submitted together, interleaved.

Whether a per-request stop pays with several requests in flight is an open
question: the target verifies every request's draft in one forward and the
drafter drafts all of them together, so ragged drafts cost padding and a
rule that pays alone may not pay shared. For each batch size B this splits
the questions into groups of B, submits each group at once to the same
engines (``max_num_seqs`` = the largest B), and reports per method: tokens
per second over the run (all tokens / all group wall time), the ratio to
vLLM's own target-only at that B, per-request latency (vLLM's queued ->
last token) p50/p90, acceptance, drafted and verified tokens per request.
Methods and batch sizes are interleaved over ``--repeats`` passes; every
group's row is appended to ``--out`` as it finishes, and a rerun skips the
rows already there (a crash loses nothing finished).

Run it in vLLM's venv: ``make vllm-batch`` (``third_party/vllm-venv/bin/python -m svip.eval.vllm_batch``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from svip.adapters.kinds import TARGET_ONLY
from svip.adapters.registry import parse
from svip.adapters.vllm.kind import engine_for, load_vllm_models, measure_verify_curve
from svip.method import check_request
from svip.sampling import SamplingConfig

from .datasets import load_questions, per_category
from .loading import ModelRequest  # the harness's loading: registers the zoo's names
from .machine import describe, machine_info
from .prompts import encode_prompt, stop_token_ids

__all__ = ["main", "summary"]

DEFAULT_METHODS = (
    TARGET_ONLY, "vllm:k=3", "vllm+constant:k=2", "vllm+constant:k=3", "vllm+constant:k=5", "vllm+svip",
    "vllm+svip-adaptive",
)  # fmt: skip


def _done(out: Path) -> set[tuple]:
    """The (repeat, batch, method, group) rows already written: a rerun skips them."""
    if not out.exists():
        return set()
    return {(r["repeat"], r["batch"], r["method"], r["group"]) for r in _rows(out)[1]}


def _rows(out: Path) -> tuple[dict | None, list[dict]]:
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    header = next((r for r in rows if "machine" in r), None)
    return header, [r for r in rows if "method" in r]


def summary(rows: list[dict]) -> str:
    """One table per batch size: tok/s, vs target-only, latency p50/p90, acceptance, drafted/verified per request."""
    lines = []
    for batch in sorted({r["batch"] for r in rows}):
        at = [r for r in rows if r["batch"] == batch]
        by_method: dict[str, list[dict]] = {}
        for row in at:
            by_method.setdefault(row["method"], []).append(row)

        def rate(runs: list[dict]) -> float:
            return sum(r["tokens"] for r in runs) / sum(r["seconds"] for r in runs)

        base = rate(by_method[TARGET_ONLY]) if TARGET_ONLY in by_method else None
        reference = {(r["repeat"], r["group"]): r["answers"] for r in by_method.get(TARGET_ONLY, [])}

        def identical(runs: list[dict]) -> str:
            """Answers token-identical to target-only's at this batch size (bf16: up to the target's near-ties)."""
            pairs = [
                (got, want)
                for r in runs
                for got, want in zip(r["answers"], reference.get((r["repeat"], r["group"]), []))
            ]
            return f"{sum(g == w for g, w in pairs)}/{len(pairs)}" if pairs else "-"

        lines += [
            f"batch {batch}:",
            f"  {'method':<44} {'tok/s':>7} {'vs t-o':>7} {'lat p50':>8} {'p90':>6} {'accept':>7} "
            f"{'drafted/req':>11} {'verified/req':>12} {'identical':>9}",
        ]
        for method, runs in by_method.items():
            latencies = sorted(x for r in runs for x in r["latencies"])
            p90 = latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))]
            drafted = [x for r in runs for x in r["drafted"]]
            accepted = sum(x for r in runs for x in r["accepted"])
            verified = [x for r in runs for x in r["verified"]]
            accept = f"{accepted / sum(drafted):.1%}" if sum(drafted) else "-"
            ratio = f"{rate(runs) / base:6.2f}x" if base else "     -"
            lines.append(
                f"  {method:<44} {rate(runs):7.2f} {ratio} {statistics.median(latencies):7.1f}s {p90:5.1f}s "
                f"{accept:>7} {statistics.mean(drafted):11.1f} {statistics.mean(verified):12.1f} {identical(runs):>9}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="qwen2.5-coder-1.5b")
    parser.add_argument("--draft", default="qwen2.5-coder-0.5b")
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp32", "fp16"))
    parser.add_argument("--questions", default="spec-bench", help="built-in set or question file")
    parser.add_argument("--per-category", type=int, default=3, help="questions per category (default 3)")
    parser.add_argument("--shortest", action="store_true", help="the shortest questions of each category")
    parser.add_argument("--count", type=int, default=16, help="of those, the first N (default 16: one group at B=16)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batches", default="1,4,16", help="batch sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="passes over every (batch, method), interleaved")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--max-draft", type=int, default=8, help="K of the plugin's engine (every rule's cap)")
    parser.add_argument("--min-open", default="0.5", help="the plugin's batch stop (share of rows still drafting)")
    parser.add_argument("--eager", choices=("0", "1"), default="1", help="1: no torch.compile/CUDA graphs (CPU); 0: a GPU")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines: a header, then one row per group")
    parser.add_argument("--report", action="store_true", help="print the tables of --out and exit")
    args = parser.parse_args(argv)
    if args.report:
        header, rows = _rows(args.out)
        print(describe(header["machine"], header["cost_curve"]) if header else "")
        print(summary(rows))
        return 0
    batches = [int(b) for b in args.batches.split(",")]
    if min(batches) < 1:
        parser.error("--batches must be positive integers")
    methods = [parse(m) for m in args.methods]  # a bad method fails here, before any engine starts
    bad = [m.text for m in methods if m.kind.name != "vllm" and m.text != TARGET_ONLY]
    if bad:
        parser.error(f"vllm_batch runs target-only and vllm methods only, got {', '.join(bad)}")
    request = ModelRequest(
        target=args.target, draft=args.draft, dtype=args.dtype,
        options={"vllm_max_draft": str(args.max_draft), "vllm_max_batch": str(max(batches)), "vllm_eager": args.eager,
                 "vllm_min_open": args.min_open},
    )  # fmt: skip
    models = load_vllm_models(request, SamplingConfig())
    questions = per_category(load_questions(args.questions), args.per_category, shortest=args.shortest)[: args.count]
    stops = frozenset(stop_token_ids(models.tokenizer))
    requests = [
        check_request(encode_prompt(models.tokenizer, q.turns[0]), args.max_new_tokens, stop_tokens=stops)
        for q in questions
    ]
    done = _done(args.out)
    with models:
        if not args.out.exists():
            curve = measure_verify_curve(engine_for(models, None), list(requests[0].prompt))
            header = {"machine": machine_info(), "cost_curve": curve, "batches": batches, "questions": len(requests)}
            args.out.write_text(json.dumps(header) + "\n")
        header, _ = _rows(args.out)
        print(f"[vllm-batch] {describe(header['machine'], header['cost_curve'])}", file=sys.stderr)
        runners = {m.text: (models.target_only() if m.text == TARGET_ONLY else m.kind.build(m.spec, models)) for m in methods}
        for repeat in range(args.repeats):
            for batch in batches:
                groups = [requests[i : i + batch] for i in range(0, len(requests), batch)]
                for method, runner in runners.items():
                    for g, group in enumerate(groups):
                        if (repeat, batch, method, g) in done:
                            continue
                        start = time.perf_counter()
                        results = runner.batch(group)
                        seconds = time.perf_counter() - start
                        row = {
                            "repeat": repeat, "batch": batch, "method": method, "group": g, "seconds": seconds,
                            "tokens": sum(len(d.tokens) for d, _ in results),
                            "latencies": [latency for _, latency in results],
                            "drafted": [sum(r.drafted for r in d.rounds) for d, _ in results],
                            "accepted": [sum(r.accepted for r in d.rounds) for d, _ in results],
                            "verified": [sum(r.drafted + 1 for r in d.rounds) for d, _ in results],
                            "answers": [d.tokens for d, _ in results],
                        }  # fmt: skip
                        with args.out.open("a") as handle:
                            handle.write(json.dumps(row) + "\n")
                        print(f"[vllm-batch] B={batch} {method} group {g}: {row['tokens'] / seconds:.2f} tok/s", file=sys.stderr)
    print(summary(_rows(args.out)[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
