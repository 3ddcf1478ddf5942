"""Outputs of EAGLE runs as JSON lines, for losslessness checks across processes and checkouts.

Two checkouts of EAGLE (pristine and patched) cannot be imported into one
process (both are the package ``eagle``), and EAGLE needs its own venv, so
the tests run this module as a subprocess and compare what it prints:

- ``--upstream``: upstream's own ``EaModel.eagenerate`` (SVIP never switched
  on), for "the patch changes nothing unless asked";
- otherwise: ``EagleGenerator`` under each ``--methods`` entry (``target-only``
  included), with tokens, per-round counts and tree levels.

Run it with EAGLE's python; ``SVIP_EAGLE_DIR`` picks the checkout.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from svip.adapters.eagle.generator import EagleGenerator, hub_offline_for, import_eagle
from svip.adapters.eagle.method import EagleMethod
from svip.eval.datasets import load_questions, per_category
from svip.eval.prompts import encode_prompt
from svip.kernels import KERNELS

from .export import eagle_base

__all__ = ["main"]


def _prompts(tokenizer, questions: str, count: int) -> list[tuple[str, list[int]]]:
    chosen = per_category(load_questions(questions), count, shortest=True)
    return [(q.question_id, encode_prompt(tokenizer, q.turns[0])) for q in chosen]


def _upstream(base: str, head: str, prompts, max_new_tokens: int) -> None:
    ea_model, _, _ = import_eagle(require_patch=False)
    with hub_offline_for(base, head):
        model = ea_model.EaModel.from_pretrained(
            use_eagle3=False, base_model_path=base, ea_model_path=head, torch_dtype=torch.float32
        ).eval()
    for question_id, ids in prompts:
        output, new_tokens, rounds = model.eagenerate(torch.tensor([ids]), max_new_tokens=max_new_tokens, log=True)
        print(
            json.dumps(
                {
                    "question_id": question_id,
                    "method": "upstream-eagenerate",
                    "tokens": output[0, len(ids) :].tolist(),
                    "rounds": int(rounds),
                }
            ),
            flush=True,
        )


def _methods(base: str, head: str, prompts, methods: list[str], max_new_tokens: int, kernels: str) -> None:
    generator = EagleGenerator(base, head, kernels=kernels)
    for question_id, ids in prompts:
        for method in methods:
            parsed = None if method == "target-only" else EagleMethod.parse(method)
            result = generator.generate(
                ids, parsed, max_new_tokens=max_new_tokens, stop_tokens={generator.model.tokenizer.eos_token_id}
            )
            rounds = result.rounds_record()
            print(
                json.dumps(
                    {
                        "question_id": question_id,
                        "method": method,
                        "tokens": result.tokens,
                        "drafted": rounds["drafted"],
                        "accepted": rounds["accepted"],
                        "emitted": rounds["accept_lengths"],
                        "levels": list(generator.levels),
                        "sizes": list(generator.sizes),
                        "trees": list(generator.trees),
                    }
                ),
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="smollm2-135m", help="base model: zoo name, directory or hub id")
    parser.add_argument("--head", required=True, help="EAGLE head directory or hub id (EAGLE-1/2 or EAGLE-3 format)")
    parser.add_argument("--questions", default="eagle")
    parser.add_argument("--per-category", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--upstream", action="store_true", help="run upstream's eagenerate instead of our loop")
    parser.add_argument("--methods", nargs="+", default=["target-only", "eagle2", "eagle2+svip"])
    parser.add_argument("--kernels", default="default", choices=KERNELS, help="see svip.kernels")
    args = parser.parse_args(argv)
    base = eagle_base(args.base)
    from transformers import AutoTokenizer

    prompts = _prompts(AutoTokenizer.from_pretrained(base), args.questions, args.per_category)
    if args.upstream:
        _upstream(base, args.head, prompts, args.max_new_tokens)
    else:
        _methods(base, args.head, prompts, args.methods, args.max_new_tokens, args.kernels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
