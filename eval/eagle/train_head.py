"""Train an EAGLE-1/2 head (fc + one decoder layer) for a base model, on its own answers.

Why a head is trained here at all: EAGLE heads are published only for 7B+
models, which do not run on two CPU cores. The recipe is EAGLE's: the head
reads the target's last hidden state at position t and the embedding of
token t+1 and predicts the hidden state at t+1; the loss is SmoothL1 on that
feature plus 0.1 x cross-entropy between the target's and the head's
next-token distributions through the frozen LM head, with uniform noise on
the input features. The data is self-distilled: the target answers prompts
from ``train_prompts`` (disjoint from every eval set) greedily.

The model class is upstream's own ``eagle.model.cnets1.Model``, and the
checkpoint is written in upstream's format (``config.json`` +
``model.safetensors``, fp16, no embedding), so ``EaModel.from_pretrained(
use_eagle3=False)`` loads it unchanged. Run in EAGLE's environment::

    third_party/eagle-venv/bin/python -m svip.adapters.eagle.train_head BASE_DIR OUT_DIR
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

from .train_prompts import build_prompts

__all__ = ["generate_data", "train", "main"]


def _eval_turns() -> set[str]:
    """Every turn of every shipped question file: prompts that must not be trained on."""
    from svip.eval.datasets import BUILTIN_SETS, load_questions

    return {turn for name in BUILTIN_SETS for question in load_questions(name) for turn in question.turns}


def generate_data(base, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[dict]:
    """Greedy answers of the base model (left-padded batches); prompt and answer token ids per example."""
    tokenizer.padding_side = "left"
    examples = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        encoded = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True) for p in chunk
        ]
        width = max(map(len, encoded))
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(e)) + e for e in encoded])
        mask = (torch.arange(width)[None] >= torch.tensor([width - len(e) for e in encoded])[:, None]).long()
        out = base.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        for prompt_ids, row in zip(encoded, out[:, width:].tolist()):
            answer = []
            for token in row:
                answer.append(token)
                if token == tokenizer.eos_token_id:
                    break
            examples.append({"prompt": prompt_ids, "answer": answer})
        print(f"[data] {len(examples)}/{len(prompts)} answers", flush=True)
    return examples


@torch.no_grad()
def _features(base, examples: list[dict]) -> list[torch.Tensor]:
    """The base model's final (normed) hidden states over prompt + answer, per example."""
    return [base.model(torch.tensor([e["prompt"] + e["answer"]])).last_hidden_state[0].float() for e in examples]


def _batch(examples, features, indices):
    """Right-padded (hidden[:-1], tokens[1:], target hidden[1:], loss mask over answer positions)."""
    length = max(len(examples[i]["prompt"]) + len(examples[i]["answer"]) for i in indices) - 1
    width = features[indices[0]].shape[-1]
    hidden = torch.zeros(len(indices), length, width)
    target = torch.zeros(len(indices), length, width)
    tokens = torch.zeros(len(indices), length, dtype=torch.long)
    mask = torch.zeros(len(indices), length)
    for row, i in enumerate(indices):
        ids = examples[i]["prompt"] + examples[i]["answer"]
        n = len(ids) - 1
        hidden[row, :n], target[row, :n] = features[i][:-1], features[i][1:]
        tokens[row, :n] = torch.tensor(ids[1:])
        mask[row, len(examples[i]["prompt"]) - 1 : n] = 1  # predict answer positions only
    return hidden, tokens, target, mask


def _loss(head, lm_head, hidden, tokens, target, mask, noise: float):
    if noise:
        hidden = hidden + (torch.rand_like(hidden) - 0.5) * noise
    predicted = head(hidden, input_ids=tokens)
    weights = mask[..., None]
    feature_loss = (F.smooth_l1_loss(predicted, target, reduction="none") * weights).sum() / (
        weights.sum() * target.shape[-1] + 1e-6
    )
    with torch.no_grad():
        target_p = torch.softmax(lm_head(target), dim=-1)
    log_q = torch.log_softmax(lm_head(predicted), dim=-1)
    token_loss = -((target_p * log_q).sum(-1) * mask).sum() / (mask.sum() + 1e-6)
    with torch.no_grad():
        hits = ((log_q.argmax(-1) == target_p.argmax(-1)).float() * mask).sum()
    return feature_loss + 0.1 * token_loss, hits, mask.sum()


def train(
    head, lm_head, examples, features, *, epochs: int, batch_size: int, lr: float, noise: float, seed: int
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
            loss, _, _ = _loss(
                head, lm_head, *_batch(examples, features, training[step : step + batch_size]), noise=noise
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            optimizer.step()
            schedule.step()
        head.eval()
        hits = total = 0.0
        with torch.no_grad():
            for step in range(0, len(held_out), batch_size):
                _, h, n = _loss(
                    head, lm_head, *_batch(examples, features, held_out[step : step + batch_size]), noise=0.0
                )
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
    parser.add_argument("base", help="base model directory (from svip.adapters.eagle.export)")
    parser.add_argument("out", help="where to write config.json + model.safetensors")
    parser.add_argument("--prompts", type=int, default=800)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
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
    data_path = out / "train_data.json"  # resumable: answers are the slow part
    if data_path.exists():
        examples = json.loads(data_path.read_text())
    else:
        prompts = build_prompts(args.prompts, seed=args.seed, exclude=_eval_turns())
        examples = generate_data(base, tokenizer, prompts, args.max_new_tokens, batch_size=16)
        data_path.write_text(json.dumps(examples))
    data_seconds = time.perf_counter() - started
    features = _features(base, examples)
    config = json.loads((Path(args.base) / "config.json").read_text())
    config.update(num_hidden_layers=1, bias=True, architectures=["LlamaForCausalLM"])
    (out / "config.json").write_text(json.dumps(config, indent=1))
    head = Model(EConfig.from_pretrained(str(out / "config.json")), load_emb=True, path=args.base)
    head.gradient_checkpointing = False
    lm_head = base.lm_head.requires_grad_(False)
    report = train(
        head,
        lm_head,
        examples,
        features,
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
    report.update(
        base=str(args.base),
        prompts=args.prompts,
        max_new_tokens=args.max_new_tokens,
        tokens=sum(len(e["prompt"]) + len(e["answer"]) for e in examples),
        answer_tokens=sum(len(e["answer"]) for e in examples),
        data_seconds=data_seconds,
        total_cpu_seconds=time.perf_counter() - started,
        torch_threads=torch.get_num_threads(),
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
