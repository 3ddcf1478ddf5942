"""GliDe with a CaPE (+SVIP): the pinned upstream patched, and a native GliDe draft on our engine.

Upstream (CUDA-only, no license: cloned at build time, never committed):

- ``upstream``        -- clone at the pin, apply ``patches/glide-svip.patch`` (``make glide-setup``);
  its GPU run (Table 3) is ``svip.eval.glide.bench`` (``make glide-svip``), ``tests/test_glide.py``
  runs the patched draft loop on CPU.

Native (runs on CPU, any transformers draft model as the base):

- ``cross_attention`` -- a draft layer's attention over one target layer's KV cache (+ a zero sink)
- ``lora``            -- low-rank updates of the kept base layers (trained small, merged at load)
- ``draft``           -- ``GlideDraft``: a base model's first layers + one cross-attention block each; files
- ``proposer``        -- ``GlideProposer``: the draft loop reading the target's cache as it stands
- ``kind``            -- registry kinds ``glide[+<policy>]`` and ``glide-cape[:bins,nodes][+<policy>]``

Training is ``svip.training.glide.train_draft`` (``make glide-draft``); the shipped
draft for Qwen2.5-Coder-1.5B is ``drafts/qwen2.5-coder-1.5b``.
"""
