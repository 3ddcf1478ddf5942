"""What one generation reports besides its tokens: per-round numbers and timings.

Every method -- the vanilla engine, transformers' loop, the cascade, EAGLE --
returns a ``GenerationResult``, and ``GenerationResult.rounds_record`` is the
one place its rounds become the plain lists that result files store, so
records, tables and plots treat all methods alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["GenerationResult", "RoundStats"]


@dataclass
class RoundStats:
    """One draft-then-verify round (a target-only step has ``drafted == 0``)."""

    drafted: int
    accepted: int
    emitted: int  # tokens appended this round (accepted + correction/bonus, clipped at EOS/limit)
    entropies: list[float] = field(default_factory=list)  # draft entropy (nats) per drafted token
    draft_time: float = 0.0
    verify_time: float = 0.0
    cross_entropies: list[float] | None = None  # H(q, p) per drafted token, when the engine records it
    draft_forwards: int | None = None  # draft-model forward passes this round (None: one per drafted token)
    target_forwards: int = 1  # target forward passes this round (verification, or a target-only step)

    @property
    def forwards_of_draft(self) -> int:
        return self.drafted if self.draft_forwards is None else self.draft_forwards


@dataclass
class GenerationResult:
    """Output of any method's ``generate`` for one prompt."""

    prompt_length: int
    tokens: list[int]  # new tokens only
    rounds: list[RoundStats]
    wall_time: float
    method: str
    stopped_by: str  # "eos" | "max_new_tokens"

    @property
    def draft_time(self) -> float:
        return sum(r.draft_time for r in self.rounds)

    @property
    def verify_time(self) -> float:
        return sum(r.verify_time for r in self.rounds)

    @property
    def drafted(self) -> int:
        return sum(r.drafted for r in self.rounds)

    @property
    def draft_forwards(self) -> int:
        """Draft-model forward passes (CS Drafting's cost counts these; Max-Gram tokens are free)."""
        return sum(r.forwards_of_draft for r in self.rounds)

    @property
    def target_forwards(self) -> int:
        return sum(r.target_forwards for r in self.rounds)

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.rounds)

    @property
    def acceptance_rate(self) -> float:
        """Accepted / drafted draft tokens (NaN for target-only)."""
        return self.accepted / self.drafted if self.drafted else float("nan")

    @property
    def mean_accepted_length(self) -> float:
        """Tokens emitted per target forward (the paper's and EAGLE's 'tau')."""
        return len(self.tokens) / len(self.rounds) if self.rounds else 0.0

    def rounds_record(self) -> dict:
        """The per-round lists a result file stores (keys shared by every writer and reader)."""
        crosses = [r.cross_entropies for r in self.rounds]
        return {
            "decoding_steps": len(self.rounds),
            "accept_lengths": [r.emitted for r in self.rounds],
            "drafted": [r.drafted for r in self.rounds],
            "draft_forwards": [r.forwards_of_draft for r in self.rounds],
            "target_forwards": [r.target_forwards for r in self.rounds],
            "accepted": [r.accepted for r in self.rounds],
            "entropies": [r.entropies for r in self.rounds],
            "draft_times": [r.draft_time for r in self.rounds],
            "verify_times": [r.verify_time for r in self.rounds],
            "cross_entropies": crosses if any(c is not None for c in crosses) else None,
        }

    def to_dict(self) -> dict:
        """Plain JSON-ready dict: the fields, the derived totals and the per-round lists."""
        record = asdict(self)
        record.update(
            draft_time=self.draft_time,
            verify_time=self.verify_time,
            new_tokens=len(self.tokens),
            **self.rounds_record(),
        )
        record["drafted_total"], record["accepted_total"] = self.drafted, self.accepted
        return record
