"""Train an EAGLE-1/2 head (fc + one decoder layer) for a base model, on its own answers and pinned text.

Why a head is trained here at all: EAGLE heads are published only for 7B+
models, which do not run on two CPU cores. The recipe is EAGLE's: the head
reads the target's last hidden state at position t and the embedding of
token t+1 and predicts the hidden state at t+1; the loss is SmoothL1 on that
feature plus 0.1 x cross-entropy to the target's next-token distribution
(its top-8, ``soft_labels``) through the frozen LM head, with uniform noise
on the input features. The text, none of it from an eval set: the target's
greedy answers to templated prompts (``build_prompts``) and, with
``--source-prompts``, to prompts quoting pinned sources' documentation
(``source_prompts``), features kept as it answers (``head_data``); with
``--corpus-tokens``, pinned source text teacher-forced (``svip.training.corpus``),
as EAGLE itself trains on fixed ShareGPT text. Templated answers alone made
a head that matched held-out answers to the same templates (70%) but not
the benchmark's (28.5%). After each epoch the head is scored on the target's
answers to the benchmark's own prompts (``--probe``, never trained on) and
saved, so an interrupted run keeps its finished epochs.

Two options make a head for a bigger target affordable on a CPU and small
enough to ship: ``--intermediate-size`` (the head's MLP; EAGLE copies the
target's, 8960 for Qwen2.5-1.5B) and ``--draft-vocab N`` (EAGLE-3's reduced
draft vocabulary in EAGLE-2's format: the loss, and at run time the tree's
LM head, cover the N tokens the target emits most; written to
``draft_vocab.json`` and applied by ``set_draft_vocab`` of the patch).
``--teacher-dtype bf16 --train-dtype bf16`` make the features and the
training several times faster on a CPU with bf16 matrix units, and match
what a bf16 run's head reads.

``--eagle3`` trains an EAGLE-3 head instead (upstream's ``cnets.Model``: three
target layers in, its own draft vocabulary out), with EAGLE-3's
training-time test (``train_eagle3``); the same data and ``train`` loop.

The model class is upstream's own ``eagle.model.cnets1.Model``, and the
checkpoint is written in upstream's format (``config.json`` +
``model.safetensors``, fp16, no embedding), so ``EaModel.from_pretrained(
use_eagle3=False)`` loads it unchanged. Run in EAGLE's environment::

    third_party/eagle-venv/bin/python -m svip.training.eagle.train_head BASE_DIR OUT_DIR
    third_party/eagle-venv/bin/python -m svip.training.eagle.train_head BASE_DIR OUT_DIR --evaluate  # score a head
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
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

from ..cache import cached
from .head_data import answer_with_features, soft_labels, teacher_features
from .styled_prompts import styled_prompts
from .train_prompts import build_prompts, source_prompts

__all__ = ["draft_vocabulary", "teacher_name", "templated_answers", "train", "main"]


@functools.cache
def _eval_turns() -> frozenset[str]:
    """Every turn of every shipped question file: prompts that must not be trained on (read once a run)."""
    from svip.eval.datasets import BUILTIN_SETS, load_questions

    return frozenset(turn for name in BUILTIN_SETS for question in load_questions(name) for turn in question.turns)


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def prompt_answers(
    base, tokenizer, prompts: list[str], *, kind: str, max_new_tokens: int, teacher: str, batch_size: int = 64
) -> list[dict]:
    """The target's answers (with features) to ``prompts``, cached under ``kind`` and the prompts' digest."""
    path = cache_root() / "eagle" / f"{teacher}-{kind}-answers-{_digest(prompts, max_new_tokens)}.pt"
    return cached(
        path,
        lambda: answer_with_features(base, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size),
    )


def corpus_texts(base, tokenizer, *, tokens: int, seed: int, teacher: str) -> tuple[list[dict], dict]:
    """Pinned source chunks as chat exchanges (``svip.training.corpus``) with teacher-forced features, cached.

    The text is not the target's own, so the labels are the target's
    predictions over it (``soft_labels``), as EAGLE's own recipe trains on
    fixed ShareGPT text rather than on the target's answers.
    """
    from ..corpus import sample_chunks, source_roots, source_versions, to_exchange

    roots = source_roots()
    chunks = sample_chunks(tokenizer, roots, tokens=tokens, seed=seed)
    texts = [to_exchange(tokenizer, chunk) for chunk in chunks]
    sequences = [t["prompt"] + t["answer"] for t in texts]
    path = cache_root() / "eagle" / f"{teacher}-corpus-features-{_digest(sequences)}.pt"
    features = cached(path, lambda: teacher_features(base, sequences))
    described = {
        "chunks": len(chunks),
        "versions": source_versions(roots),
        "files": [[c.source, c.path, c.sha256] for c in chunks],
    }
    return [dict(t, features=f) for t, f in zip(texts, features)], described


def probe_answers(base, tokenizer, *, questions: str, max_new_tokens: int, teacher: str) -> list[dict]:
    """The target's answers to the benchmark's own prompts (2 shortest per category): scored, never trained on."""
    from svip.eval.datasets import load_questions, per_category

    prompts = [q.turns[0] for q in per_category(load_questions(questions), 2, shortest=True)]
    path = cache_root() / "eagle" / f"{teacher}-probe-{_digest(prompts, max_new_tokens)}.pt"
    return cached(
        path, lambda: answer_with_features(base, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=16)
    )


def with_soft_labels(lm_head_weight: torch.Tensor, examples: list[dict], top_k: int = 8) -> list[dict]:
    """Each example with the target's top-k next tokens at its answer positions (from their features).

    The loss and the hits read labels at answer positions only, so the
    prompt's positions get zeros: the full LM head over them would cost as
    much again as the answers' and never be read.
    """
    for number, example in enumerate(examples):
        start = len(example["prompt"])
        ids, logp = soft_labels(lm_head_weight, example["features"][start:], top_k)
        example["top_ids"] = torch.cat([torch.zeros(start, top_k, dtype=ids.dtype), ids])
        example["top_logp"] = torch.cat([torch.zeros(start, top_k, dtype=logp.dtype), logp])
        if number % 200 == 0:
            print(f"[labels] {number}/{len(examples)} examples", flush=True)
    return examples


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
    """Right-padded (hidden[:-1], tokens[1:], target hidden[1:], loss mask over answer positions, and the
    target's soft labels for the token after each target feature: ``top_ids``/``top_logp`` [1:])."""
    length = max(len(examples[i]["prompt"]) + len(examples[i]["answer"]) for i in indices) - 1
    width = examples[indices[0]]["features"].shape[-1]
    top_k = examples[indices[0]]["top_ids"].shape[-1]
    hidden = torch.zeros(len(indices), length, width)
    target = torch.zeros(len(indices), length, width)
    tokens = torch.zeros(len(indices), length, dtype=torch.long)
    mask = torch.zeros(len(indices), length)
    top_ids = torch.zeros(len(indices), length, top_k, dtype=torch.long)
    top_logp = torch.zeros(len(indices), length, top_k)
    for row, i in enumerate(indices):
        ids = examples[i]["prompt"] + examples[i]["answer"]
        features = examples[i]["features"].float()
        n = len(ids) - 1
        hidden[row, :n], target[row, :n] = features[:-1], features[1:]
        tokens[row, :n] = torch.tensor(ids[1:])
        top_ids[row, :n], top_logp[row, :n] = examples[i]["top_ids"][1:].long(), examples[i]["top_logp"][1:].float()
        mask[row, len(examples[i]["prompt"]) - 1 : n] = 1  # predict answer positions only
    return hidden, tokens, target, mask, top_ids, top_logp


def _loss(head, lm_rows, to_draft, hidden, tokens, target, mask, top_ids, top_logp, noise: float):
    """EAGLE's loss: SmoothL1 on the predicted feature + 0.1 x cross-entropy to the target's top-k next tokens
    (renormalised over those in the draft vocabulary), at answer positions only; hits = the head's top-1 is the
    target's greedy next token (what acceptance asks).

    ``to_draft`` maps a target id to its row in ``lm_rows`` (-1 outside the draft vocabulary). The LM head runs
    over the masked rows only: over a 152k (or 32k) vocabulary it is most of a step's cost.
    """
    if noise:
        hidden = hidden + (torch.rand_like(hidden) - 0.5) * noise
    predicted = head(hidden, input_ids=tokens)
    keep = mask.bool()
    predicted, target, top_ids, top_logp = predicted[keep].float(), target[keep], top_ids[keep], top_logp[keep]
    feature_loss = F.smooth_l1_loss(predicted, target, reduction="none").mean(-1).sum() / max(1, len(predicted))
    token_loss, hits = soft_cross_entropy(F.linear(predicted, lm_rows), to_draft, top_ids, top_logp)
    return feature_loss + 0.1 * token_loss / max(1, len(predicted)), hits, float(len(predicted))


def soft_cross_entropy(logits, to_draft, top_ids, top_logp):
    """Summed cross-entropy of ``logits`` (positions, draft vocabulary) to the target's top-k next tokens,
    renormalised over those in the draft vocabulary, and the hits (the head's top-1 = the target's greedy token).

    A target token outside the draft vocabulary gets no weight and is never a hit: it can only be emitted by
    the target. Shared by the EAGLE-2 and EAGLE-3 heads' losses.
    """
    rows = to_draft[top_ids]  # (positions, k)
    weights = torch.where(rows >= 0, top_logp, torch.full_like(top_logp, -math.inf)).softmax(-1).nan_to_num(0.0)
    log_q = torch.log_softmax(logits.float(), dim=-1)
    loss = -(weights * log_q.gather(-1, rows.clamp(min=0))).sum()
    with torch.no_grad():
        hits = (rows[:, 0] == log_q.argmax(-1)).float().sum()
    return loss, hits


def eagle2_loss(head, lm_rows, to_draft, examples, indices, noise: float):
    """EAGLE-2's loss (``_loss``) on the batch of ``examples[indices]``: what ``train`` calls for an EAGLE-1/2 head."""
    return _loss(head, lm_rows, to_draft, *_batch(examples, indices), noise=noise)


def _draft_rows(vocab: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Target id -> its row among the draft vocabulary's (``vocab``, sorted ids); -1 for a token outside it."""
    to_draft = torch.full((vocab_size,), -1, dtype=torch.long)
    to_draft[vocab] = torch.arange(len(vocab))
    return to_draft


def _top1(head, batch_loss, examples, indices, batch_size: int) -> float:
    """The head's top-1 agreement with the target's greedy next token over ``indices`` (teacher-forced)."""
    head.eval()
    hits = total = 0.0
    with torch.no_grad():
        for step in range(0, len(indices), batch_size):
            _, h, n = batch_loss(examples, indices[step : step + batch_size], 0.0)
            hits, total = hits + float(h), total + n
    return hits / max(total, 1)


def train(
    head,
    batch_loss,
    examples,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    noise: float,
    seed: int,
    dtype: torch.dtype = torch.float32,
    probe: list[dict] | None = None,
    on_epoch=None,
) -> dict:
    """AdamW with warm-up and cosine decay; held-out top-1 per epoch (5% of the examples, seeded).

    ``batch_loss(examples, indices, noise) -> (loss, hits, positions)``: the head's loss on one batch
    (``eagle2_loss`` for an EAGLE-1/2 head, ``train_eagle3.ttt_loss`` for an EAGLE-3 one).

    ``dtype=torch.bfloat16`` runs the forward under autocast (fp32 master
    weights): on a CPU with bf16 matrix units that is several times faster.
    ``probe``: other examples to score after each epoch, never trained on
    (answers to the benchmark's questions: how far the head carries off its text).
    ``on_epoch(report so far)`` runs after each epoch (the checkpoint).
    """
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
    autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)
    history = []
    for epoch in range(epochs):
        head.train()
        rng.shuffle(training)
        start = time.perf_counter()
        for step in range(0, len(training), batch_size):
            with autocast:
                loss, _, _ = batch_loss(examples, training[step : step + batch_size], noise)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            optimizer.step()
            schedule.step()
            if (step // batch_size) % 50 == 0:
                print(
                    f"[train] epoch {epoch + 1}: {step}/{len(training)} examples, loss {float(loss.detach()):.3f}",
                    flush=True,
                )
        with autocast:
            record = {
                "epoch": epoch + 1,
                "held_out_top1": _top1(head, batch_loss, examples, held_out, batch_size),
                "seconds": time.perf_counter() - start,
                "last_loss": float(loss.detach()),
            }
            if probe:
                record["probe_top1"] = _top1(head, batch_loss, probe, list(range(len(probe))), batch_size)
        history.append(record)
        print(f"[train] {history[-1]}", flush=True)
        report = {"held_out_examples": len(held_out), "train_examples": len(training), "epochs": history}
        if on_epoch is not None:
            on_epoch(report)
    return report


def _evaluate(head_dir: Path, base_dir: str, lm_weight: torch.Tensor, probe: list[dict]) -> dict:
    """A saved head's top-1 agreement with the target on ``probe`` (its own draft vocabulary, if it has one)."""
    from eagle.model.cnets1 import Model
    from eagle.model.configs import EConfig
    from safetensors.torch import load_file

    head = Model(EConfig.from_pretrained(str(head_dir / "config.json")), load_emb=True, path=base_dir)
    head.load_state_dict(
        {k: v.float() for k, v in load_file(str(head_dir / "model.safetensors")).items()}, strict=False
    )
    vocab_path = head_dir / "draft_vocab.json"
    vocab = torch.tensor(json.loads(vocab_path.read_text())) if vocab_path.exists() else torch.arange(len(lm_weight))
    loss = functools.partial(eagle2_loss, head, lm_weight[vocab], _draft_rows(vocab, len(lm_weight)))
    top1 = _top1(head, loss, probe, list(range(len(probe))), batch_size=8)
    return {"probe_top1": top1, "positions": sum(len(e["answer"]) for e in probe)}


def teacher_name(model: str, dtype: str) -> str:
    """The target as the training caches name it: its name, with the precision unless fp32.

    One rule for the EAGLE head and the GliDe draft, which share the templated answers' file.
    """
    return model if dtype == "fp32" else f"{model}-{dtype}"


def templated_answers(
    base, tokenizer, *, path: Path, count: int, max_new_tokens: int, seed: int, batch_size: int
) -> list[dict]:
    """The target's answers (with features) to ``count`` of ``build_prompts``' templates, cached at ``path``.

    Resumable (the answers are the slow part); the GliDe draft's training reads the same file.
    """

    def answer() -> list[dict]:
        prompts = build_prompts(count, seed=seed, exclude=_eval_turns())
        return answer_with_features(base, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)

    return cached(path, answer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="base model directory (from svip.eval.eagle.export)")
    parser.add_argument("out", help="where to write config.json + model.safetensors (+ draft_vocab.json)")
    parser.add_argument("--prompts", type=int, default=800, help="templated prompts the target answers")
    parser.add_argument("--source-prompts", type=int, default=0, help="prompts on pinned sources' docs it answers too")
    parser.add_argument(
        "--styled-prompts", type=int, default=0, help="prompts in the benchmark's five styles (styled_prompts) too"
    )
    parser.add_argument("--corpus-tokens", type=int, default=0, help="tokens of pinned source text, teacher-forced")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--answer-batch-size", type=int, default=16, help="prompts answered together")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--noise", type=float, help="uniform noise on the input features (default: 0.2, EAGLE's; 0 with --eagle3)"
    )
    parser.add_argument(
        "--eagle3",
        action="store_true",
        help="an EAGLE-3 head (three target layers in, its own --draft-vocab out; training-time test, train_eagle3)",
    )
    parser.add_argument("--ttt-steps", type=int, default=4, help="EAGLE-3's training-time test steps (upstream: 7)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", help="start from this head's weights (a directory this script wrote; same shape)")
    parser.add_argument("--intermediate-size", type=int, help="the head's MLP width (default: the base model's)")
    parser.add_argument("--draft-vocab", type=int, default=0, help="draft from the N most frequent tokens (0: all)")
    parser.add_argument("--kernels", choices=KERNELS, default="default", help="matmul kernels while answering")
    parser.add_argument(
        "--teacher-dtype", choices=["fp32", "bf16"], default="fp32", help="the target's precision for its features"
    )
    parser.add_argument(
        "--train-dtype", choices=["fp32", "bf16"], default="fp32", help="autocast precision of the head's training"
    )
    parser.add_argument("--probe", default="eagle", help="question set whose answers are scored each epoch ('' none)")
    parser.add_argument("--data", help="where the templated answers are cached (default: under $SVIP_HOME/eagle)")
    parser.add_argument(
        "--data-only",
        action="store_true",
        help="decode and cache the training data, then stop (its own process: see the Makefile's eagle-head-qwen)",
    )
    parser.add_argument(
        "--evaluate", action="store_true", help="score the head already in OUT on --probe's answers; train nothing"
    )
    args = parser.parse_args(argv)
    if args.noise is None:
        args.noise = 0.0 if args.eagle3 else 0.2
    if args.eagle3 and args.evaluate:
        parser.error("--evaluate scores EAGLE-1/2 heads; an EAGLE-3 head's probe score is in its training.json")
    if args.ttt_steps < 1:
        parser.error("--ttt-steps must be >= 1")
    torch.manual_seed(args.seed)
    import_eagle()
    from eagle.model.cnets1 import Model
    from eagle.model.configs import EConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from svip.runtime import DTYPES

    from .train_eagle3 import eagle3_config, eagle3_layers, prepare_head, ttt_loss  # it imports this module

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    base = AutoModelForCausalLM.from_pretrained(args.base, torch_dtype=DTYPES[args.teacher_dtype]).eval()
    lm_head_weight = base.lm_head.weight.detach()  # dense, in the teacher's precision: packing keeps no copy
    lm_weight = lm_head_weight.float()  # the head's draft rows and its loss, fp32
    pack_linears(base, args.kernels)
    teacher = teacher_name(Path(args.base).name, args.teacher_dtype)
    if args.evaluate:
        probe = probe_answers(base, tokenizer, questions=args.probe, max_new_tokens=64, teacher=teacher)
        with_soft_labels(lm_head_weight, probe)
        print(json.dumps({"head": str(out), "probe": args.probe, **_evaluate(out, args.base, lm_weight, probe)}))
        return 0
    examples, sources, probe = training_examples(args, base, tokenizer, teacher, out)
    if args.data_only:
        print(f"[done] {len(examples)} examples cached under {cache_root() / 'eagle'}; no training (--data-only)")
        return 0
    with_soft_labels(lm_head_weight, examples + probe)
    if args.eagle3:
        layers = eagle3_layers(base.config.num_hidden_layers)
        for group in (g for g in (examples, probe) if g):  # the target's three layers, teacher-forced, cached
            sequences = [e["prompt"] + e["answer"] for e in group]
            path = cache_root() / "eagle" / f"{teacher}-layers-{_digest(sequences, layers)}.pt"
            for example, features in zip(
                group, cached(path, functools.partial(teacher_features, base, sequences, layers=layers))
            ):
                example["layer_features"] = features
                del example["features"]  # the last layer's: read by the labels only (1 GB here)
    del base
    data_seconds = time.perf_counter() - started
    base_config = json.loads((Path(args.base) / "config.json").read_text())
    vocab = draft_vocabulary(examples, args.draft_vocab, lm_weight.shape[0])
    vocab_ids = torch.tensor(vocab)
    to_draft = _draft_rows(vocab_ids, lm_weight.shape[0])
    if args.eagle3:
        from eagle.model.cnets import Model as Eagle3Model

        config = eagle3_config(base_config, draft_vocab=len(vocab), intermediate_size=args.intermediate_size)
        (out / "config.json").write_text(json.dumps(config, indent=1))
        head = Eagle3Model(EConfig.from_pretrained(str(out / "config.json")), load_emb=True, path=args.base)
        prepare_head(head, lm_weight, vocab_ids)
        batch_loss = functools.partial(ttt_loss, head, to_draft, steps=args.ttt_steps)
    else:
        config = dict(base_config, num_hidden_layers=1, bias=True, architectures=["LlamaForCausalLM"])
        if args.intermediate_size:
            config["intermediate_size"] = args.intermediate_size
        (out / "config.json").write_text(json.dumps(config, indent=1))
        if len(vocab) < lm_weight.shape[0]:
            (out / "draft_vocab.json").write_text(json.dumps(vocab))
        head = Model(EConfig.from_pretrained(str(out / "config.json")), load_emb=True, path=args.base)
        batch_loss = functools.partial(eagle2_loss, head, lm_weight[vocab_ids], to_draft)
    head.gradient_checkpointing = False
    record = training_record(args, examples, sources, probe, vocab, config, data_seconds)
    if args.init:
        record["init"] = load_init(head, Path(args.init))
    if args.eagle3:
        record.update(format="eagle3", layers=list(layers), ttt_steps=args.ttt_steps, lm_head="target rows, frozen")
    train(
        head,
        batch_loss,
        examples,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        noise=args.noise,
        seed=args.seed,
        dtype=DTYPES[args.train_dtype],
        probe=probe,
        on_epoch=lambda report: save_head(head, out, record, report, started),
    )
    print(f"[done] wrote {out}/model.safetensors; {record['total_cpu_seconds']:.0f} s")
    return 0


def training_examples(args, base, tokenizer, teacher: str, out: Path) -> tuple[list[dict], dict, list[dict]]:
    """The examples ``args`` ask for (templated answers, source-prompt answers, corpus text; each from its
    cache when there), what they are (for ``training.json``) and the probe's answers."""
    default = f"{out.name}-train-data.pt" if args.teacher_dtype == "fp32" else f"{teacher}-head-data.pt"
    answers = templated_answers(
        base,
        tokenizer,
        path=Path(args.data) if args.data else cache_root() / "eagle" / default,
        count=args.prompts,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=args.answer_batch_size,
    )
    examples = [dict(e, source="templated") for e in answers]
    sources: dict = {"templated": {"prompts": args.prompts, "max_new_tokens": args.max_new_tokens}}
    more = {
        "source": (args.source_prompts, source_prompts),  # kind: (count, the prompts' builder)
        "styled": (args.styled_prompts, styled_prompts),
    }
    for kind, (count, build) in more.items():
        if not count:
            continue
        answers = prompt_answers(
            base,
            tokenizer,
            build(count, seed=args.seed, exclude=_eval_turns()),
            kind=kind,
            max_new_tokens=args.max_new_tokens,
            teacher=teacher,
            batch_size=args.answer_batch_size,
        )
        examples += [dict(e, source=f"{kind}-prompts") for e in answers]
        sources[f"{kind}_prompts"] = {"prompts": count, "max_new_tokens": args.max_new_tokens}
    if args.corpus_tokens:
        texts, sources["corpus"] = corpus_texts(
            base, tokenizer, tokens=args.corpus_tokens, seed=args.seed, teacher=teacher
        )
        examples += [dict(e, source="corpus") for e in texts]
    probe = (
        probe_answers(base, tokenizer, questions=args.probe, max_new_tokens=64, teacher=teacher) if args.probe else []
    )
    return examples, sources, probe


def load_init(head, init: Path) -> dict:
    """Load a head this script saved into ``head`` (a warm start: continue training on more data rather than
    start over), and name what it was: its path, hash and its own record's last probe score."""
    from safetensors.torch import load_file

    weights = init / "model.safetensors"
    if not weights.is_file():
        raise SystemExit(f"--init {init}: no model.safetensors there")
    try:
        missing, unexpected = head.load_state_dict(load_file(str(weights)), strict=False)
    except RuntimeError as error:  # a tensor of another size
        raise SystemExit(f"--init {init}: not this head's shape ({str(error).splitlines()[-1].strip()})") from None
    missing = [k for k in missing if not k.startswith("embed_tokens")]  # saved without: EAGLE loads the base's
    if missing or unexpected:
        raise SystemExit(f"--init {init}: not this head's shape (missing {missing[:3]}, unexpected {unexpected[:3]})")
    earlier = json.loads((init / "training.json").read_text()) if (init / "training.json").is_file() else {}
    return {
        "path": str(init),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "epochs": len(earlier.get("epochs", [])),
        "probe_top1": (earlier.get("epochs") or [{}])[-1].get("probe_top1"),
    }


def training_record(args, examples, sources, probe, vocab, config, data_seconds: float) -> dict:
    """What ``training.json`` says of a head beside the per-epoch scores: its data, vocabulary and settings."""
    answer_tokens = [t for e in examples if e["source"] != "corpus" for t in e["answer"]]
    in_vocab = set(vocab)
    return dict(
        base=Path(args.base).name,
        prompts=args.prompts,
        max_new_tokens=args.max_new_tokens,
        sources=sources,
        examples_per_source=dict(collections.Counter(e["source"] for e in examples)),
        tokens=sum(len(e["prompt"]) + len(e["answer"]) for e in examples),
        answer_tokens=len(answer_tokens),
        draft_vocab=len(vocab),
        answer_tokens_in_draft_vocab=sum(t in in_vocab for t in answer_tokens) / max(1, len(answer_tokens)),
        intermediate_size=config["intermediate_size"],
        data_seconds=data_seconds,
        torch_threads=torch.get_num_threads(),
        kernels=args.kernels,
        teacher_dtype=args.teacher_dtype,
        train_dtype=args.train_dtype,
        probe=f"{len(probe)} answers (64 tokens) to {args.probe}'s 2 shortest questions per category" if probe else None,
        lr=args.lr,
        batch_size=args.batch_size,
        noise=args.noise,
        seed=args.seed,
    )


def save_head(head, out: Path, record: dict, report: dict, started: float) -> None:
    """The head (fp16, upstream's format, no embedding: EAGLE loads the base's) and its record as of the
    last epoch: an interrupted run keeps every finished epoch."""
    from safetensors.torch import save_file

    state = {
        k: v.detach().to(torch.float16 if v.is_floating_point() else v.dtype).contiguous()
        for k, v in head.state_dict().items()
        if not k.startswith("embed_tokens")
    }
    save_file(state, str(out / "model.safetensors"))
    record.update(report, parameters=sum(v.numel() for v in state.values() if v.is_floating_point()))
    record["total_cpu_seconds"] = time.perf_counter() - started
    (out / "training.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
