"""Two llama.cpp builds, the same methods, one interleaved run: did a change to the patch make a rule faster?

``svip bench`` runs every method on one build, and times from two runs are never compared. A change to the C++
rule is judged here instead: each question is asked of llama.cpp's target-only server and of every method on both
builds (the build ``make llamacpp-setup`` made, and ``--other-bin``, e.g. a copy of the previous patch's
``llama-server``), back to back, in an order that rotates per question. It reports each (build, method)'s speedup
over the target-only server, overall and per category, and whether its tokens equal the target-only's.

``python -m svip.eval.llamacpp_builds --other-bin /tmp/llama-prev/bin --methods 'llamacpp:keep=1,calibrate=1+svip-adaptive'``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

from svip.adapters.llamacpp.costs import measure_cost_curve
from svip.adapters.llamacpp.gguf import gguf_for
from svip.adapters.llamacpp.kind import CONTEXT
from svip.adapters.llamacpp.method import LlamaCppMethod, LlamaCppSpec
from svip.adapters.llamacpp.server import ServerConfig
from svip.adapters.llamacpp.upstream import build_dir
from svip.grammar import parse_method
from svip.sampling import SamplingConfig

from .datasets import load_questions, per_category
from .llamacpp_slots import server_picker
from .loading import load_tokenizer
from .machine import describe, machine_info
from .prompts import encode_prompt

__all__ = ["main", "summarize"]

TARGET_ONLY = "llamacpp"


def _ask(method: LlamaCppMethod, prompt: list[int], max_new_tokens: int) -> tuple[list[int], float]:
    """One greedy request through the method's own ``generate``, as the bench harness asks it: (tokens, wall seconds)."""
    start = time.perf_counter()
    tokens = method.generate(prompt, max_new_tokens=max_new_tokens).tokens
    return list(tokens), time.perf_counter() - start


def summarize(rows: list[dict]) -> str:
    """Per (build, method): total target-only seconds over its seconds, overall and per category; token match."""
    base = {r["question"]: r for r in rows if r["label"] == TARGET_ONLY}
    seconds: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    same: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        if r["label"] == TARGET_ONLY or r["question"] not in base:
            continue
        reference = base[r["question"]]
        for key in ("all", r["category"]):
            seconds[r["label"]][key][0] += reference["seconds"]
            seconds[r["label"]][key][1] += r["seconds"]
        same[r["label"]].append(r["tokens"] == reference["tokens"])
    categories = sorted({r["category"] for r in rows})
    lines = [f"{'build / method':<64} {'all':>6} " + " ".join(f"{c[:8]:>8}" for c in categories) + "  same tokens"]
    for label, by in seconds.items():
        cells = " ".join(f"{by[c][0] / by[c][1]:8.2f}" if c in by else f"{'-':>8}" for c in categories)
        lines.append(f"{label:<64} {by['all'][0] / by['all'][1]:5.2f}x {cells}  {sum(same[label])}/{len(same[label])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m svip.eval.llamacpp_builds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--other-bin", type=Path, required=True, help="folder of the other build's llama-server")
    parser.add_argument("--methods", nargs="+", required=True, help="llamacpp method strings, run on both builds")
    parser.add_argument("--target", default="qwen2.5-coder-1.5b")
    parser.add_argument("--draft", default="qwen2.5-coder-0.5b")
    parser.add_argument("--gguf", default="bf16", help="weight type of both GGUF files (bf16, q8_0, f32, f16)")
    parser.add_argument("--questions", default="spec-bench")
    parser.add_argument("--per-category", type=int, default=2)
    parser.add_argument("--shortest", action="store_true", help="the shortest questions of each category")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="JSON lines; a rerun skips the requests it holds")
    args = parser.parse_args(argv)
    other = args.other_bin / "llama-server"
    this = build_dir() / "bin" / "llama-server"
    for binary in (this, other):
        if not binary.exists():
            parser.error(f"no llama-server at {binary} (make llamacpp-setup builds this tree's)")
    specs = {m: LlamaCppSpec.from_spec(parse_method(m)) for m in args.methods}  # fail before starting anything
    if any(not spec.drafts for spec in specs.values()):
        parser.error("--methods are the speculative ones; llama.cpp's target-only runs once, on this build")
    tokenizer = load_tokenizer(args.target)
    questions = per_category(load_questions(args.questions), args.per_category, shortest=args.shortest)
    target = gguf_for(args.target, args.gguf)
    curve = measure_cost_curve(
        this.with_name("llama-bench"), target, gguf_for(args.draft, args.gguf), threads=args.threads
    )
    print(f"[builds] llama.cpp {describe(machine_info(), curve)}")
    done = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out and args.out.exists() else []
    seen = {(r["question"], r["label"]) for r in done}
    rows = list(done)
    with ExitStack() as stack:
        servers = {
            build: server_picker(
                stack,
                ServerConfig(binary, target, threads=args.threads),
                args.draft,
                args.gguf,
                curve=curve,
                label=build,
            )
            for build, binary in (("this", this), ("other", other))
        }
        target_only = LlamaCppSpec.from_spec(parse_method(TARGET_ONLY))
        runners = {TARGET_ONLY: LlamaCppMethod(servers["this"](target_only), target_only, SamplingConfig(), CONTEXT)}
        for build in ("this", "other"):
            for method, spec in specs.items():
                runners[f"{build}: {method}"] = LlamaCppMethod(servers[build](spec), spec, SamplingConfig(), CONTEXT)
        labels = list(runners)
        for i, question in enumerate(questions):
            prompt = encode_prompt(tokenizer, question.turns[0], chat=not question.raw)
            for label in labels[i % len(labels) :] + labels[: i % len(labels)]:  # rotated: no label always first
                if (question.question_id, label) in seen:
                    continue
                tokens, seconds = _ask(runners[label], prompt, args.max_new_tokens)
                row = {
                    "question": question.question_id,
                    "category": question.group,
                    "label": label,
                    "tokens": tokens,
                    "seconds": seconds,
                }
                rows.append(row)
                if args.out:
                    with args.out.open("a") as out:
                        out.write(json.dumps(row) + "\n")
            print(f"[builds] question {i + 1}/{len(questions)} done", file=sys.stderr, flush=True)
    print(summarize(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
