"""The GliDe draft: a real draft model's first layers, each followed by cross-attention to the target's KV cache.

Built for a target by ``GlideDraft.new`` (training) or read back by
``GlideDraft.from_pretrained`` (drafting). The base model is a transformers
causal LM cut to its first ``layers`` blocks (``keep_first_layers``), so
its own embeddings, self-attention cache, final norm and LM head are used
as they are and ``CachedCausalLM`` drives it like any draft. The top
``cross_layers`` of them (default: all) are each followed by a
cross-attention block; block ``i`` reads target layer ``target_layers[i]``
(upstream's choice: the top layers, aligned from the top).

Two shapes of draft come out of this. Upstream's: a few layers, all with
cross-attention, re-tuned by LoRA (cheap, but trained from a cut model).
A *deep* one: every layer of a real draft model kept as it is, blocks on
its top layers only, so it starts as that draft (blocks output zero) and
training can only add what the target's cache tells it.

A directory holds ``glide.json`` (this config) and ``glide.safetensors``:
the cross-attention blocks (``blocks.*``), the LoRA updates of the kept
layers (``lora.*``, merged at load) and the tuned final norm (``norm.weight``).
The base weights are not copied: ``base`` names the model to cut.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .cross_attention import CrossAttention, CrossContext
from .lora import merge_lora

__all__ = ["CONFIG_FILE", "GlideConfig", "GlideDraft", "WEIGHTS_FILE", "target_geometry"]

CONFIG_FILE = "glide.json"
WEIGHTS_FILE = "glide.safetensors"


def target_geometry(target) -> dict[str, int]:
    """What the cross-attention must match in the target: its attention shape, depth and vocabulary."""
    config = target.config
    heads = int(config.num_attention_heads)
    return {
        "hidden_layers": int(config.num_hidden_layers),
        "heads": heads,
        "kv_heads": int(getattr(config, "num_key_value_heads", None) or heads),
        "head_dim": int(getattr(config, "head_dim", None) or config.hidden_size // heads),
        "vocab": int(target.get_output_embeddings().weight.shape[0]),
    }


@dataclass(frozen=True)
class GlideConfig:
    base: str  # the draft model whose first layers are kept (zoo name, local path or hub id)
    layers: int
    target_layers: tuple[int, ...]
    target: dict  # target_geometry() of the target it was trained for
    lora_rank: int = 0
    lora_alpha: float = 0.0
    cross_layers: int | None = None  # how many of the top kept layers get a cross-attention block (None: all)

    def __post_init__(self) -> None:
        if not 1 <= self.crossed <= self.layers:
            raise ValueError(f"glide: cross-attention on {self.crossed} of {self.layers} layers")
        if len(self.target_layers) != self.crossed:
            raise ValueError(
                f"glide: {self.crossed} cross-attention blocks but {len(self.target_layers)} target layers"
            )

    @property
    def crossed(self) -> int:
        """The number of cross-attention blocks (on the top ``crossed`` kept layers)."""
        return self.layers if self.cross_layers is None else self.cross_layers

    @classmethod
    def read(cls, directory: str | Path) -> "GlideConfig":
        path = Path(directory) / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory} is not a GliDe draft directory (no {CONFIG_FILE}; make glide-draft)")
        data = json.loads(path.read_text())
        data["target_layers"] = tuple(data["target_layers"])
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class GlideDraft(nn.Module):
    """``model`` (the cut base model, driven as any causal LM) + one ``CrossAttention`` per crossed layer."""

    def __init__(self, model, config: GlideConfig, rotary: nn.Module) -> None:
        super().__init__()
        self.model, self.config = model, config
        geometry = config.target
        hidden = int(model.config.hidden_size)
        eps = float(getattr(model.config, "rms_norm_eps", 1e-6))
        self.blocks = nn.ModuleList(
            CrossAttention(hidden, geometry["heads"], geometry["kv_heads"], geometry["head_dim"], eps)
            for _ in range(config.crossed)
        )
        self.rotary = rotary  # the target's RoPE: queries are rotated as the target rotated its keys
        self.context = CrossContext()
        layers = model.model.layers
        if len(layers) != config.layers:
            raise ValueError(f"glide: the base model has {len(layers)} layers, the draft keeps {config.layers}")
        first_crossed = config.layers - config.crossed
        for index, layer in enumerate(layers[first_crossed:]):
            layer.register_forward_hook(self._hook(index), with_kwargs=True)

    def _hook(self, index: int):
        def add_cross_attention(module, args, kwargs, output):
            context = self.context
            if context.keys is None:
                return output
            context.calls.append(index)
            rope = self.rotary(output, kwargs["position_ids"])
            keys, values = context.keys[index], context.values[index]
            return output + self.blocks[index](output, keys, values, context.limits, rope)

        return add_cross_attention

    def read_target(self, cache, limits: torch.Tensor) -> None:
        """Point the blocks at a target ``DynamicCache`` (no copy) with per-query limits ``(batch, q)``."""
        layers = cache.layers
        self.context.keys = [layers[i].keys for i in self.config.target_layers]
        self.context.values = [layers[i].values for i in self.config.target_layers]
        self.context.limits = limits

    @classmethod
    def new(
        cls,
        base,
        target,
        *,
        layers: int,
        base_name: str,
        lora_rank: int = 0,
        lora_alpha: float = 0.0,
        cross_layers: int | None = None,
    ) -> "GlideDraft":
        """A fresh draft (blocks output zero: the cut base model) whose top ``cross_layers`` (default: all
        ``layers``) read the target's top layers."""
        geometry = target_geometry(target)
        if geometry["vocab"] != int(base.get_output_embeddings().weight.shape[0]):
            raise ValueError("glide: the base draft and the target have different vocabularies")
        crossed = layers if cross_layers is None else cross_layers
        if crossed > geometry["hidden_layers"]:
            raise ValueError(
                f"glide: {crossed} cross-attention blocks, but the target has only {geometry['hidden_layers']} layers"
            )
        top = geometry["hidden_layers"] - crossed
        config = GlideConfig(
            base_name, layers, tuple(range(top, top + crossed)), geometry, lora_rank, lora_alpha, cross_layers
        )
        return cls(base, config, copy.deepcopy(target.model.rotary_emb))

    @classmethod
    def from_pretrained(cls, directory: str | Path, base, target) -> "GlideDraft":
        """Load a trained draft onto ``base`` (already cut to ``layers``, plain fp32 ``nn.Linear``) for ``target``."""
        from safetensors.torch import load_file

        config = GlideConfig.read(directory)
        geometry = target_geometry(target)
        if geometry != config.target:
            raise ValueError(f"{directory} was trained for a target with {config.target}; this target has {geometry}")
        state = load_file(str(Path(directory) / WEIGHTS_FILE))
        lora = {k[len("lora.") :]: v for k, v in state.items() if k.startswith("lora.")}
        if lora:
            merge_lora(base.model.layers, lora, config.lora_alpha / config.lora_rank)
        with torch.no_grad():
            if "norm.weight" in state:
                base.model.norm.weight.copy_(state["norm.weight"].to(base.model.norm.weight.dtype))
        draft = cls(base, config, copy.deepcopy(target.model.rotary_emb))
        blocks = {k[len("blocks.") :]: v.float() for k, v in state.items() if k.startswith("blocks.")}
        draft.blocks.load_state_dict(blocks)
        return draft

    def save(self, directory: str | Path, lora: dict[str, torch.Tensor], record: dict[str, Any] | None = None) -> None:
        """Write ``glide.json`` and the trained tensors (fp16); ``lora`` as from ``lora_state``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {f"blocks.{k}": v for k, v in self.blocks.state_dict().items()}
        state.update({f"lora.{k}": v for k, v in lora.items()})
        state["norm.weight"] = self.model.model.norm.weight
        save_file(
            {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(directory / WEIGHTS_FILE)
        )
        data = asdict(self.config)
        data["target_layers"] = list(self.config.target_layers)
        (directory / CONFIG_FILE).write_text(json.dumps(data, indent=1) + "\n")
        if record is not None:
            (directory / "training.json").write_text(json.dumps(record, indent=1) + "\n")
