"""``svip trace``: what the draft would say at every position of the target's greedy output.

Greedy speculative decoding is a deterministic function of two things: the
target's greedy continuation and the draft's prediction (token, entropy,
top-1 probability) at each position of it. A trace records both, once per
question, so ``svip simulate`` can replay any draft-length policy under any
cost curve without running a model again.

- Along the target's output the draft is teacher-forced, token by token on
  its own KV cache, as the engine feeds it.
- Where the draft's top token differs from the target's, the draft's round
  would go on from its own (wrong) token: those tokens are never accepted but
  their entropies decide when a policy stops, so the trace rolls the draft
  out ``branch`` tokens from there. Policies that draft further past a
  rejection than that are cut in the replay (``simulate`` counts how often).

Each question is one JSON line, appended as it finishes (a rerun resumes).
The file's first line is the header: models, machine, the cost curve measured
before tracing, and the stop tokens.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from svip.adapters.kinds import ModelSet
from svip.adapters.vanilla.cached_model import CachedCausalLM
from svip.adapters.vanilla.costs import measure_cost_curve
from svip.policies import DraftStep

from .datasets import Question
from .machine import machine_info

__all__ = ["DEFAULT_BRANCH", "TraceError", "read_trace", "trace_question", "write_trace"]

DEFAULT_BRANCH = 8


class TraceError(ValueError):
    """A trace file that is missing, torn or made for other settings."""


def _prediction(logits: torch.Tensor) -> tuple[int, float, float]:
    """Draft's top token, its probability and the raw-logit entropy (nats)."""
    step = DraftStep(index=0, position=0, token=int(logits.argmax()), logits=logits)
    return step.token, step.token_prob, step.entropy


def _seconds(model: CachedCausalLM, tokens: Sequence[int]) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    logits = model.forward(list(tokens), 1)[-1]
    return logits, time.perf_counter() - start


@torch.inference_mode()
def trace_question(
    models: ModelSet, prompt: Sequence[int], tokens: Sequence[int], *, branch: int = DEFAULT_BRANCH
) -> dict:
    """The draft's view of ``tokens`` (the target's greedy output after ``prompt``), with branch rollouts."""
    engine = models.engine()
    draft, target = engine.draft.model, engine.target.model
    target.reset()
    _, target_prefill = _seconds(target, prompt)
    target.reset()
    draft.reset()
    logits, draft_prefill = _seconds(draft, prompt)
    argmax, top1, entropy, branches = [], [], [], {}
    for position, token in enumerate(tokens):
        guess, probability, nats = _prediction(logits)
        argmax.append(guess)
        top1.append(probability)
        entropy.append(nats)
        if guess != token:  # the round would go on from the draft's own token
            branches[str(position)] = _roll_out(draft, guess, branch)
        if position + 1 < len(tokens):
            logits = draft.forward([token], 1)[-1]
    draft.reset()
    return {
        "prompt_tokens": len(prompt),
        "tokens": list(tokens),
        "draft_argmax": argmax,
        "draft_top1": top1,
        "draft_entropy": entropy,
        "branches": branches,
        "prefill_s": {"target": target_prefill, "draft": draft_prefill},
    }


def _roll_out(draft: CachedCausalLM, wrong: int, steps: int) -> list[list[float]]:
    """[entropy, top-1 probability] of the draft's next ``steps`` tokens after ``wrong``; the cache is restored."""
    base = draft.cached_length
    out, token = [], wrong
    for _ in range(steps):
        token, probability, nats = _prediction(draft.forward([token], 1)[-1])
        out.append([nats, probability])
    draft.crop(base)
    return out


def read_trace(path: Path) -> tuple[dict, list[dict]]:
    """(header, questions) of a trace file."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"no trace at {path}; make one with: svip trace --out {path} ...")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    try:
        rows = [json.loads(line) for line in lines]
    except json.JSONDecodeError:
        rows = [json.loads(line) for line in lines[:-1]]  # a torn last line: that question is redone
    if not rows or rows[0].get("kind") != "svip-trace":
        raise TraceError(f"{path} is not an svip trace (no header line)")
    return rows[0], rows[1:]


def write_trace(
    path: Path,
    models: ModelSet,
    questions: list[Question],
    encode,
    settings: dict,
    *,
    reference: dict[str, list[int]] | None = None,
    stops: set[int],
    branch: int = DEFAULT_BRANCH,
    progress: bool = True,
) -> Path:
    """Trace ``questions`` into ``path`` (resuming); ``reference`` maps question ids to target outputs to reuse."""
    from svip.eval.methods import MethodRunner
    from svip.eval.metrics import TARGET_ONLY

    path = Path(path)
    done: set[str] = set()
    if path.exists():
        header, rows = read_trace(path)
        if header.get("settings") != settings or header.get("branch") != branch:
            raise TraceError(f"{path} was traced with other settings: {header.get('settings')}; use another --out")
        done = {row["question_id"] for row in rows}
        path.write_text("".join(json.dumps(row) + "\n" for row in [header, *rows]))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        curve = measure_cost_curve(models.engine(), encode(questions[0]))
        header = {
            "kind": "svip-trace",
            "settings": settings,
            "branch": branch,
            "stop_tokens": sorted(stops),
            "machine": machine_info(),
            "cost_curve": curve,
        }
        path.write_text(json.dumps(header) + "\n")
    runner = MethodRunner.for_models(models)
    todo = [q for q in questions if q.question_id not in done]
    for question in tqdm(todo, desc="trace", unit="question", disable=not progress):
        prompt = encode(question)
        tokens = (reference or {}).get(question.question_id)
        if tokens is None:
            tokens = runner.run(
                TARGET_ONLY, prompt, max_new_tokens=settings["max_new_tokens"], stop_tokens=stops, seed=None
            ).tokens
        row = {"question_id": question.question_id, "group": question.group}
        row.update(trace_question(models, prompt, tokens, branch=branch))
        with path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
    return path
