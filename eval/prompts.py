"""Turn a user prompt into token ids: the model's own chat template, an fschat template, or raw text.

The paper's models (Vicuna, LLaMA-2-chat) were evaluated with FastChat's
conversation templates (``vicuna_v1.1``, ``llama-2``), which their
tokenizers do not carry; ``template=NAME`` uses those. ``history`` holds
earlier (user, assistant) turns for multi-turn questions (MT-Bench).
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["PromptError", "encode_prompt", "fschat_template_names", "stop_token_ids"]

Turn = tuple[str, str]  # (user message, assistant answer)


def fschat_template_names() -> list[str]:
    """Conversation templates FastChat (``fschat``) registers."""
    from fastchat.conversation import conv_templates

    return sorted(conv_templates)


def _fschat_prompt(name: str, text: str, system: str | None, history: Sequence[Turn]) -> str:
    try:
        from fastchat.conversation import get_conv_template
    except ImportError as error:  # pragma: no cover - fschat is a declared dependency
        raise PromptError(f"template {name!r} needs fschat (pip install fschat): {error}") from None
    try:
        conversation = get_conv_template(name)
    except KeyError:
        raise PromptError(f"unknown fschat template {name!r}; known: {', '.join(fschat_template_names())}") from None
    if system is not None:
        conversation.set_system_message(system)
    for user, answer in history:
        conversation.append_message(conversation.roles[0], user)
        conversation.append_message(conversation.roles[1], answer)
    conversation.append_message(conversation.roles[0], text)
    conversation.append_message(conversation.roles[1], None)
    return conversation.get_prompt()


class PromptError(ValueError):
    """An empty prompt, or a chat template the tokenizer does not have."""


def encode_prompt(
    tokenizer,
    text: str,
    *,
    chat: bool = True,
    system: str | None = None,
    template: str | None = None,
    history: Sequence[Turn] = (),
) -> list[int]:
    """Token ids for one user turn (after ``history``).

    ``chat=False`` encodes the raw text (the paper's vanilla runs; earlier
    turns are joined in front); ``template`` names an fschat conversation
    template; otherwise the tokenizer's own chat template is used.
    """
    if not text or not text.strip():
        raise PromptError("empty prompt: give some text")
    if not chat:
        joined = "\n".join([part for turn in history for part in turn] + [text])
        return list(tokenizer(joined, add_special_tokens=True)["input_ids"])
    if template is not None:
        return list(tokenizer(_fschat_prompt(template, text, system, history), add_special_tokens=True)["input_ids"])
    if not getattr(tokenizer, "chat_template", None):
        raise PromptError("this tokenizer has no chat template; pass --template NAME (fschat) or --raw")
    messages = [{"role": "system", "content": system}] if system else []
    for user, answer in history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": text})
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
