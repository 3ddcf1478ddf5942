"""svip.adapters: SVIP wired into speculative-decoding frameworks, one module each.

- ``vanilla`` -- a streamlined draft/verify loop (the SVIP repo's vanilla-sd) on transformers models
- ``hf``      -- the policy inside transformers' own assisted generation (``enable``/``disable``)

Adapters import the ``svip`` core; the core never imports an adapter.
"""
