"""Train an EAGLE-1/2 head (fc + one decoder layer) for a base model, on its own answers.

Why a head is trained here at all: EAGLE heads are published only for 7B+
models, which do not run on two CPU cores. The recipe is EAGLE's: the head
reads the target's last hidden state at position t and the embedding of
token t+1 and predicts the hidden state at t+1; the loss is SmoothL1 on that
feature plus 0.1 x cross-entropy between the target's and the head's
next-token distributions through the frozen LM head, with uniform noise on
the input features. The data is self-distilled: the target answers prompts
from ``train_prompts`` (disjoint from every eval set) greedily, and the
features are kept as it answers (``head_data``).

Two options make a head for a bigger target affordable on a CPU and small
enough to ship: ``--intermediate-size`` (the head's MLP; EAGLE copies the
target's, 8960 for Qwen2.5-1.5B) and ``--draft-vocab N`` (EAGLE-3's reduced
draft vocabulary in EAGLE-2's format: the loss, and at run time the tree's
LM head, cover the N tokens the target emits most; written to
``draft_vocab.json`` and applied by ``set_draft_vocab`` of the patch).

The model class is upstream's own ``eagle.model.cnets1.Model``, and the
checkpoint is written in upstream's format (``config.json`` +
``model.safetensors``, fp16, no embedding), so ``EaModel.from_pretrained(
use_eagle3=False)`` loads it unchanged. Run in EAGLE's environment::

    third_party/eagle-venv/bin/python -m svip.eval.eagle.train_head BASE_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from svip.adapters.eagle.generator import import_eagle
from svip.kernels import KERNELS, pack_linears
from svip.runtime import cache_root

from .head_data import answer_with_features
from .train_prompts import build_prompts

__all__ = ["draft_vocabulary", "train", "main"]


def _eval_turns() -> set[str]:
    """Every turn of every shipped question file: prompts that must not be trained on."""
    from svip.eval.datasets import BUILTIN_SETS, load_questions

    return {turn for name in BUILTIN_SETS for question in load_questions(name) for turn in question.turns}


def draft_vocabulary(examples: list[dict], size: int, vocab_size: int) -> list[int]:
    """The ``size`` tokens the target emits most often in its answers (then in prompts), sorted by id.

    Why: the head's LM head costs ``rows x vocab`` per tree level; EAGLE-3
    drafts from the most frequent target tokens only (its ``d2t``/``t2d``).
    A token outside the set can never be drafted, only emitted by the target.
    """
    if size <= 0 or size >= vocab_size:
        return list(range(vocab_size))
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for e in examples:
        counts.index_add_(0, torch.tensor(e["answer"], dtype=torch.long), torch.ones(len(e["answer"]), dtype=torch.float64))
        counts.index_add_(0, torch.tensor(e["prompt"], dtype=torch.long), torch.full((len(e["prompt"]),), 1e-3, dtype=torch.float64))
    return sorted(torch.topk(counts, size).indices.tolist())


def _batch(examples, indices):
    """Right-padded (hidden[:-1], tokens[1:], target hidden[1:], loss mask over answer positions)."""
    length = max(len(examples[i]["prompt"]) + len(examples[i]["answer"]) for i in indices) - 1
    width = examples[indices[0]]["features"].shape[-1]
    hidden = torch.zeros(len(indices), length, width)
    target = torch.zeros(len(indices), length, width)
    tokens = torch.zeros(len(indices), length, dtype=torch.long)
    mask = torch.zeros(len(indices), length)
    for row, i in enumerate(indices):
        ids = examples[i]["prompt"] + examples[i]["answer"]
        features = examples[i]["features"].float()
        n = len(ids) - 1
        hidden[row, :n], target[row, :n] = features[:-1], features[1:]
        tokens[row, :n] = torch.tensor(ids[1:])
        mask[row, len(examples[i]["prompt"]) - 1 : n] = 1  # predict answer positions only
    return hidden, tokens, target, mask


def _loss(head, lm_rows, vocab, hidden, tokens, target, mask, noise: float):
    """EAGLE's loss over the draft vocabulary; hits = the head's top-1 (as a target id) equals the target's token."""
    if noise:
        hidden = hidden + (torch.rand_like(hidden) - 0.5) * noise
    predicted = head(hidden, input_ids=tokens)
    weights = mask[..., None]
    feature_loss = (F.smooth_l1_loss(predicted, target, reduction="none") * weights).sum() / (
        weights.sum() * target.shape[-1] + 1e-6
    )
    with torch.no_grad():
        target_p = torch.softmax(F.linear(target, lm_rows), dim=-1)
    log_q = torch.log_softmax(F.linear(predicted, lm_rows), dim=-1)
    token_loss = -((target_p * log_q).sum(-1) * mask).sum() / (mask.sum() + 1e-6)
    with torch.no_grad():
        next_tokens = torch.zeros_like(tokens)
        next_tokens[:, :-1] = tokens[:, 1:]  # the token after position t+1: what the head's feature predicts
        valid = torch.zeros_like(mask)  # a position counts if the next one is in the answer too (it has a next token)
        valid[:, :-1] = mask[:, :-1] * mask[:, 1:]
        hits = ((vocab[log_q.argmax(-1)] == next_tokens).float() * valid).sum()
    return feature_loss + 0.1 * token_loss, hits, valid.sum()


def train(
    head, lm_rows, vocab, examples, *, epochs: int, batch_size: int, lr: float, noise: float, seed: int
) -> dict:
    """AdamW with warm-up and cosine decay; returns held-out next-token accuracy per epoch."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    held_out, training = order[: max(1, len(order) // 20)], order[max(1, len(order) // 20) :]
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    steps = epochs * math.ceil(len(training) / batch_size)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    history = []
    for epoch in range(epochs):
        head.train()
        rng.shuffle(training)
        start = time.perf_counter()
        for step in range(0, len(training), batch_size):
            loss, _, _ = _loss(head, lm_rows, vocab, *_batch(examples, training[step : step + batch_size]), noise=noise)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            optimizer.step()
            schedule.step()
        head.eval()
        hits = total = 0.0
        with torch.no_grad():
            for step in range(0, len(held_out), batch_size):
                _, h, n = _loss(head, lm_rows, vocab, *_batch(examples, held_out[step : step + batch_size]), noise=0.0)
                hits, total = hits + float(h), total + float(n)
        history.append(
            {
                "epoch": epoch + 1,
                "held_out_top1": hits / max(total, 1),
                "seconds": time.perf_counter() - start,
                "last_loss": float(loss.detach()),
            }
        )
        print(f"[train] {history[-1]}", flush=True)
    return {"held_out_examples": len(held_out), "train_examples": len(training), "epochs": history}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="base model directory (from svip.eval.eagle.export)")
    parser.add_argument("out", help="where to write config.json + model.safetensors (+ draft_vocab.json)")
    parser.add_argument("--prompts", type=int, default=800)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--answer-batch-size", type=int, default=16, help="prompts answered together")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--intermediate-size", type=int, help="the head's MLP width (default: the base model's)")
    parser.add_argument("--draft-vocab", type=int, default=0, help="draft from the N most frequent tokens (0: all)")
    parser.add_argument("--kernels", choices=KERNELS, default="default", help="matmul kernels while answering")
    parser.add_argument("--data", help="where answers + features are cached (default: $SVIP_HOME/eagle/OUT-NAME.pt)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    import_eagle()
    from eagle.model.cnets1 import Model
    from eagle.model.configs import EConfig
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    base = AutoModelForCausalLM.from_pretrained(args.base, torch_dtype=torch.float32).eval()
    lm_weight = base.lm_head.weight.detach().clone()
    # resumable: the answers are the slow part; kept out of the head directory (hundreds of MB of features)
    data_path = Path(args.data) if args.data else cache_root() / "eagle" / f"{out.name}-train-data.pt"
    if data_path.exists():
        examples = torch.load(data_path)
    else:
        pack_linears(base, args.kernels)
        prompts = build_prompts(args.prompts, seed=args.seed, exclude=_eval_turns())
        examples = answer_with_features(
            base, tokenizer, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.answer_batch_size
        )
        data_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(examples, data_path)
    del base
    data_seconds = time.perf_counter() - started
    config = json.loads((Path(args.base) / "config.json").read_text())
    config.update(num_hidden_layers=1, bias=True, architectures=["LlamaForCausalLM"])
    if args.intermediate_size:
        config["intermediate_size"] = args.intermediate_size
    (out / "config.json").write_text(json.dumps(config, indent=1))
    vocab = draft_vocabulary(examples, args.draft_vocab, lm_weight.shape[0])
    if len(vocab) < lm_weight.shape[0]:
        (out / "draft_vocab.json").write_text(json.dumps(vocab))
    vocab_ids = torch.tensor(vocab)
    head = Model(EConfig.from_pretrained(str(out / "config.json")), load_emb=True, path=args.base)
    head.gradient_checkpointing = False
    report = train(
        head,
        lm_weight[vocab_ids],
        vocab_ids,
        examples,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        noise=args.noise,
        seed=args.seed,
    )
    state = {
        k: v.detach().to(torch.float16).contiguous()
        for k, v in head.state_dict().items()
        if not k.startswith("embed_tokens")
    }
    save_file(state, str(out / "model.safetensors"))
    answer_tokens = [t for e in examples for t in e["answer"]]
    report.update(
        base=Path(args.base).name,
        prompts=args.prompts,
        max_new_tokens=args.max_new_tokens,
        tokens=sum(len(e["prompt"]) + len(e["answer"]) for e in examples),
        answer_tokens=len(answer_tokens),
        draft_vocab=len(vocab),
        answer_tokens_in_draft_vocab=sum(t in set(vocab) for t in answer_tokens) / max(1, len(answer_tokens)),
        intermediate_size=config["intermediate_size"],
        parameters=sum(v.numel() for v in state.values()),
        data_seconds=data_seconds,
        total_cpu_seconds=time.perf_counter() - started,
        torch_threads=torch.get_num_threads(),
        kernels=args.kernels,
        lr=args.lr,
        batch_size=args.batch_size,
        noise=args.noise,
        seed=args.seed,
    )
    (out / "training.json").write_text(json.dumps(report, indent=1))
    print(f"[done] wrote {out}/model.safetensors; {report['total_cpu_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
