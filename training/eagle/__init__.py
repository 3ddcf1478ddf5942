"""Training EAGLE heads (``svip.training.eagle``); the EAGLE tooling that measures stays in ``svip.eval.eagle``.

- ``train_head``     -- train an EAGLE-1/2-format head (or, ``--eagle3``, an EAGLE-3 head) on the target's own outputs
- ``train_eagle3``   -- EAGLE-3's training-time test (TTT)
- ``head_data``      -- the self-distilled data: the target's answers with their features, soft labels
- ``train_prompts``  -- the head's templated and source-quoting training prompts (disjoint from every eval set)
- ``styled_prompts`` -- training prompts in the benchmark's five styles (none is an eval question)
"""
