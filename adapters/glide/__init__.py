"""GliDe with a CaPE (+SVIP): the pinned upstream, patched.

- ``upstream`` -- clone at the pin, apply ``patches/glide-svip.patch`` (``make glide-setup``)

Upstream is CUDA-only (``flash_attn`` at module level) and has no license: it is
cloned at build time and never committed. Its GPU run (Table 3) is
``svip.eval.glide.bench`` (``make glide-svip``); ``tests/test_glide.py`` runs the
patched draft loop on CPU.
"""
