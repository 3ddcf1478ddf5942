"""Turn a user prompt into token ids: the model's own chat template, or raw text."""

from __future__ import annotations

__all__ = ["PromptError", "encode_prompt", "stop_token_ids"]


class PromptError(ValueError):
    """An empty prompt, or a chat template the tokenizer does not have."""


def encode_prompt(tokenizer, text: str, *, chat: bool = True, system: str | None = None) -> list[int]:
    """Token ids for one user turn; ``chat=False`` encodes the raw text (the paper's vanilla runs)."""
    if not text or not text.strip():
        raise PromptError("empty prompt: give some text")
    if not chat:
        return list(tokenizer(text, add_special_tokens=True)["input_ids"])
    if not getattr(tokenizer, "chat_template", None):
        raise PromptError("this tokenizer has no chat template; pass --raw to encode the prompt as plain text")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return [int(t) for t in ids]


def stop_token_ids(tokenizer, model=None) -> set[int]:
    """EOS ids from the generation config (may list several) and the tokenizer."""
    ids: set[int] = set()
    candidates = [getattr(getattr(model, "generation_config", None), "eos_token_id", None), tokenizer.eos_token_id]
    for value in candidates:
        if value is None:
            continue
        ids.update(value if isinstance(value, (list, tuple)) else [value])
    return {int(t) for t in ids}
