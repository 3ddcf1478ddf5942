"""Is llama.cpp's target-only a fair baseline? Its draft-less server against the same target in other configurations.

The harness compares every llama.cpp rule with llama.cpp's own target-only, so a target-only server that runs slower
than it could inflates every speedup. Upstream's draft-less ``llama-server`` reserves its graphs for one output per
sequence; a speculative server reserves ``n_max + 1``. On SmolLM2-135M f32 the draft-less server decodes 11-14%
slower than the same target with the speculative reservation (AMD Zen 5, patched and unpatched builds alike), on
Qwen2.5-Coder-1.5B bf16 no slower. The harness therefore starts its target-only server with the speculative
reservation and no draft (``ServerConfig.reserve_draft_outputs``). This measures the three ways interleaved:

- ``upstream draft-less``: the target-only server as upstream's defaults start it (one output reserved);
- ``draft-less, n_max + 1 reserved``: the harness's target-only server;
- ``speculative, never drafts`` (with ``--draft``): a speculative server whose calibrated ``svip-adaptive`` rule
  finds drafting does not pay (a draft about as dear as the target) and decodes target-only.

``python -m svip.eval.llamacpp_baseline --target T.gguf [--draft D.gguf] [--repeats 8] [--tokens 96]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from svip.adapters.llamacpp.server import LlamaServer, LlamaServerError, ServerConfig
from svip.adapters.llamacpp.upstream import binary as built_binary

from .machine import describe, machine_info

__all__ = ["main", "measure"]

PROMPT = "Write a long story about a dragon who learns to code."
NEVER_DRAFTS = {"speculative.n_max": 40, "speculative.svip_adaptive": True, "speculative.svip_gamma": 0.15}


def _ask(server: LlamaServer, fields: dict, tokens: int) -> tuple[float, float, int]:
    """One greedy request of exactly ``tokens`` tokens: (llama.cpp's ms per token, wall ms, tokens drafted)."""
    payload = {
        "prompt": PROMPT,
        "n_predict": tokens,
        "temperature": 0.0,
        "top_k": 1,
        "cache_prompt": False,
        "ignore_eos": True,
        **fields,
    }
    if fields:
        payload["speculative.rounds"] = True
    start = time.perf_counter()
    answer = server.post("/completion", payload)
    wall = 1e3 * (time.perf_counter() - start)
    drafted = sum(r.get("drafted", 0) for r in answer["timings"].get("draft_rounds", []))
    return answer["timings"]["predicted_per_token_ms"], wall, drafted


def measure(binary: Path, target: Path, draft: Path | None, repeats: int, tokens: int, threads: int) -> dict:
    """Every configuration once per pass, ``repeats`` passes: medians per configuration."""
    configs = {
        "upstream draft-less": (ServerConfig(binary, target, threads=threads, reserve_draft_outputs=False), {}),
        "draft-less, n_max + 1 reserved": (ServerConfig(binary, target, threads=threads), {}),
    }
    if draft is not None:
        configs["speculative, never drafts"] = (
            ServerConfig(binary, target, draft=draft, threads=threads, extra_args=("--spec-draft-svip-calibrate",)),
            NEVER_DRAFTS,
        )
    with ExitStack() as stack:
        servers = {
            name: (stack.enter_context(LlamaServer(config).start()), fields)
            for name, (config, fields) in configs.items()
        }
        samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in servers}
        for i in range(repeats):
            for name, (server, fields) in servers.items():
                samples[name].append(_ask(server, fields, tokens))
            print(f"pass {i + 1}/{repeats} done", file=sys.stderr, flush=True)
    return {
        name: {
            "ms_per_token": statistics.median(s[0] for s in rows),
            "wall_ms": statistics.median(s[1] for s in rows),
            "drafted": sum(s[2] for s in rows),
        }
        for name, rows in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m svip.eval.llamacpp_baseline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--target", type=Path, required=True, help="the target's GGUF file")
    parser.add_argument("--draft", type=Path, help="a draft GGUF: adds a speculative server that never drafts")
    parser.add_argument(
        "--bin", type=Path, default=None, help="llama-server's folder (default: make llamacpp-setup's)"
    )
    parser.add_argument("--repeats", type=int, default=8, help="interleaved passes (medians are reported)")
    parser.add_argument("--tokens", type=int, default=96, help="tokens per request")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    for path in (args.target, args.draft):
        if path is not None and not path.exists():
            parser.error(f"no such GGUF file: {path}")
    if args.repeats < 1 or args.tokens < 1:
        parser.error("--repeats and --tokens must be at least 1")
    try:
        binary = args.bin / "llama-server" if args.bin else built_binary("llama-server")
        results = measure(binary, args.target, args.draft, args.repeats, args.tokens, args.threads)
    except (LlamaServerError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(describe(machine_info()))
    base = results["upstream draft-less"]["wall_ms"]
    for name, r in results.items():
        print(
            f"{name:32s} {r['ms_per_token']:7.2f} ms/token  wall {r['wall_ms']:8.1f} ms  "
            f"{base / r['wall_ms']:.3f}x of upstream draft-less  drafted {r['drafted']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
