"""SVIP inside vLLM: a per-request entropy stop in its draft-model and EAGLE proposers (a plugin, no fork).

``rounds`` is framework-free (the per-row decisions); ``proposer`` and
``plugin`` import vLLM and run inside its venv (``make vllm-setup``);
``kind`` is the harness's ``vllm`` method kind, which drives an engine in
that venv through ``worker``.
"""
