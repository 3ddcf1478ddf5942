"""Where a method's greedy output first leaves its baseline's, and whether that is a near-tie or a bug.

In fp32 every method's greedy output equals target-only's (tested): a
token-match below 1 there is a bug. In bf16/fp16 the target scoring k tokens
in one forward rounds differently from k one-token forwards, so where its top
two logits are within rounding of each other the argmax can flip and the
texts part from there. ``first_divergences`` finds each diverging
question's first differing position from the records alone;
``logit_gaps`` (``svip report --near-ties``) loads the target and measures,
at that position of the baseline's text, the gap between the token the
baseline chose and the one the method chose, in the run's precision and in
fp32: a gap of a few hundredths of a logit is a near-tie, not a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .records import turn_tokens

__all__ = [
    "Divergence",
    "explanation",
    "first_divergences",
    "format_divergences",
    "lossless_violations",
    "measure_gaps",
    "precision_of",
]


@dataclass
class Divergence:
    """The first position where ``method``'s tokens differ from its baseline's on one question and turn."""

    question_id: str
    method: str
    baseline: str
    turn: int
    position: int  # among the turn's new tokens
    expected: int  # the baseline's token there
    got: int  # the method's
    prefix: tuple[int, ...] = ()  # the baseline's tokens before ``position`` (where the gap is measured)
    gap: float | None = None  # logit[expected] - logit[got] at that position, the run's precision
    gap_fp32: float | None = None  # the same in fp32


def first_divergences(records: Sequence[dict]) -> list[Divergence]:
    """One ``Divergence`` per (method, question) whose tokens differ from its baseline's (in the records)."""
    from svip.adapters import registry

    by_key = {(r["method"], r["question_id"]): r for r in records if "method" in r and "question_id" in r}
    found = []
    for record in records:
        if record.get("token_match", 1.0) >= 1.0:
            continue
        baseline = registry.baseline_of(registry.parse(record["method"], warn=False))
        reference = by_key.get((baseline, record["question_id"]))
        if reference is None or baseline == record["method"]:
            continue
        for turn, (want, have) in enumerate(zip(turn_tokens(reference), turn_tokens(record))):
            position = next((i for i, (a, b) in enumerate(zip(want, have)) if a != b), None)
            if position is not None:
                found.append(
                    Divergence(
                        record["question_id"], record["method"], baseline, turn, position,
                        want[position], have[position], tuple(want[:position]),
                    )  # fmt: skip
                )
                break
    return found


def explanation(dtype: str | None) -> str:
    """The line printed under a table with token-match, saying what the column measures in this precision."""
    if dtype and dtype != "fp32":  # bf16, fp16, and llama.cpp's quantized GGUF types (q8_0, ...)
        return (
            f"token-match: the share of the baseline's tokens a method reproduces before its first different token. "
            f"In {dtype}, verifying k tokens in one forward rounds differently from one-token steps, so where the "
            "target's top two logits nearly tie the chosen token can flip: below 1 here is rounding, not a lossy "
            "method (fp32 is token-identical, tested). First divergences:"
        )
    return "token-match: the share of the baseline's tokens a method reproduces before its first different token."


def precision_of(method: str, config: dict) -> str:
    """The weights' precision a method ran in: the run's ``dtype``, or for llama.cpp its GGUF type."""
    if method.startswith("llamacpp"):
        gguf = (config.get("options") or {}).get("llamacpp_gguf")
        if gguf:
            return {"f32": "fp32", "f16": "fp16"}.get(gguf, gguf)
    return config.get("dtype") or "fp32"


def lossless_violations(found: Sequence[Divergence], config: dict) -> list[Divergence]:
    """Divergences that are bugs: greedy, and the method ran in fp32."""
    if config.get("temperature"):
        return []
    return [d for d in found if precision_of(d.method, config) == "fp32"]


def measure_gaps(found: Sequence[Divergence], config: dict) -> None:
    """Fill ``gap``/``gap_fp32``: the torch target's logits at each divergence (first turns only), run precision + fp32.

    The target reads the question's prompt (as the run encoded it) and the
    baseline's tokens before the divergence; the gap is logit[baseline's
    token] - logit[method's token]. Loads the target once per precision.
    """
    import torch

    from .datasets import load_questions
    from .loading import Placement, load_model, load_tokenizer
    from .prompts import encode_prompt

    todo = [d for d in found if d.turn == 0]
    if not todo:
        return
    questions = {q.question_id: q for q in load_questions(config["questions"])}
    tokenizer = load_tokenizer(config["target"])
    prompts = {
        d.question_id: encode_prompt(
            tokenizer, questions[d.question_id].turns[0],
            chat=not (questions[d.question_id].raw or config.get("raw")), template=config.get("template"),
        )  # fmt: skip
        for d in todo
    }
    for dtype, field in ((config.get("dtype") or "fp32", "gap"), ("fp32", "gap_fp32")):
        model = load_model(config["target"], Placement(dtype=dtype))
        with torch.inference_mode():
            for d in todo:
                ids = torch.tensor([[*prompts[d.question_id], *d.prefix]])
                logits = model(input_ids=ids).logits[0, -1].float()
                setattr(d, field, float(logits[d.expected] - logits[d.got]))
        del model


def format_divergences(found: Sequence[Divergence], decode: Callable[[list[int]], str] | None = None) -> str:
    """One line per divergence: question, method, position, the two tokens, and the logit gaps if measured."""
    show = (lambda t: repr(decode([t]))) if decode else str
    lines = []
    for d in found:
        gap = ""
        if d.gap is not None:
            gap = f"; logit gap {d.gap:.3f} in the run's precision"
            if d.gap_fp32 is not None:
                gap += f", {d.gap_fp32:+.3f} in fp32"
        turn = f" turn {d.turn + 1}" if d.turn else ""
        lines.append(
            f"  {d.question_id}{turn} {d.method}: token {d.position}: baseline {show(d.expected)}, "
            f"method {show(d.got)}{gap}"
        )
    return "\n".join(lines)
