"""llama-server under concurrency: N slots, N clients, every method on the same questions.

A single-request benchmark says nothing about a server: with several slots
busy, the target verifies every slot's draft in one batch and the drafter
drafts all slots together, so a rule that pays alone may not pay shared.
This runs each method as a closed loop of ``clients`` threads over the same
question queue against one server with ``slots`` slots, methods interleaved
over ``repeats`` passes, and reports aggregate tokens per second and the
median and p90 request latency per method, beside the target-only server's.

``python -m svip.eval.llamacpp_slots --target qwen2.5-coder-1.5b --draft qwen2.5-coder-0.5b --slots 4``
(``make llamacpp-slots``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Callable

from svip.adapters.llamacpp.costs import measure_cost_curve
from svip.adapters.llamacpp.gguf import gguf_for
from svip.adapters.llamacpp.kind import CONTEXT
from svip.adapters.llamacpp.method import LlamaCppMethod, LlamaCppSpec
from svip.adapters.llamacpp.server import LlamaServer, ServerConfig
from svip.adapters.llamacpp.speed import start_checked
from svip.adapters.llamacpp.upstream import build_dir
from svip.grammar import parse_method
from svip.method import check_request
from svip.sampling import SamplingConfig

from .datasets import load_questions, per_category
from .loading import load_tokenizer
from .machine import describe, machine_info
from .prompts import encode_prompt

__all__ = ["main", "run_method", "server_picker"]

DEFAULT_METHODS = ("llamacpp", "llamacpp+constant:k=3", "llamacpp+svip", "llamacpp+svip-adaptive")


def _completion(method: LlamaCppMethod, prompt: list[int], max_new_tokens: int) -> tuple[int, float]:
    """One request, exactly as the bench harness sends it (``LlamaCppMethod.payload``, greedy): (tokens, seconds)."""
    payload = method.payload(check_request(prompt, max_new_tokens))
    start = time.perf_counter()
    answer = method.server.post("/completion", payload)
    return int(answer["timings"]["predicted_n"]), time.perf_counter() - start


def run_method(server: LlamaServer, method: str, prompts: list[list[int]], clients: int, max_new_tokens: int) -> dict:
    """Every prompt once through ``clients`` concurrent clients: aggregate tokens/s and latencies."""
    runner = LlamaCppMethod(server, LlamaCppSpec.from_spec(parse_method(method)), SamplingConfig(), CONTEXT)
    lock, tokens, latencies = threading.Lock(), [0], []

    def one(prompt: list[int]) -> None:
        count, seconds = _completion(runner, prompt, max_new_tokens)
        with lock:
            tokens[0] += count
            latencies.append(seconds)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, prompts))
    elapsed = time.perf_counter() - start
    return {"method": method, "tokens": tokens[0], "seconds": elapsed, "latencies": latencies}


def _summary(rows: list[dict], baseline: str) -> str:
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    base = statistics.median(r["tokens"] / r["seconds"] for r in by_method[baseline])
    lines = [f"{'method':<44} {'tok/s':>7} {'vs target-only':>14} {'latency p50':>11} {'p90':>7}"]
    for method, runs in by_method.items():
        rate = statistics.median(r["tokens"] / r["seconds"] for r in runs)
        latencies = sorted(s for r in runs for s in r["latencies"])
        p90 = latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))]
        lines.append(
            f"{method:<44} {rate:7.2f} {rate / base:13.2f}x {statistics.median(latencies):10.1f}s {p90:6.1f}s"
        )
    return "\n".join(lines)


def server_picker(
    stack: ExitStack, config: ServerConfig, draft: str, gguf: str, *, curve: dict | None = None, label: str = ""
) -> Callable[[LlamaCppSpec], LlamaServer]:
    """Started on first use, one per role: the target-only server, and a speculative one per (draft type, server
    flags) the methods name (``llamacpp:draft=q4_0,window=256+svip``); ``stack`` stops them.

    With llama-bench's ``curve`` (and a draft type it prices), a server that decodes slower than the curve predicts is
    started again (``speed.start_at_speed``); its checks are printed and kept in ``curve["servers"]``.
    """
    servers: dict[tuple[str, tuple[str, ...]] | None, LlamaServer] = {}

    def server_for(spec: LlamaCppSpec) -> LlamaServer:
        key = (spec.draft_gguf or gguf, spec.server_args()) if spec.drafts else None
        if key not in servers:
            role = (
                config
                if key is None
                else replace(config, draft=gguf_for(draft, key[0]), extra_args=config.extra_args + key[1])
            )
            draft_gguf, args = key if key is not None else (None, ())
            started = start_checked(
                lambda: LlamaServer(role).start(), curve, gguf, draft_gguf, args, label=label, prefix="llama.cpp"
            )
            servers[key] = stack.enter_context(started)
        return servers[key]

    return server_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="qwen2.5-coder-1.5b")
    parser.add_argument("--draft", default="qwen2.5-coder-0.5b")
    parser.add_argument("--gguf", default="bf16", help="weight type of both GGUF files (bf16, q8_0, f32, f16)")
    parser.add_argument("--questions", default="spec-bench")
    parser.add_argument("--per-category", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--clients", type=int, default=None, help="concurrent clients (default: --slots)")
    parser.add_argument("--repeats", type=int, default=2, help="passes over all methods (interleaved)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--llamacpp-bin", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write every pass's rows as JSON lines here")
    args = parser.parse_args(argv)
    clients = args.clients or args.slots
    specs = {method: LlamaCppSpec.from_spec(parse_method(method)) for method in args.methods}  # fail before starting
    tokenizer = load_tokenizer(args.target)
    questions = per_category(load_questions(args.questions), args.per_category)
    prompts = [encode_prompt(tokenizer, q.turns[0]) for q in questions]
    binary = (args.llamacpp_bin or build_dir() / "bin") / "llama-server"
    target, draft = gguf_for(args.target, args.gguf), gguf_for(args.draft, args.gguf)
    common = {"binary": binary, "model": target, "threads": args.threads, "parallel": args.slots}
    curve = measure_cost_curve(binary.with_name("llama-bench"), target, draft, threads=args.threads)
    print(f"[slots] llama.cpp {describe(machine_info(), curve)}")
    rows: list[dict] = []
    with ExitStack() as stack:
        server_for = server_picker(stack, ServerConfig(**common), args.draft, args.gguf, curve=curve)
        print(f"[slots] {len(prompts)} prompts, {args.slots} slots, {clients} clients, {args.gguf} GGUF")
        for _ in range(args.repeats):
            for method in args.methods:
                server = server_for(specs[method])  # started before the clock of its first pass starts
                row = run_method(server, method, prompts, clients, args.max_new_tokens)
                rows.append(row)
                print(f"[slots] {method}: {row['tokens'] / row['seconds']:.2f} tok/s", file=sys.stderr)
    if args.out:
        header = {"machine": machine_info(), "cost_curve": curve, "slots": args.slots, "clients": clients}
        args.out.write_text("".join(json.dumps(r) + "\n" for r in [header, *rows]))
    print(_summary(rows, args.methods[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
