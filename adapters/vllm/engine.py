"""One vLLM engine in this process (``LLM``, offline), started on first use and shut down with the run.

The kind keeps one engine per role: target-only (no ``speculative_config``),
the plugin's speculative engine (``draft_model`` with ``additional_config``'s
``"svip"`` entry: every rule, chosen per request, capped by its K) and, for
vLLM's own fixed K, one stock engine per K. They live in the run's
``ModelSet`` and ``close()`` shuts each down (``atexit`` too, so Ctrl-C
leaves no engine behind).

vLLM on CPU is configured through the environment before it is imported:
``VLLM_ENABLE_V1_MULTIPROCESSING=0`` keeps the engine core in this process
(the per-request statistics the proposer keeps are read here),
``VLLM_CPU_OMP_THREADS_BIND`` gives it this process's cores, and
``VLLM_CPU_KVCACHE_SPACE`` its KV cache (GiB). Intel OpenMP in ``LD_PRELOAD``
is what vLLM asks for speculative decoding on CPU; ``make vllm-svip`` sets it.
"""

from __future__ import annotations

import atexit
import gc
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

__all__ = ["Answer", "EngineConfig", "VllmEngine", "VllmEngineError", "configure_environment"]

KV_CACHE_GIB = 1  # per engine: 64-token answers to Spec-Bench prompts need far less


class VllmEngineError(RuntimeError):
    """An engine that could not start or failed a request, with vLLM's reason."""


def configure_environment(threads: int | None = None) -> None:
    """vLLM's CPU settings for an in-process engine (a value already set by the user wins)."""
    cores = threads or len(os.sched_getaffinity(0))
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 1}")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(KV_CACHE_GIB))
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


@dataclass(frozen=True)
class EngineConfig:
    """What one engine loads: the target, and for a speculative engine the draft, its K and the plugin's rule."""

    target: str
    dtype: str = "bfloat16"
    draft: str | None = None
    num_speculative_tokens: int = 0  # 0: target-only
    svip: bool = False  # the plugin's per-request rules (additional_config={"svip": {...}})
    min_open: float = 0.5  # the plugin's batch stop (config.py)
    uniform: bool = False  # the plugin's rounds: one length for the batch (config.py)
    max_num_seqs: int = 1
    max_model_len: int = 4096
    seed: int = 0
    eager: bool = True  # no torch.compile / CUDA graphs: minutes of compiling per engine on 2 CPU cores
    extra: dict = field(default_factory=dict)  # more LLM(...) keyword arguments (a GPU preset's)

    def llm_kwargs(self) -> dict:
        kwargs: dict = {
            "model": self.target,
            "dtype": self.dtype,
            "max_model_len": self.max_model_len,
            "max_num_seqs": self.max_num_seqs,
            "seed": self.seed,
            "enforce_eager": self.eager,
            "disable_log_stats": False,  # per-request timestamps (queued -> last token)
            **self.extra,
        }
        if self.num_speculative_tokens:
            if not self.draft:
                raise VllmEngineError("a speculative engine needs a draft model")
            kwargs["speculative_config"] = {
                "method": "draft_model",
                "model": self.draft,
                "num_speculative_tokens": self.num_speculative_tokens,
            }
            kwargs["per_request_spec_decode_metrics"] = "detailed"  # vLLM's own drafted/accepted per verify step
        if self.svip:
            kwargs["additional_config"] = {"svip": {"min_open": self.min_open, "uniform": self.uniform}}
        return kwargs


@dataclass(frozen=True)
class Answer:
    """One request's result: its tokens, vLLM's request id, its latency and vLLM's own per-step record."""

    tokens: list[int]
    request_id: str
    latency: float  # vLLM's queued -> last token (else the batch's wall time)
    drafted: list[int] | None  # per verify step, as vLLM counted it (None: no speculative decoding)
    accepted: list[int] | None

    @classmethod
    def of(cls, output, batch_seconds: float) -> "Answer":
        stats = getattr(output, "metrics", None)
        queued, last = getattr(stats, "queued_ts", 0.0), getattr(stats, "last_token_ts", 0.0)
        completion = output.outputs[0]
        steps = getattr(completion, "spec_decode_metrics", None)
        return cls(
            tokens=list(completion.token_ids),
            request_id=output.request_id,
            latency=last - queued if queued and last > queued else batch_seconds,
            drafted=list(steps.per_step_drafted) if steps is not None else None,
            accepted=list(steps.per_step_accepted) if steps is not None else None,
        )


class VllmEngine:
    """``LLM`` for one role; ``generate`` takes token ids and returns token ids (the harness tokenises)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.llm = None

    def start(self) -> "VllmEngine":
        configure_environment()
        try:
            from vllm import LLM
        except ImportError as error:
            raise VllmEngineError(
                f"vLLM is not importable here ({error}); run vllm methods in its venv: "
                "third_party/vllm-venv/bin/svip (made by `make vllm-setup`)"
            ) from None
        try:
            self.llm = LLM(**self.config.llm_kwargs())
        except Exception as error:  # vLLM raises many types at start-up; the reason is in the message
            raise VllmEngineError(f"vLLM engine failed to start ({self.describe()}): {error}") from error
        atexit.register(self.close)
        return self

    def describe(self) -> str:
        c = self.config
        if not c.num_speculative_tokens:
            return "target-only"
        plugin = f" + svip plugin{' (uniform)' if c.uniform else ''}" if c.svip else ""
        return f"draft_model K={c.num_speculative_tokens}" + plugin

    @property
    def drafter(self):
        """The engine's proposer (in-process engine core only): where the plugin keeps per-request statistics."""
        core = self.llm.llm_engine.engine_core
        core = getattr(core, "engine_core", core)
        return core.model_executor.driver_worker.worker.model_runner.drafter

    def generate(self, prompts: Sequence[Sequence[int]], params: Sequence) -> list["Answer"]:
        """One ``Answer`` per prompt, the prompts submitted together."""
        from vllm.inputs import TokensPrompt

        if self.llm is None:
            self.start()
        start = time.perf_counter()
        try:
            outputs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], list(params), use_tqdm=False
            )
        except ValueError as error:  # vLLM's own input checks (too long a prompt, a bad parameter)
            raise VllmEngineError(str(error)) from error
        seconds = time.perf_counter() - start
        return [Answer.of(o, seconds) for o in outputs]

    def close(self) -> None:
        if self.llm is None:
            return
        llm, self.llm = self.llm, None
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:  # noqa: BLE001 -- shutting down; nothing to recover
            pass
        del llm
        gc.collect()
