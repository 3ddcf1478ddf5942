"""Helpers shared by test modules (imported as ``helpers``; fixtures stay in conftest)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Sequence

import torch


def tiny_llama(vocab_size: int = 64, seed: int = 0, layers: int = 2):
    """A random 2-layer Llama for mechanics tests only (never for quality claims)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=None,
        eos_token_id=None,  # no EOS: generate(min_new_tokens=...) would otherwise mask a token
        pad_token_id=None,
    )
    return LlamaForCausalLM(config).eval()


def spec_bench_ci_questions(per_category_count: int):
    """The shortest ``per_category_count`` Spec-Bench questions of each of the six categories.

    Why the shortest: on 2 CPU cores the real-weight lossless tests spend much of their time prefilling
    summarization/RAG prompts of 600-900 tokens, which exercise nothing a 200-token prompt does not
    (positions, cache crops and acceptance are per generated token); every category is still covered.
    """
    from svip.eval.datasets import load_questions, per_category

    questions = per_category(load_questions("spec-bench"), per_category_count, shortest=True)
    assert {q.group for q in questions} == {"mt-bench", "translation", "summarization", "qa", "math_reasoning", "rag"}
    return questions


def pristine_clone(checkout: Path, dest: Path, commit: str, sparse: Sequence[str]) -> Path:
    """An unpatched copy of a patched upstream checkout at its pin (for "the patch changes nothing" tests)."""
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(checkout), str(dest)], check=True)
    subprocess.run(["git", "sparse-checkout", "set", "--no-cone", *sparse], cwd=dest, check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=dest, check=True)
    return dest
