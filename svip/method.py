"""One interface for every speculative method: ``generate(prompt, ...) -> GenerationResult``.

Target-only decoding, the vanilla engine under any policy, transformers'
assisted generation, the cascade and EAGLE all subclass ``SpeculativeMethod``,
so the harness, the lossless checks and user code drive them alike. The base
owns what every method must agree on -- the request checks (one error type,
``InputError``), clipping at stop tokens and the token limit, ``stopped_by``,
and building the result -- and a subclass writes only ``_decode``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Collection, Sequence

from .results import GenerationResult, RoundStats

__all__ = [
    "Decoded",
    "GenerationRequest",
    "InputError",
    "SpeculativeMethod",
    "check_request",
    "clip",
    "finished",
    "stopped_by",
]


class InputError(ValueError):
    """A prompt or request a method cannot serve (raised before any decoding)."""


@dataclass(frozen=True)
class GenerationRequest:
    """A checked request: token ids, the limit, the stop set and the seed."""

    prompt: tuple[int, ...]
    max_new_tokens: int
    stop_tokens: frozenset[int]
    seed: int | None = None


@dataclass
class Decoded:
    """What ``_decode`` hands back: new tokens and rounds; ``excluded_seconds`` is diagnostics time left out of wall time."""

    tokens: list[int]
    rounds: list[RoundStats]
    excluded_seconds: float = 0.0


def check_request(
    prompt: Sequence[int],
    max_new_tokens: int,
    *,
    stop_tokens: Collection[int] = (),
    seed: int | None = None,
    vocab_size: int | None = None,
    context_length: int | None = None,
) -> GenerationRequest:
    """Refuse what no method can serve, with the reason; return the normalised request."""
    ids = tuple(int(t) for t in prompt)
    if not ids:
        raise InputError("empty prompt: give at least one token")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if vocab_size is not None and (min(ids) < 0 or max(ids) >= vocab_size):
        raise InputError(f"prompt holds token ids outside the vocabulary [0, {vocab_size})")
    if context_length is not None and len(ids) + max_new_tokens > context_length:
        raise InputError(
            f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"models' context of {context_length} tokens; shorten the prompt or lower max_new_tokens"
        )
    return GenerationRequest(ids, max_new_tokens, frozenset(int(t) for t in stop_tokens), seed)


def clip(tokens: Sequence[int], stop_tokens: Collection[int], limit: int) -> list[int]:
    """Cut after the first stop token and to at most ``limit`` tokens."""
    for i, token in enumerate(tokens[:limit]):
        if token in stop_tokens:
            return list(tokens[: i + 1])
    return list(tokens[:limit])


def finished(tokens: Sequence[int], stop_tokens: Collection[int], limit: int) -> bool:
    """Has a generation reached its limit or a stop token?"""
    return len(tokens) >= limit or (bool(tokens) and tokens[-1] in stop_tokens)


def stopped_by(tokens: Sequence[int], stop_tokens: Collection[int]) -> str:
    return "eos" if tokens and tokens[-1] in stop_tokens else "max_new_tokens"


class SpeculativeMethod(ABC):
    """A decoding method bound to its models; ``spec`` is its canonical method string.

    Subclasses set ``vocab_size`` / ``context_length`` (None: unchecked) and
    implement ``_decode``; ``generate`` checks the request, times the decode
    and builds the result.
    """

    spec: str = "method"
    vocab_size: int | None = None
    context_length: int | None = None

    def generate(
        self,
        prompt: Sequence[int],
        *,
        max_new_tokens: int = 128,
        stop_tokens: Collection[int] = (),
        seed: int | None = None,
        reference: Sequence[int] | None = None,
    ) -> GenerationResult:
        """Decode up to ``max_new_tokens`` after ``prompt`` (token ids), stopping after a stop token.

        ``seed`` makes sampling reproducible; ``reference`` (the target's
        greedy output for this prompt) is used by the evaluation-only oracle
        and ignored by everything else.
        """
        request = check_request(
            prompt,
            max_new_tokens,
            stop_tokens=stop_tokens,
            seed=seed,
            vocab_size=self.vocab_size,
            context_length=self.context_length,
        )
        start = time.perf_counter()
        decoded = self._decode(request, reference)
        wall_time = time.perf_counter() - start - decoded.excluded_seconds
        return GenerationResult(
            len(request.prompt),
            decoded.tokens,
            decoded.rounds,
            wall_time,
            self.spec,
            stopped_by(decoded.tokens, request.stop_tokens),
        )

    @abstractmethod
    def _decode(self, request: GenerationRequest, reference: Sequence[int] | None) -> Decoded:
        """Produce the new tokens and the rounds for a checked request."""


class BoundDecode(SpeculativeMethod):
    """A method made from a decode function: for calls that bring an already built policy object
    (``SpeculativeEngine.generate(policy=...)``, ``AssistedGenerator.generate(policy=...)``)."""

    def __init__(
        self,
        spec: str,
        decode: Callable[[GenerationRequest], Decoded],
        *,
        vocab_size: int | None = None,
        context_length: int | None = None,
    ) -> None:
        self.spec, self._bound, self.vocab_size, self.context_length = spec, decode, vocab_size, context_length

    def _decode(self, request: GenerationRequest, reference: Sequence[int] | None) -> Decoded:
        return self._bound(request)
