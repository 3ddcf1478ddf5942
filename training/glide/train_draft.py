"""Train a GliDe draft for a target by distillation, teacher-forced (``make glide-draft``).

``python -m svip.training.glide.train_draft --target qwen2.5-coder-1.5b --base qwen2.5-coder-0.5b --layers 4 OUT``

The draft keeps the base model's first ``--layers`` blocks, re-tuned by
LoRA, each followed by a cross-attention block reading one of the target's
top layers (``svip.adapters.glide``). Its labels are the target's greedy
next tokens at every position of the training text, and its cross-attention
sees the target's keys/values of the positions before the start of its
block (upstream's block-wise mask): the offsets a round of drafting
produces. One teacher-forced target forward per text gives both, so no
generation is needed once the text exists.

The text is the target's own answers to templated prompts that are in no
evaluation set (the EAGLE head's data file, ``make eagle-head-qwen``, when
it exists; otherwise answered here): on its own answers the target's next
token is the text's, which is what acceptance is measured on.

Held-out examples (5%) give the record written beside the weights:
top-1 agreement with the target, and the mean accepted length of a 4-token
chain (teacher-forced over the target's greedy text, which is exact for
greedy verification: a chain's tokens equal the text's until its first
miss), for this draft, the untrained cut base model, and the full base model.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import random
import time
from pathlib import Path

import torch

from svip.adapters.glide.draft import GlideDraft
from svip.adapters.glide.lora import add_lora, lora_state
from svip.runtime import cache_root

from ..cache import cached

__all__ = [
    "block_limits",
    "cached_teacher_pass",
    "chain_acceptance",
    "distillation_loss",
    "teacher_pass",
    "train",
    "main",
]

EVAL_CHAIN = 4  # upstream GliDe's draft length
TEACHER_TOP_K = 8  # next tokens kept per position by the teacher pass (the soft labels)


def block_limits(length: int, block: int, phase: int) -> torch.Tensor:
    """For each position, the start of its block: the target positions it may see are ``< start``."""
    positions = torch.arange(length)
    return (positions - (positions + phase) % block).clamp(min=0)


@torch.no_grad()
def teacher_pass(
    target, sequences: list[list[int]], layers: list[int], batch_size: int = 8, top_k: int = TEACHER_TOP_K
) -> list[dict]:
    """Per sequence: the target's cached keys/values of ``layers`` (fp16), its greedy next token per position,
    and its ``top_k`` most likely next tokens with their log-probabilities (the soft labels)."""
    from transformers import DynamicCache

    records = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        width = max(map(len, batch))
        ids = torch.tensor([s + [0] * (width - len(s)) for s in batch])  # right padding: real positions from 0
        cache = DynamicCache(config=target.config)
        hidden = target.model(input_ids=ids, past_key_values=cache, use_cache=True).last_hidden_state
        for row, sequence in enumerate(batch):
            n = len(sequence)
            logits = target.lm_head(hidden[row, :n]).float()
            top = logits.log_softmax(-1).topk(top_k, dim=-1)
            kv = torch.stack(
                [torch.stack([cache.layers[i].keys[row, :, :n], cache.layers[i].values[row, :, :n]]) for i in layers]
            )  # (layers, 2, kv_heads, n, head_dim)
            records.append(
                {
                    "tokens": sequence,
                    "labels": logits.argmax(-1),
                    "kv": kv.to(torch.float16),
                    "top_ids": top.indices.to(torch.int32),
                    "top_logp": top.values.to(torch.float16),
                }
            )
        print(f"[teacher] {min(start + batch_size, len(sequences))}/{len(sequences)} sequences", flush=True)
    return records


def cached_teacher_pass(target, sequences: list[list[int]], layers: list[int], name: str) -> list[dict]:
    """``teacher_pass``, kept under ``$SVIP_HOME/glide`` by a digest of its inputs (a retrain skips it)."""
    digest = hashlib.sha256(json.dumps([name, layers, sequences]).encode()).hexdigest()[:16]
    return cached(
        cache_root() / "glide" / f"{name}-teacher-{digest}.pt", lambda: teacher_pass(target, sequences, layers)
    )


def _batch(records: list[dict], rng: random.Random, block: int | None):
    """Right-padded tokens, labels (-100 at pads and before ``first``), target KV per draft layer, per-query limits,
    and the soft labels (``top_ids``/``top_logp``, zero where there is no label)."""
    width = max(len(r["tokens"]) for r in records)
    ids = torch.zeros(len(records), width, dtype=torch.long)
    labels = torch.full((len(records), width), -100, dtype=torch.long)
    mask = torch.zeros(len(records), width, dtype=torch.long)
    limits = torch.zeros(len(records), width, dtype=torch.long)
    n_layers, _, kv_heads, _, head_dim = records[0]["kv"].shape
    kv = torch.zeros(n_layers, 2, len(records), kv_heads, width, head_dim)
    top_k = records[0]["top_ids"].shape[-1]
    top_ids = torch.zeros(len(records), width, top_k, dtype=torch.long)
    top_logp = torch.zeros(len(records), width, top_k)
    for row, record in enumerate(records):
        n = len(record["tokens"])
        first = record.get("first", 0)
        ids[row, :n] = torch.tensor(record["tokens"])
        labels[row, first:n] = record["labels"][first:]
        mask[row, :n] = 1
        size = block or rng.randint(1, 8)
        limits[row] = block_limits(width, size, 0 if block else rng.randrange(size))
        kv[:, :, row, :, :n] = record["kv"].float()
        top_ids[row, :n] = record["top_ids"].long()
        top_logp[row, :n] = record["top_logp"].float()
    return ids, labels, mask, limits, kv, top_ids, top_logp


def distillation_loss(logits: torch.Tensor, labels: torch.Tensor, top_ids, top_logp, soft: bool) -> torch.Tensor:
    """Cross-entropy to the target: its greedy token (hard), or its top-k distribution renormalised (soft).

    The soft labels carry what the target thought of the runners-up, which
    is more to learn from per position than the argmax alone.
    """
    if not soft:
        return torch.nn.functional.cross_entropy(logits, labels)
    weights = top_logp.softmax(-1)
    return -(weights * logits.log_softmax(-1).gather(-1, top_ids)).sum(-1).mean()


def _forward(draft: GlideDraft, ids, mask, limits, kv, *, cross: bool = True):
    """Hidden states of the draft over a batch (training's block-wise cross-attention)."""
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    if cross:
        draft.context.keys, draft.context.values, draft.context.limits = list(kv[:, 0]), list(kv[:, 1]), limits
    try:
        return draft.model.model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
    finally:
        draft.context.clear()


def chain_acceptance(
    predicted: torch.Tensor, labels: torch.Tensor, tokens: list[int], chain: int, first: int
) -> list[int]:
    """Accepted length of each ``chain``-token block over greedy text (block starts ``first + chain * i``).

    A block's queries see the target before the block's start, as a round
    of drafting does; only blocks where the text is the target's greedy
    continuation are judged (there, drafting the text's tokens is exact).
    """
    accepted = []
    n = len(tokens)
    for start in range(first, n - chain, chain):
        span = range(start, start + chain)
        if any(int(labels[p]) != tokens[p + 1] for p in span):
            continue
        count = 0
        while count < chain and int(predicted[start + count]) == int(labels[start + count]):
            count += 1
        accepted.append(count)
    return accepted


@torch.no_grad()
def evaluate(
    draft: GlideDraft, records: list[dict], prompts: list[int], *, cross: bool = True, full_base=None
) -> dict:
    """Held-out top-1 agreement (answer positions) and mean accepted length of 4-token chains."""
    hits = total = 0
    accepted: list[int] = []
    for record, prompt_length in zip(records, prompts):
        first = prompt_length - 1  # the position that predicts the first answer token
        ids, labels, mask, _, kv, _, _ = _batch([record], random.Random(0), EVAL_CHAIN)
        limits = block_limits(ids.shape[1], EVAL_CHAIN, (-first) % EVAL_CHAIN)[None]  # blocks start at `first`
        if full_base is not None:
            logits = full_base(input_ids=ids).logits[0]
        else:
            hidden = _forward(draft, ids, mask, limits, kv, cross=cross)
            logits = draft.model.lm_head(hidden)[0]
        predicted = logits.argmax(-1)
        answer = slice(first, len(record["tokens"]))
        hits += int((predicted[answer] == record["labels"][answer]).sum())
        total += len(record["tokens"]) - first
        accepted += chain_acceptance(predicted, record["labels"], record["tokens"], EVAL_CHAIN, first)
    return {
        "top1": hits / max(total, 1),
        "mean_accepted_of_4": sum(accepted) / max(len(accepted), 1),
        "positions": total,
        "chains": len(accepted),
    }


def train(
    draft: GlideDraft,
    lora,
    records,
    held_out,
    held_prompts,
    *,
    epochs,
    batch_size,
    lr,
    seed,
    soft: int = 0,
) -> list[dict]:
    """AdamW over the cross-attention blocks, and with LoRA its updates and the final norm; held-out record per epoch.

    A draft without LoRA (a deep draft: its base model's layers all kept)
    keeps its base's final norm too, so only the blocks learn. The loss
    starts at each record's ``first`` position (0, or with
    ``--loss-from answer`` the last prompt position: where drafting happens);
    ``soft`` is how many of the target's top tokens the soft labels keep (0: the greedy token only).
    """
    parameters = [p for p in draft.blocks.parameters()] + [
        p for layer in lora.values() for p in (layer.lora_a, layer.lora_b)
    ]
    if lora:
        parameters.append(draft.model.model.norm.weight)
    for parameter in draft.parameters():
        parameter.requires_grad_(False)
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    steps = epochs * math.ceil(len(records) / batch_size)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    history, step, started = [], 0, time.perf_counter()
    for epoch in range(epochs):
        order = list(range(len(records)))
        rng.shuffle(order)
        draft.train()
        losses = []
        for first in range(0, len(order), batch_size):
            batch = _batch([records[i] for i in order[first : first + batch_size]], rng, None)
            ids, labels, mask, limits, kv, top_ids, top_logp = batch
            hidden = _forward(draft, ids, mask, limits, kv)
            keep = labels >= 0
            logits = draft.model.lm_head(hidden[keep]).float()
            loss = distillation_loss(logits, labels[keep], top_ids[keep][:, :soft], top_logp[keep][:, :soft], soft > 0)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            step += 1
            if step % 20 == 0:
                print(
                    f"[train] epoch {epoch + 1} step {step}/{steps} loss {sum(losses[-20:]) / 20:.3f} "
                    f"({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
        draft.eval()
        result = evaluate(draft, held_out, held_prompts)
        result.update(epoch=epoch + 1, train_loss=sum(losses) / len(losses), seconds=time.perf_counter() - started)
        print(f"[eval] {result}", flush=True)
        history.append(result)
    for parameter in draft.parameters():
        parameter.requires_grad_(False)
    return history


def _teacher_name(args) -> str:
    """The target as the teacher's caches name it (the EAGLE head's rule: they share the templated answers)."""
    from ..eagle.train_head import teacher_name

    return teacher_name(args.target, args.teacher_dtype)


def _answers(args, target, tokenizer) -> list[dict]:
    """``{"prompt", "answer"}`` ids: the target's answers to templated prompts (EAGLE head data), cached or new."""
    from ..eagle.train_head import templated_answers

    path = Path(args.data) if args.data else cache_root() / "eagle" / f"{_teacher_name(args)}-head-data.pt"
    examples = templated_answers(
        target,
        tokenizer,
        path=path,
        count=args.prompts,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=16,
    )
    return [{"prompt": r["prompt"], "answer": r["answer"]} for r in examples]


def _texts(args, target, tokenizer) -> tuple[list[dict], dict]:
    """The training mix and its description for the record: ``--answers`` of the target's own answers
    (seeded choice), then ``--corpus-tokens`` of pinned source text (``corpus``), each chunk as an exchange."""
    from ..corpus import CHUNK_TOKENS, LEAD_TOKENS, sample_chunks, source_roots, source_versions, to_exchange

    answers = [] if args.answers == 0 else _answers(args, target, tokenizer)
    if args.answers is not None and args.answers < len(answers):
        answers = [answers[i] for i in sorted(random.Random(args.seed).sample(range(len(answers)), args.answers))]
    texts = [dict(t, source="answers") for t in answers]
    described = {
        "answers": f"{len(answers)} of the target's greedy answers ({args.teacher_dtype}) to templated prompts in no "
        "eval set (EAGLE head data)"
    }
    if args.corpus_tokens:
        roots = source_roots()
        chunks = sample_chunks(tokenizer, roots, tokens=args.corpus_tokens, seed=args.seed)
        texts += [dict(to_exchange(tokenizer, chunk), source=f"corpus:{chunk.source}") for chunk in chunks]
        described["corpus"] = {
            "what": f"{len(chunks)} chunks (<= {CHUNK_TOKENS} tokens, one per file, every other Python chunk its "
            "docstrings) of the Python standard library and the pinned packages' sources, each as 'Continue this "
            f"text' quoting its first {LEAD_TOKENS} tokens, the answer the rest",
            "versions": source_versions(roots),
            "files": [[c.source, c.path, c.sha256] for c in chunks],
        }
    return texts, described


def _held_out(texts: list[dict], seed: int) -> list[int]:
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    return sorted(order[: max(1, len(order) // 20)])


def _question_texts(target_name: str, target, tokenizer, questions: str, per_category: int, max_new_tokens: int):
    """The target's greedy answers to an evaluation set's first turns (to score the draft off its training text).

    Kept under ``$SVIP_HOME/glide`` (they depend only on the target and the
    questions), so scoring a second draft does not answer them again.
    """
    from svip.eval.datasets import load_questions
    from svip.eval.datasets import per_category as first_per_category
    from svip.eval.prompts import encode_prompt

    def answer() -> list[dict]:
        texts = []
        for question in first_per_category(load_questions(questions), per_category):
            prompt = encode_prompt(tokenizer, question.turns[0])
            output = target.generate(torch.tensor([prompt]), max_new_tokens=max_new_tokens, do_sample=False)
            texts.append({"prompt": prompt, "answer": output[0, len(prompt) :].tolist()})
        return texts

    key = hashlib.sha256(json.dumps([questions, per_category, max_new_tokens]).encode()).hexdigest()[:16]
    return cached(cache_root() / "glide" / f"{target_name}-answers-{key}.pt", answer)  # questions may be a path


def _evaluate_saved(args) -> int:
    """The trained draft's scores with its cross-attention on and off: on the held-out texts, or on a question set."""
    from svip.adapters.glide.loading import load_glide_draft
    from svip.eval.loading import Placement, load_model, load_tokenizer

    target = load_model(args.target)
    tokenizer = load_tokenizer(args.target)
    if args.questions:
        texts = _question_texts(args.target, target, tokenizer, args.questions, args.per_category, args.max_new_tokens)
        chosen = list(range(len(texts)))
    else:
        saved = json.loads((Path(args.out) / "training.json").read_text()).get("arguments", {})
        for name, value in saved.items():  # the held-out texts of the mix the draft was trained on
            setattr(args, name, value)
        texts, _ = _texts(args, target, tokenizer)
        chosen = _held_out(texts, args.seed)
    draft = load_glide_draft(args.out, target, Placement())
    sequences = [texts[i]["prompt"] + texts[i]["answer"] for i in chosen]
    records = teacher_pass(target, sequences, list(draft.config.target_layers))
    prompts = [len(texts[i]["prompt"]) for i in chosen]
    result = {
        "texts": args.questions or "held-out training texts",
        "with_cross_attention": evaluate(draft, records, prompts),
        "cross_attention_off": evaluate(draft, records, prompts, cross=False),
        "full_base": evaluate(draft, records, prompts, full_base=load_model(args.base)),
    }
    print(json.dumps(result, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="where to write glide.json, glide.safetensors and training.json")
    parser.add_argument("--target", default="qwen2.5-coder-1.5b")
    parser.add_argument("--base", default="qwen2.5-coder-0.5b", help="the draft model whose first layers are kept")
    parser.add_argument("--layers", type=int, default=4, help="the base model's first layers to keep")
    parser.add_argument(
        "--cross-layers",
        type=int,
        help="cross-attention on the top N kept layers only (default: every kept layer, as upstream); with --layers "
        "= the base's depth and --lora-rank 0 this is a deep draft: the base model plus what the target's cache adds",
    )
    parser.add_argument("--lora-rank", type=int, default=16, help="0: no LoRA (the kept layers stay as they are)")
    parser.add_argument("--lora-alpha", type=float, default=32.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompts", type=int, default=448, help="prompts to answer when no cached text exists")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--answers", type=int, help="use this many of the cached answers (seeded choice; default all)")
    parser.add_argument(
        "--corpus-tokens",
        type=int,
        default=0,
        help="add this many tokens of pinned source text (stdlib, transformers, torch: svip.training.corpus)",
    )
    parser.add_argument(
        "--soft-top-k",
        type=int,
        default=0,
        help="train on the target's top-k next-token distribution (0: its greedy token only, as the shipped draft); "
        "the teacher keeps 8",
    )
    parser.add_argument(
        "--loss-from",
        choices=("all", "answer"),
        default="all",
        help="positions the loss is taken at: every one (the shipped draft), or from the last prompt position on",
    )
    parser.add_argument(
        "--teacher-dtype",
        choices=("fp32", "bf16"),
        default="fp32",
        help="the target's precision for the teacher pass and its answers (bf16: what a bf16 run's draft reads)",
    )
    parser.add_argument("--data", help="cached answers (default: $SVIP_HOME/eagle/TARGET-head-data.pt)")
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="only score the draft already in OUT (with and without its cross-attention, and the full base model) "
        "on the held-out texts, or with --questions on the target's greedy answers to an evaluation set",
    )
    parser.add_argument("--questions", help="with --evaluate: a question set (e.g. glide, spec-bench)")
    parser.add_argument("--per-category", type=int, default=2, help="with --questions: questions per column")
    args = parser.parse_args(argv)
    if not 0 <= args.soft_top_k <= TEACHER_TOP_K:
        parser.error(f"--soft-top-k must be 0..{TEACHER_TOP_K} (the teacher pass keeps {TEACHER_TOP_K})")
    from svip.eval.loading import Placement, load_model, load_tokenizer

    if args.evaluate:
        return _evaluate_saved(args)

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    target = load_model(args.target, Placement(dtype=args.teacher_dtype))
    texts, described = _texts(args, target, load_tokenizer(args.target))
    held = set(_held_out(texts, args.seed))
    base = load_model(args.base, Placement(), layers=args.layers)
    draft = GlideDraft.new(
        base,
        target,
        layers=args.layers,
        base_name=args.base,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        cross_layers=args.cross_layers,
    )
    sequences = [t["prompt"] + t["answer"] for t in texts]
    records = cached_teacher_pass(target, sequences, list(draft.config.target_layers), _teacher_name(args))
    if args.loss_from == "answer":
        for record, text in zip(records, texts):
            record["first"] = len(text["prompt"]) - 1  # the loss starts where drafting does
    teacher_seconds = time.perf_counter() - started
    del target
    held_out = [records[i] for i in sorted(held)]
    held_prompts = [len(texts[i]["prompt"]) for i in sorted(held)]
    training = [records[i] for i in range(len(records)) if i not in held]
    baselines = {"cut_base_untrained": evaluate(draft, held_out, held_prompts, cross=False)}
    full = load_model(args.base)
    baselines["full_base"] = evaluate(draft, held_out, held_prompts, full_base=full)
    del full
    print(f"[baselines] {baselines}", flush=True)
    lora = add_lora(draft.model.model.layers, args.lora_rank, args.lora_alpha) if args.lora_rank else {}
    history = train(
        draft,
        lora,
        training,
        held_out,
        held_prompts,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        soft=args.soft_top_k,
    )
    record = {
        "target": args.target,
        "base": args.base,
        "layers": args.layers,
        "cross_layers": draft.config.crossed,
        "teacher_dtype": args.teacher_dtype,
        "target_layers": list(draft.config.target_layers),
        "text": described,
        "arguments": {
            "answers": args.answers,
            "corpus_tokens": args.corpus_tokens,
            "seed": args.seed,
            "teacher_dtype": args.teacher_dtype,
        },
        "loss": (
            f"cross-entropy to the target's top-{args.soft_top_k} next-token distribution (renormalised)"
            if args.soft_top_k
            else "cross-entropy to the target's greedy next token"
        )
        + (", answer positions only" if args.loss_from == "answer" else ", every position"),
        "sequences": len(texts),
        "sequences_by_source": dict(collections.Counter(t["source"] for t in texts)),
        "held_out_by_source": dict(collections.Counter(texts[i]["source"] for i in sorted(held))),
        "train_sequences": len(training),
        "held_out_sequences": len(held_out),
        "tokens": sum(len(r["tokens"]) for r in records),
        "answer_tokens": sum(len(t["answer"]) for t in texts),
        "lora_rank": args.lora_rank,
        "lora_alpha": args.lora_alpha,
        "epochs": history,
        "baselines_held_out": baselines,
        "trained_parameters": sum(p.numel() for p in draft.blocks.parameters())
        + sum(layer.lora_a.numel() + layer.lora_b.numel() for layer in lora.values()),
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "teacher_seconds": teacher_seconds,
        "total_cpu_seconds": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
    }
    draft.save(args.out, lora_state(lora), record)
    print(f"[done] wrote {args.out}; {record['total_cpu_seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
