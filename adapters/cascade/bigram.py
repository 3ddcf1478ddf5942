"""Max-Gram's last resort: a greedy bigram table (each token -> its most frequent successor).

Upstream CS Drafting ships a table counted on Wikipedia for the LLaMA
tokenizer (``bigram_models/wiki_bigram_naive_bayers_greedy_llama_next_token.json``,
the argmax successor per token). We need one per tokenizer and may not
download one, so the table is counted from text every Python installation
carries: the top-level ``.py`` files of the running interpreter's standard
library (docstrings, comments and code -- English prose and code, like the
benchmark prompts; never an evaluation set). It is counted once per
(tokenizer, text) pair and cached as ``$SVIP_HOME/bigram/stdlib-<key>.npy``.
"""

from __future__ import annotations

import hashlib
import json
import sysconfig
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["stdlib_text", "bigram_table", "cached_bigram_table"]


def stdlib_text(limit_chars: int = 4_000_000) -> str:
    """The top-level ``.py`` files of this Python's standard library, in name order, up to ``limit_chars``."""
    parts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        parts.append(text)
        size += len(text)
        if size >= limit_chars:
            break
    if not parts:
        raise FileNotFoundError(
            f"no standard-library sources under {sysconfig.get_paths()['stdlib']} to count bigrams from"
        )
    return "\n".join(parts)


def bigram_table(token_ids: Sequence[int], vocab_size: int) -> np.ndarray:
    """``table[t]`` = the most frequent successor of ``t`` (ties: smallest id).

    A token never seen with a successor maps to the corpus's most frequent
    token, so every lookup yields a proposal (Max-Gram always fills its quota).
    """
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.size < 2:
        raise ValueError("need at least two tokens to count bigrams")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size})")
    pairs, counts = np.unique(ids[:-1] * vocab_size + ids[1:], return_counts=True)
    first, second = pairs // vocab_size, pairs % vocab_size
    order = np.lexsort((second, -counts, first))  # per first token: highest count, then smallest successor
    first, second = first[order], second[order]
    leaders = np.ones(len(first), dtype=bool)
    leaders[1:] = first[1:] != first[:-1]
    table = np.full(vocab_size, np.bincount(ids, minlength=vocab_size).argmax(), dtype=np.int64)
    table[first[leaders]] = second[leaders]
    return table


def cached_bigram_table(
    tokenizer, vocab_size: int, cache_dir: Path | str | None, text: str | None = None
) -> np.ndarray:
    """The bigram table of ``text`` (default: ``stdlib_text()``) under ``tokenizer``, counted once per cache.

    The cache key hashes the vocabulary, ``vocab_size`` and the text itself,
    so another tokenizer or another Python's standard library never reuses
    a stale table. ``cache_dir=None`` counts without caching (the harness
    passes ``$SVIP_HOME/bigram``; adapters do not know about the harness).
    """
    text = stdlib_text() if text is None else text

    def count() -> np.ndarray:
        return bigram_table(tokenizer(text, add_special_tokens=False)["input_ids"], vocab_size)

    if cache_dir is None:
        return count()
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    key = hashlib.sha256(f"{vocab}|{vocab_size}|".encode() + hashlib.sha256(text.encode()).digest()).hexdigest()[:16]
    path = Path(cache_dir) / f"stdlib-{key}.npy"
    if path.exists():
        return np.load(path)
    table = count()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.stem + ".partial.npy")  # written whole, then renamed: no torn cache files
    np.save(staging, table)
    staging.replace(path)
    return table
