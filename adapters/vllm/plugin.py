"""The ``vllm.general_plugins`` entry point: swap in the proposers with the per-request stop.

vLLM calls ``register()`` in every process it starts, before it builds a
model runner. The runner picks its drafter class from names imported into
``vllm.v1.worker.gpu_model_runner`` (the CPU runner is a subclass of it), so
``register`` rebinds those two names to subclasses. The subclasses behave
exactly as upstream unless the engine's ``additional_config`` has an
``"svip"`` entry, so installing this package changes no other engine.
Safe to call more than once (vLLM may).
"""

from __future__ import annotations

__all__ = ["register"]


def register() -> None:
    from vllm.v1.worker import gpu_model_runner

    from .proposer import SvipDraftModelProposer, SvipEagleProposer

    gpu_model_runner.DraftModelProposer = SvipDraftModelProposer
    gpu_model_runner.EagleProposer = SvipEagleProposer
