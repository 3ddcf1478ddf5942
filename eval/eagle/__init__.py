"""EAGLE tooling that needs the harness (zoo, datasets, prompts), kept out of ``svip.adapters.eagle``.

- ``export``      -- a base-model directory the pinned EAGLE (transformers 4.53) loads, from a zoo model
- ``train_head``  -- train an EAGLE-1/2-format head on the target's own outputs (``make eagle-head``)
- ``train_prompts`` -- the head's training prompts (disjoint from every eval set)
- ``check``       -- JSON outputs of EAGLE methods for cross-checkout tests
"""
