"""Registry kind ``vllm:k=K`` / ``vllm+<policy>``: the rule inside vLLM's drafter (its venv: ``make vllm-setup``).

A vLLM run brings its own models (``load_models``): vLLM loads the run's
``--target`` and ``--draft`` directories itself, so no torch model is loaded
beside it, and the run's ``target-only`` is vLLM with no speculation -- the
baseline every vLLM method is compared with. Engines start on first use,
one per role (``engine_for``), and shut down when the run's models close.
"""

from __future__ import annotations

import statistics
import time
from typing import Mapping

from svip.grammar import MethodSpec
from svip.method import InputError
from svip.sampling import SamplingConfig
from svip.spec import make_policy

from ..kinds import MethodKind, ModelSet, Option
from ..loading import ModelRequest, load_tokenizer, resolve
from .engine import EngineConfig, VllmEngine, VllmEngineError
from .method import VLLM, VllmMethod, VllmSpec

__all__ = ["VLLM_KIND", "engine_for", "load_vllm_models"]

CONTEXT = 4096  # tokens per request: prompt + new tokens
DTYPES = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}
MAX_DRAFT = Option("vllm_max_draft", "K of the plugin's engine: every vllm+<policy> rule's cap (default 16)", "16", "K")
MIN_OPEN = Option(
    "vllm_min_open", "the plugin's batch stop: end the draft loop once fewer than this share of rows draft (0.5)", "0.5", "X"
)
EAGER = Option("vllm_eager", "1: vLLM without torch.compile/CUDA graphs (the CPU default); 0: with (a GPU)", "1", "0|1")
MAX_BATCH = Option("vllm_max_batch", "max_num_seqs of every vLLM engine (default 1; the batch bench sets it)", "1", "N")


def _int_option(models: ModelSet, option: Option) -> int:
    raw = models.options.get(option.name) or option.default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InputError(f"{option.flag} must be an integer >= 1, got {raw!r}") from None
    if value < 1:
        raise InputError(f"{option.flag} must be an integer >= 1, got {value}")
    return value


def _share_option(models: ModelSet, option: Option) -> float:
    raw = models.options.get(option.name) or option.default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{option.flag} must be a number in [0, 1], got {raw!r}")
    return value


def engine_for(models: ModelSet, method: VllmSpec | None) -> VllmEngine:
    """The run's engine for a method's role (target-only, vLLM's fixed K, or the plugin's), started on first use."""
    request = models.request
    if request is None:
        raise InputError("vllm methods need the run's model request (--target, --draft)")
    if method is not None and not request.draft:
        raise InputError(f"{method.text} needs a draft model (--draft)")
    if method is None:
        k, svip, key = 0, False, "target-only"
    elif method.k is not None:
        k, svip, key = method.k, False, f"k={method.k}"
    else:
        k, svip, key = _int_option(models, MAX_DRAFT), True, "svip-uniform" if method.uniform else "svip"
        wanted = getattr(make_policy(method.policy), "k", 0)  # a constant rule's fixed length
        if wanted > k:
            raise InputError(f"{method.text} drafts {wanted} tokens, above the plugin engine's K={k} (--vllm-max-draft)")
    config = EngineConfig(
        target=resolve(request.target),
        draft=resolve(request.draft) if k else None,
        dtype=DTYPES[request.dtype],
        num_speculative_tokens=k,
        svip=svip,
        max_num_seqs=_int_option(models, MAX_BATCH),
        max_model_len=CONTEXT,
        eager=(models.options.get(EAGER.name) or EAGER.default) != "0",
        min_open=_share_option(models, MIN_OPEN),
        uniform=method is not None and method.uniform,
    )

    def start() -> VllmEngine:
        try:
            return VllmEngine(config).start()
        except VllmEngineError as error:
            raise InputError(str(error)) from None

    return models.shared(f"vllm-engine:{key}", start)


def load_vllm_models(request: ModelRequest, sampling: SamplingConfig) -> ModelSet:
    """A set with the run's tokenizer; vLLM loads the weights itself, per engine, on first use."""
    if request.dtype not in DTYPES:
        raise InputError(f"vllm runs take --dtype {', '.join(DTYPES)}, got {request.dtype}")
    models = ModelSet(
        tokenizer=load_tokenizer(request.target),
        sampling=sampling,
        options=dict(request.options),
        request=request,
        loaded_by=VLLM,
    )
    models.target_only = lambda: VllmMethod(engine_for(models, None), None, sampling, CONTEXT)
    return models


def _canonical(spec: MethodSpec) -> str:
    return VllmSpec.from_spec(spec).text


def _build(spec: MethodSpec, models: ModelSet) -> VllmMethod:
    method = VllmSpec.from_spec(spec)
    return VllmMethod(engine_for(models, method), method, models.sampling, CONTEXT)


def _check(spec: MethodSpec, options: Mapping[str, str | None]) -> None:
    VllmSpec.from_spec(spec)
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise InputError(
            "vllm methods run in vLLM's own venv: make vllm-setup, then third_party/vllm-venv/bin/svip bench ..."
        ) from None


def measure_verify_curve(engine: VllmEngine, prompt: list[int], sizes=(1, 2, 4, 8, 16), repeats: int = 5) -> dict:
    """vLLM's target verify(n)/step at the prompt's depth: a cached prefix plus n new tokens, one token out.

    With prefix caching (vLLM's default) a request whose prompt extends a
    cached one computes only its new tokens, as verifying n drafted tokens
    does; its wall time is one scheduler step (plus vLLM's per-request cost,
    the same for every n, so the ratios understate the spread a little).
    """
    from vllm import SamplingParams

    one = SamplingParams(max_tokens=1, temperature=0.0, detokenize=False)
    block = engine.llm.llm_engine.vllm_config.cache_config.block_size
    blocks = max(1, len(prompt) // block)  # only whole blocks are cached: the prefix must end on one
    prompt = (list(prompt) * (blocks * block // len(prompt) + 1))[: blocks * block]
    engine.llm.generate([{"prompt_token_ids": prompt}], one, use_tqdm=False)  # cache the prefix
    seconds: dict[int, float] = {}
    for n in sizes:
        runs = []
        for r in range(repeats):
            extra = [(prompt[(i * 7 + r * 13 + n) % len(prompt)]) for i in range(n)]  # new tokens each time
            start = time.perf_counter()
            engine.llm.generate([{"prompt_token_ids": prompt + extra}], one, use_tqdm=False)
            runs.append(time.perf_counter() - start)
        seconds[n] = statistics.median(runs)
    step = seconds[1]
    return {
        "engine": "vllm",
        "tool": "prefix-cached prompt + n tokens, 1 new token",
        "depth": len(prompt),
        "repeats": repeats,
        "target_step_s": step,
        "verify_over_step": {str(n): s / step for n, s in seconds.items() if n != 1},
    }


def _cost_curve(models: ModelSet, prompt: list[int]) -> dict:
    return measure_verify_curve(engine_for(models, None), prompt)


VLLM_KIND = MethodKind(
    VLLM,
    _canonical,
    _build,
    options=(MAX_DRAFT, MAX_BATCH, MIN_OPEN, EAGER),
    check=_check,
    load_models=load_vllm_models,
    cost_curve=_cost_curve,
    needs="draft",
    help="vllm:k=3 (vLLM's fixed K) | vllm+svip|svip-adaptive|constant:k=3|...: the rule inside vLLM's draft-model "
    "proposer, per request (the plugin; its own venv: make vllm-setup)",
)

