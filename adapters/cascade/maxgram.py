"""Max-Gram: CS Drafting's statistical bottom drafter (no neural network, free in the cost model).

The next ``n`` tokens after a context come one chunk at a time, each chunk
from the first source that has something to say about the current suffix:

1. the *prompt*: the longest suffix of the context that also occurs in the
   prompt (with a token after it); copy what followed it there;
2. the *generated text* (answer so far plus this proposal's own chunks):
   the same, for an occurrence that ends before the context's last token;
3. the *bigram table*: the last token's most frequent successor (one token).

After each chunk the suffix is matched again, so a copy that runs into the
end of the prompt continues from another match, and a bigram step can
start a new one. Upstream (lfsszd/CS-Drafting, ``mag.py``) does the same in
one pass: a match in prompt + answer, a second match in the extended text,
then bigrams for the rest. Two deliberate differences: among equally long
matches the *latest* occurrence wins (upstream: the earliest), since recent
text predicts best, and a suffix is matched up to ``max_ngram`` tokens.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["MaxGram", "longest_suffix_match"]


def longest_suffix_match(sequence: np.ndarray, lo: int, hi: int, max_ngram: int) -> int | None:
    """The end ``e`` in ``[lo, hi]`` where the longest suffix of ``sequence`` re-occurs (latest on ties).

    ``e`` is the position holding a copy of the last token; the match is
    extended backwards from there, token by token, all candidates at once.
    ``hi`` must leave room for a continuation (``hi <= len(sequence) - 2``).
    """
    if hi < lo or len(sequence) < 2:
        return None
    ends = lo + np.flatnonzero(sequence[lo : hi + 1] == sequence[-1])
    length = 1
    while ends.size and length < max_ngram and length < len(sequence) - 1:
        longer = ends[ends >= length]
        longer = longer[sequence[longer - length] == sequence[-1 - length]]
        if not longer.size:
            break
        ends, length = longer, length + 1
    return int(ends.max()) if ends.size else None


class MaxGram:
    """Deterministic proposals from the prompt, the generated text and a bigram table."""

    def __init__(self, bigram: np.ndarray, max_ngram: int = 32) -> None:
        if max_ngram < 1:
            raise ValueError(f"max_ngram must be >= 1, got {max_ngram}")
        self.bigram = np.asarray(bigram, dtype=np.int64)
        self.max_ngram = max_ngram

    def propose(self, prompt: Sequence[int], context: Sequence[int], n: int) -> list[int]:
        """``n`` tokens to follow ``context``, whose first ``len(prompt)`` tokens are the prompt."""
        extended = [int(t) for t in context]
        prompt_length = len(prompt)
        tokens: list[int] = []
        while len(tokens) < n:
            want = n - len(tokens)
            sequence = np.asarray(extended, dtype=np.int64)
            end = longest_suffix_match(sequence, 0, prompt_length - 2, self.max_ngram)
            if end is not None:  # copy from the prompt, up to its end
                chunk = extended[end + 1 : min(end + 1 + want, prompt_length)]
            elif (end := longest_suffix_match(sequence, prompt_length, len(extended) - 2, self.max_ngram)) is not None:
                chunk = extended[end + 1 : end + 1 + want]  # copy from the answer so far
            else:
                chunk = [int(self.bigram[extended[-1]])]
            tokens.extend(chunk)
            extended.extend(chunk)
        return tokens
