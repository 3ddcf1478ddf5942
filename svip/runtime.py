"""Where svip keeps its caches, the dtype names every loader accepts, and which CPU it runs on."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["DTYPES", "cache_root", "cpu_fields", "cpu_flags"]

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cache_root() -> Path:
    """``$SVIP_HOME`` (default ``~/.cache/svip``): prepared models, bigram tables, calibrations."""
    return Path(os.environ.get("SVIP_HOME", Path.home() / ".cache" / "svip")).expanduser()


def cpu_fields(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's ``/proc/cpuinfo`` fields ({} where there is none).

    Here, not in eval, because an adapter needs it too (vLLM's CPU wheel
    checks for AVX2 before it installs) and adapters never import eval.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # the first processor is enough
            continue
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first processor's ISA flags (empty where unknown)."""
    return set(cpu_fields(path).get("flags", "").split())
