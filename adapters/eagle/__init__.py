"""EAGLE-2 with SVIP: drive the pinned, patched upstream ``EaModel`` from the shared harness.

- ``method``    -- the ``eagle2[:tree]`` / ``eagle2[:tree]+svip`` method strings (no torch, no EAGLE needed)
- ``kind``      -- the registry entry for ``eagle2``
- ``generator`` -- ``EagleGenerator``: EAGLE-2 rounds and plain decoding on one ``EaModel``
- ``upstream``  -- clone at the pin, apply ``patches/eagle2-svip.patch`` (``make eagle-setup``)

Only ``method`` is imported here: the rest needs EAGLE's environment. Tooling that needs the
harness (base-model export, head training, cross-checkout checks) lives in ``svip.eval.eagle``.
"""

from .method import EAGLE_PREFIX, EagleMethod, is_eagle_method

__all__ = ["EAGLE_PREFIX", "EagleMethod", "is_eagle_method"]
