"""Write a base-model directory that the pinned EAGLE (transformers 4.53) loads as is.

Our prepared checkpoints are saved by transformers 5, whose ``config.json``
spells RoPE as ``rope_parameters`` (4.53 would silently fall back to
theta = 10000) and whose tokenizer class is 5.x-only. EAGLE also reads the
embedding from ``model.safetensors.index.json`` and builds a *slow* tokenizer.
So the export rewrites those few files and links the weights (no torch or
transformers calls, so it runs in either environment); ``svip.eval.eagle.export``
adds the zoo's names and the command line.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

from svip.runtime import cache_root

__all__ = ["export_base", "exported_base", "safetensors_names"]

_MARKER = "svip-eagle-export.json"


def safetensors_names(path: Path) -> list[str]:
    """Tensor names in a safetensors file, read from its JSON header only."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return sorted(name for name in header if name != "__metadata__")


def _v4_config(config: dict) -> dict:
    config = dict(config)
    rope = config.pop("rope_parameters", None) or {}
    if "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    if rope.get("rope_type", "default") != "default":
        config["rope_scaling"] = rope
    if "dtype" in config:
        config["torch_dtype"] = config.pop("dtype")
    config["transformers_version"] = "4.53.1"
    return config


def _slow_tokenizer_files(source: Path, out: Path) -> None:
    """vocab.json + merges.txt for GPT2Tokenizer, from a byte-level BPE tokenizer.json."""
    tokenizer = json.loads((source / "tokenizer.json").read_text())
    model = tokenizer["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"{source}: only byte-level BPE tokenizers are exported (found {model.get('type')})")
    (out / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    shutil.copy(source / "tokenizer.json", out / "tokenizer.json")
    config = json.loads((source / "tokenizer_config.json").read_text())
    special = {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token") if k in config}
    added = {
        str(t["id"]): {k: t[k] for k in ("content", "lstrip", "rstrip", "normalized", "single_word", "special")}
        for t in tokenizer.get("added_tokens", [])
    }
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "GPT2Tokenizer",
                "add_prefix_space": False,
                "model_max_length": 8192,
                "added_tokens_decoder": added,
                **special,
            },
            indent=1,
        )
    )
    if (source / "chat_template.jinja").exists():
        shutil.copy(source / "chat_template.jinja", out / "chat_template.jinja")


def export_base(source: Path, out: Path) -> Path:
    """Export ``source`` (a prepared zoo directory) to ``out``; returns ``out``. Idempotent."""
    source, out = Path(source), Path(out)
    if (out / _MARKER).exists() and json.loads((out / _MARKER).read_text()).get("source") == str(source.resolve()):
        return out
    weights = source / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} missing: prepare the model first (python -m svip.eval.models prepare)")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    config = json.loads((source / "config.json").read_text())
    (staging / "config.json").write_text(json.dumps(_v4_config(config), indent=1))
    if (source / "generation_config.json").exists():
        generation = json.loads((source / "generation_config.json").read_text())
        generation["transformers_version"] = "4.53.1"
        (staging / "generation_config.json").write_text(json.dumps(generation, indent=1))
    os.symlink(weights.resolve(), staging / "model.safetensors")
    index = {"metadata": {}, "weight_map": {name: "model.safetensors" for name in safetensors_names(weights)}}
    (staging / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    _slow_tokenizer_files(source, staging)
    (staging / _MARKER).write_text(json.dumps({"source": str(source.resolve())}))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def exported_base(name_or_path: str, directory: str) -> str:
    """``name_or_path`` whose prepared ``directory`` is one of ours (a zoo name) -> its export, made on first use.

    ``directory == name_or_path`` (a path or hub id given as is) is returned unchanged.
    """
    if directory == name_or_path:
        return name_or_path
    return str(export_base(Path(directory), cache_root() / "eagle" / name_or_path))
