"""Run inside vLLM's venv by ``test_vllm_plugin.py``: every vLLM method's greedy tokens vs vLLM target-only.

Usage: ``third_party/vllm-venv/bin/python tests/vllm_lossless_check.py TARGET DRAFT OUT.json [--dtype float32]``.
For each batch size (1, then 8: ``max_num_seqs``, the prompts submitted
together) it starts three engines in turn -- target-only, vLLM's own fixed
K=3 (stock code path: the plugin is installed but not configured), the
plugin's engine (K=8) serving ``svip``, ``constant:k=3`` and
``svip-adaptive`` per request, and the plugin with uniform rounds -- and writes each method's token ids and
the plugin's per-request rounds to OUT.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys

PROMPTS = [
    "Write a Python function that checks whether a number is prime.",
    "Explain what a hash map is in two sentences.",
    "List three prime numbers and say why they are prime.",
    "def fibonacci(n):",
    "Translate to French: The weather is nice today.",
    "Summarize: Speculative decoding drafts tokens with a small model and verifies them with a large one.",
    "What is the capital of Australia?",
    "Solve for x: 3x + 7 = 22.",
    "Write a haiku about autumn leaves.",
    "Give two differences between TCP and UDP.",
    "class Stack:\n    def __init__(self):",
    "Name the planets of the solar system in order.",
    "What does the SQL keyword JOIN do?",
    "Explain recursion to a ten-year-old.",
    "Compute 17 * 23 step by step.",
    "Write a short email declining a meeting invitation.",
    "import numpy as np\n# compute the mean of each row of a matrix",
    "What is the boiling point of water at sea level in Fahrenheit?",
    "Describe the water cycle in three steps.",
    "Write a regular expression that matches an email address.",
    "Why is the sky blue?",
    "Suggest a name for a coffee shop run by robots.",
    "for i in range(10):",
    "What is the difference between a list and a tuple in Python?",
]
RULES = ["svip:h=0.3,gamma=0.15", "constant:k=3", "svip-adaptive"]


def run(target: str, draft: str, dtype: str, batch: int, max_tokens: int) -> dict:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from svip.adapters.vllm.engine import configure_environment

    configure_environment()
    results: dict = {}
    engines = [
        ("target-only", {}, [None]),
        ("vllm:k=3", {"speculative_config": {"method": "draft_model", "model": draft, "num_speculative_tokens": 3}}, [None]),
        (
            "plugin",
            {
                "speculative_config": {"method": "draft_model", "model": draft, "num_speculative_tokens": 8},
                "additional_config": {"svip": {}},
            },
            RULES,
        ),
        (
            "plugin-uniform",
            {
                "speculative_config": {"method": "draft_model", "model": draft, "num_speculative_tokens": 8},
                "additional_config": {"svip": {"uniform": True}},
            },
            ["svip:h=0.3,gamma=0.15"],
        ),
    ]
    for name, extra, rules in engines:
        llm = LLM(model=target, dtype=dtype, max_model_len=1024, max_num_seqs=batch, enforce_eager=True, seed=0, **extra)
        tokenizer = llm.get_tokenizer()
        prompts = [TokensPrompt(prompt_token_ids=tokenizer(p)["input_ids"]) for p in PROMPTS]
        for rule in rules:
            params = SamplingParams(
                temperature=0.0, max_tokens=max_tokens, ignore_eos=True, detokenize=False,
                extra_args={"svip_policy": rule} if rule else None,
            )  # fmt: skip
            outputs = llm.generate(prompts, params, use_tqdm=False)
            key = (f"vllm:uniform=1+{rule}" if name == "plugin-uniform" else f"vllm+{rule}") if rule else name
            results[key] = {"tokens": [list(o.outputs[0].token_ids) for o in outputs]}
            if rule:
                core = llm.llm_engine.engine_core
                rules_ = getattr(core, "engine_core", core).model_executor.driver_worker.worker.model_runner.drafter.svip_rules
                stats = [rules_.take(o.request_id) for o in outputs]
                results[key]["rounds"] = [s.as_dict() if s is not None else None for s in stats]
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("draft")
    parser.add_argument("out")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    found = {f"batch{b}": run(args.target, args.draft, args.dtype, b, args.max_tokens) for b in map(int, args.batches.split(","))}
    with open(args.out, "w") as handle:
        json.dump(found, handle)
    print("done", file=sys.stderr)
    os._exit(0)  # vLLM's background threads can hold the interpreter at exit


if __name__ == "__main__":
    main()
