"""Expensive training inputs kept on disk: computed once, staged, reloaded by every later run."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import torch

__all__ = ["cached"]

T = TypeVar("T")


def cached(path: Path, compute: Callable[[], T]) -> T:
    """``torch.load(path)`` if it exists, else ``compute()`` saved there (staged, so never a half-written cache)."""
    if path.exists():
        print(f"[cache] {path}", flush=True)
        return torch.load(path)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(value, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)
    return value
