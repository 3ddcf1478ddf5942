"""Self-distilled training data for an EAGLE head, features captured while the target answers.

Why capture features during generation: EAGLE's head learns from the
target's final hidden states over its own answers. Computing them in a
second, teacher-forced pass over prompt + answer costs as much again as the
answers did; the greedy loop here already produces every one of them (the
state at position t is computed when token t is fed), so it keeps them.
Rows are left-padded and decoded together (one forward per step for the
whole batch), which on a CPU is what makes thousands of answers affordable.

The format: one record per prompt, ``{"prompt": ids, "answer": ids,
"features": (len(prompt) + len(answer), hidden) fp16}``. Text that is not
the target's own (pinned source chunks) gets its features from one
teacher-forced pass instead (``teacher_features``); either way the head's
token loss reads the target's ``soft_labels`` at each position.
"""

from __future__ import annotations

import time

import torch

from svip.eval.prompts import encode_prompt

__all__ = ["answer_with_features", "soft_labels", "teacher_features"]


@torch.no_grad()
def _answer_batch(model, prompts: list[list[int]], max_new_tokens: int, pad_id: int, eos_ids: set[int]) -> list[dict]:
    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    from transformers import DynamicCache

    cache = DynamicCache()
    out = model.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
    hidden = [out.last_hidden_state]
    answers: list[list[int]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    for _ in range(max_new_tokens):
        token = model.lm_head(hidden[-1][:, -1]).argmax(-1)
        for row, t in enumerate(token.tolist()):
            if not done[row]:
                answers[row].append(t)
                done[row] = t in eos_ids
        # feed the token even after the last step: its feature is the head's input for the position after it
        mask = torch.cat([mask, torch.ones(len(prompts), 1, dtype=mask.dtype)], dim=1)
        positions = positions[:, -1:] + 1
        out = model.model(
            input_ids=token[:, None], attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
        )
        hidden.append(out.last_hidden_state)
        if all(done):
            break
    states = torch.cat(hidden, dim=1)  # (batch, width + steps, hidden)
    records = []
    for row, prompt in enumerate(prompts):
        n = len(prompt) + len(answers[row])
        features = states[row, width - len(prompt) : width - len(prompt) + n]
        records.append({"prompt": prompt, "answer": answers[row], "features": features.to(torch.float16).clone()})
    return records


def answer_with_features(
    model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int, progress=print
) -> list[dict]:
    """Greedy answers of ``model`` to chat ``prompts`` with the final hidden state of every position."""
    encoded = [encode_prompt(tokenizer, p) for p in prompts]  # ids under transformers 4 and 5 alike
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths share a batch: less padding
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_ids = {tokenizer.eos_token_id} | {
        tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>") if t in tokenizer.get_vocab()
    }
    records: dict[int, dict] = {}
    start = time.perf_counter()
    for first in range(0, len(order), batch_size):
        chunk = order[first : first + batch_size]
        for index, record in zip(chunk, _answer_batch(model, [encoded[i] for i in chunk], max_new_tokens, pad_id, eos_ids)):
            records[index] = record
        progress(f"[data] {len(records)}/{len(prompts)} answers, {time.perf_counter() - start:.0f} s")
    return [records[i] for i in range(len(prompts))]


@torch.no_grad()
def teacher_features(
    model, sequences: list[list[int]], *, batch_size: int = 8, layers: tuple[int, ...] | None = None, progress=print
) -> list[torch.Tensor]:
    """The final hidden state at every position of each sequence, teacher-forced (fp16; right-padded batches).

    ``layers``: instead, the inputs of those decoder layers, concatenated (EAGLE-3 reads three of them).
    """
    features = []
    for first in range(0, len(sequences), batch_size):
        batch = sequences[first : first + batch_size]
        width = max(map(len, batch))
        ids = torch.tensor([s + [0] * (width - len(s)) for s in batch])  # right padding: real positions from 0
        out = model.model(input_ids=ids, output_hidden_states=layers is not None)
        # hidden_states[i] is the input of layer i (the embeddings for i = 0)
        hidden = out.last_hidden_state if layers is None else torch.cat([out.hidden_states[i] for i in layers], -1)
        features += [hidden[row, : len(s)].to(torch.float16).clone() for row, s in enumerate(batch)]
        progress(f"[teacher] {len(features)}/{len(sequences)} sequences")
    return features


@torch.no_grad()
def soft_labels(weight: torch.Tensor, features: torch.Tensor, top_k: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's ``top_k`` next tokens and their log-probabilities at each position of ``features``.

    ``weight``: the target's dense LM-head weight (taken before ``pack_linears``, which keeps no dense copy).
    Why keep only a few: the full distribution (152k tokens) per position
    would not fit in memory for a few hundred thousand positions, and the
    head's loss needs the runners-up, not the tail.
    """
    logits = torch.nn.functional.linear(features.to(weight.dtype), weight).float()
    top = logits.log_softmax(-1).topk(top_k, dim=-1)
    return top.indices.to(torch.int32), top.values.to(torch.float16)
