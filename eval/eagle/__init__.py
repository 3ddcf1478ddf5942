"""EAGLE tooling that needs the harness (zoo, datasets, prompts), kept out of ``svip.adapters.eagle``.

- ``export``        -- a base-model directory the pinned EAGLE (transformers 4.53) loads, from a zoo model
- ``vocab_entropy`` -- how far the reduced draft vocabulary's entropy is from the full one's, on real drafts
- ``check``         -- JSON outputs of EAGLE methods for cross-checkout tests

Training a head is ``svip.training.eagle`` (``make eagle-head``).
"""
