"""Max-Gram: CS Drafting's statistical bottom drafter (no neural network, no cost model-wise).

Proposal for the next ``n`` tokens after ``context``: find the longest
suffix of the context that occurs earlier in the *prompt* and copy what
followed it there; failing that, the same in the *generated* text; then
(and to fill up) follow a bigram table: each token's most frequent successor.

The bigram table is counted from text that every Python installation has:
the standard library's own source files (docstrings, comments and code --
English prose and code, like the benchmark prompts), tokenized with the
target's tokenizer. No hub, no eval data. It is cached per tokenizer under
``$SVIP_HOME/bigram``.
"""

from __future__ import annotations

import hashlib
import json
import sysconfig
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["MaxGram", "bigram_table", "stdlib_text"]


def stdlib_text(limit_bytes: int = 4_000_000) -> str:
    """The top-level ``.py`` files of this Python's standard library, in name order, up to ``limit_bytes``."""
    parts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        parts.append(text)
        size += len(text)
        if size >= limit_bytes:
            break
    return "\n".join(parts)


def bigram_table(token_ids: Sequence[int], vocab_size: int) -> np.ndarray:
    """``table[t]`` = the most frequent successor of ``t`` (ties: smallest id); unseen tokens map to the most frequent token."""
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.size < 2:
        raise ValueError("need at least two tokens to count bigrams")
    pairs, counts = np.unique(ids[:-1] * vocab_size + ids[1:], return_counts=True)
    first, second = pairs // vocab_size, pairs % vocab_size
    order = np.lexsort((second, -counts, first))  # per first token: highest count, then smallest successor
    first, second = first[order], second[order]
    leaders = np.ones(len(first), dtype=bool)
    leaders[1:] = first[1:] != first[:-1]
    table = np.full(vocab_size, np.bincount(ids, minlength=vocab_size).argmax(), dtype=np.int64)
    table[first[leaders]] = second[leaders]
    return table


def cached_bigram_table(tokenizer, vocab_size: int, cache_dir: Path | None = None) -> np.ndarray:
    """The stdlib bigram table for ``tokenizer``, counted once and cached by vocabulary hash."""
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    key = hashlib.sha256(f"{vocab}|{vocab_size}".encode()).hexdigest()[:16]
    if cache_dir is None:
        from svip.eval.models import cache_root

        cache_dir = cache_root() / "bigram"
    path = Path(cache_dir) / f"stdlib-{key}.npy"
    if path.exists():
        return np.load(path)
    table = bigram_table(tokenizer(stdlib_text(), add_special_tokens=False)["input_ids"], vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".partial.npy")
    np.save(staging, table)
    staging.rename(path)
    return table


class MaxGram:
    """Deterministic proposals from the prompt, the generated text and a bigram table."""

    def __init__(self, bigram: np.ndarray, max_ngram: int = 32) -> None:
        self.bigram = bigram
        self.max_ngram = max_ngram

    @staticmethod
    def _continuation(haystack: Sequence[int], context: Sequence[int], n: int, max_ngram: int) -> list[int]:
        """Tokens after the occurrence of the longest context suffix (up to ``max_ngram``) in ``haystack``.

        Ends of matches are the positions holding the context's last token
        (with something after them); each is extended backwards. The latest
        occurrence wins a tie: recent text predicts best.
        """
        last = context[-1]
        best_end, best_length = -1, 0
        for end in range(len(haystack) - 2, -1, -1):
            if haystack[end] != last:
                continue
            length = 1
            while length < max_ngram and length <= end and length < len(context) and haystack[end - length] == context[-1 - length]:
                length += 1
            if length > best_length:
                best_end, best_length = end, length
        return list(haystack[best_end + 1 : best_end + 1 + n]) if best_end >= 0 else []

    def propose(self, prompt: Sequence[int], context: Sequence[int], n: int) -> list[int]:
        """``n`` tokens to follow ``context`` (which starts with ``prompt``)."""
        generated = context[len(prompt) :]
        tokens = self._continuation(prompt, context, n, self.max_ngram)
        if not tokens:
            # in the generated text, the match must end before the context's own suffix
            tokens = self._continuation(generated[:-1], context, n, self.max_ngram) if len(generated) > 1 else []
        last = tokens[-1] if tokens else context[-1]
        while len(tokens) < n:
            last = int(self.bigram[last])
            tokens.append(last)
        return [int(t) for t in tokens[:n]]
