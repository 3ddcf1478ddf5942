"""The pin's text, recorded with every GGUF and run so a number names the llama.cpp it came from."""

from __future__ import annotations

from .upstream import LLAMACPP

__all__ = ["pin_text"]


def pin_text() -> str:
    """The pin's non-comment lines (``source``, ``sha256``, ...), or ``unpinned``."""
    if not LLAMACPP.pin.exists():
        return "unpinned"
    lines = [line.split("#", 1)[0].strip() for line in LLAMACPP.pin.read_text().splitlines()]
    return "; ".join(line for line in lines if line)
