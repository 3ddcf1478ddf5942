"""EAGLE-2 with SVIP: drive the pinned, patched upstream ``EaModel`` from the shared harness.

- ``method``    -- the ``eagle2`` / ``eagle2-svip`` method strings (no torch, no EAGLE needed)
- ``export``    -- a base-model directory the pinned EAGLE (transformers 4.53) loads
- ``generator`` -- ``EagleGenerator``: EAGLE-2 rounds and plain decoding on one ``EaModel``
- ``upstream``  -- clone at the pin, apply ``patches/eagle2-svip.patch`` (``make eagle-setup``)
- ``train_head``-- train an EAGLE-1/2-format head on the target's own outputs (``make eagle-head``)

Only ``method`` is imported here: the rest needs EAGLE's environment.
"""

from .method import EAGLE_PREFIX, EagleMethod, is_eagle_method

__all__ = ["EAGLE_PREFIX", "EagleMethod", "is_eagle_method"]
