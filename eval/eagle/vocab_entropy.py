"""How far the draft-vocabulary entropy is from the full-vocabulary one, on real EAGLE drafts.

Why: SVIP's rule is defined on the entropy of the draft's next-token
distribution over the full vocabulary. A head that drafts from the N most
frequent tokens (``draft_vocab.json``) only sees a softmax over those N
logits: the mass of the other tokens is dropped and the rest renormalised,
so its entropy is an approximation. This tool drives the patched EAGLE-2
tree on real prompts with SVIP on, and at every draft step computes both
entropies from the same head output (the draft-vocabulary LM head and the
target's full LM head), then prints how far apart they are and how often
the stop decision ``sqrt(gamma * H) > h`` differs. Run in EAGLE's venv::

    third_party/eagle-venv/bin/python -m svip.eval.eagle.vocab_entropy --target qwen2.5-coder-1.5b \\
        --eagle-head adapters/eagle/heads/qwen2.5-coder-1.5b --kernels onednn
"""

from __future__ import annotations

import argparse
import json
import math

import torch

from svip.kernels import KERNELS

__all__ = ["EntropyProbe", "compare", "main"]


class EntropyProbe(torch.nn.Module):
    """Stands in for the draft-vocabulary LM head: returns its logits, records both entropies per row."""

    def __init__(self, draft_rows: torch.nn.Module, full_head: torch.nn.Module, draft_ids: torch.Tensor) -> None:
        super().__init__()
        self.draft_rows, self.full_head, self.draft_ids = draft_rows, full_head, draft_ids
        self.pairs: list[tuple[float, float, float]] = []  # (H over the draft vocab, H over all tokens, mass kept)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.draft_rows(hidden)
        with torch.no_grad():
            draft_log_p = torch.log_softmax(logits.float(), -1)
            full_log_p = torch.log_softmax(self.full_head(hidden).float(), -1)
            draft_h = -(draft_log_p.exp() * draft_log_p).sum(-1).reshape(-1)
            full_h = -(full_log_p.exp() * full_log_p).sum(-1).reshape(-1)
            kept = full_log_p.exp()[..., self.draft_ids.to(full_log_p.device)].sum(-1).reshape(-1)
            self.pairs.extend(zip(draft_h.tolist(), full_h.tolist(), kept.tolist()))
        return logits


def compare(pairs: list[tuple[float, float, float]], *, h: float = 0.3, gamma: float = 0.15) -> dict:
    """Summary of (draft-vocab H, full H, full-vocab mass on the draft vocab) triples."""
    if not pairs:
        raise ValueError("no draft distributions were recorded")
    draft = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    full = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    kept = torch.tensor([p[2] for p in pairs], dtype=torch.float64)
    gap = draft - full
    bound = h * h / gamma  # sqrt(gamma * H) > h  <=>  H > h^2 / gamma
    correlation = float(torch.corrcoef(torch.stack([draft, full]))[0, 1]) if len(pairs) > 1 else math.nan
    return {
        "distributions": len(pairs),
        "mean_entropy_draft_vocab": float(draft.mean()),
        "mean_entropy_full_vocab": float(full.mean()),
        "mean_gap": float(gap.mean()),
        "mean_abs_gap": float(gap.abs().mean()),
        "p95_abs_gap": float(gap.abs().quantile(0.95)),
        "max_abs_gap": float(gap.abs().max()),
        "correlation": correlation,
        "mean_mass_on_draft_vocab": float(kept.mean()),
        "min_mass_on_draft_vocab": float(kept.min()),
        "stop_decision_differs": float(((draft > bound) != (full > bound)).double().mean()),
        "h": h,
        "gamma": gamma,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="zoo name or exported EAGLE base directory")
    parser.add_argument("--eagle-head", required=True, help="a head directory with draft_vocab.json")
    parser.add_argument("--questions", default="eagle", help="question set (default: EAGLE's five)")
    parser.add_argument("--per-category", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--method", default="eagle2+svip", help="the EAGLE method whose drafts are probed")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--kernels", default="default", choices=KERNELS)
    parser.add_argument("--out", help="write the summary as JSON here too")
    args = parser.parse_args(argv)

    from svip.adapters.eagle import EagleMethod
    from svip.adapters.eagle.generator import EagleGenerator
    from svip.eval.datasets import load_questions, per_category
    from svip.eval.prompts import encode_prompt

    from .export import eagle_base

    base = eagle_base(args.target)
    generator = EagleGenerator(base, args.eagle_head, dtype=args.dtype, kernels=args.kernels)
    if generator.draft_vocab is None:
        parser.error(f"{args.eagle_head} has no draft_vocab.json: its head drafts over the full vocabulary already")
    ids, rows = generator.draft_vocab
    probe = EntropyProbe(rows, generator.model.base_model.lm_head, ids)
    generator.draft_vocab = (ids, probe)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    method = EagleMethod.parse(args.method)
    questions = per_category(load_questions(args.questions), args.per_category, shortest=True)
    for question in questions:
        prompt = encode_prompt(tokenizer, question.turns[0])
        generator.generate(prompt, method, max_new_tokens=args.max_new_tokens)
        print(f"[probe] {question.question_id}: {len(probe.pairs)} distributions so far", flush=True)
    summary = compare(probe.pairs, h=method.h if method.h is not None else 0.3, gamma=method.gamma)
    summary.update(target=args.target, head=args.eagle_head, method=method.spec, questions=len(questions))
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
