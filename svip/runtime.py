"""Where svip keeps its caches, and the dtype names every loader accepts."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["DTYPES", "cache_root"]

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cache_root() -> Path:
    """``$SVIP_HOME`` (default ``~/.cache/svip``): prepared models, bigram tables, calibrations."""
    return Path(os.environ.get("SVIP_HOME", Path.home() / ".cache" / "svip")).expanduser()
