"""Registry kind ``llamacpp[+constant|confidence|svip|svip-adaptive]``: the rule inside llama.cpp's drafter.

The kind owns its resources: the GGUF files (converted from the run's
``--target``/``--draft`` by the pinned converter, or given with
``--llamacpp-target``/``--llamacpp-draft``), the binaries (``make
llamacpp-setup``, or ``--llamacpp-bin``) and its ``llama-server`` processes,
one per role: a target-only server with no draft model (what
a user runs without speculation) and a speculative one whose rule is chosen
per request, so one server serves every speculative method of the run. They
start on first use, live in the run's ``ModelSet`` and stop when it closes.
Its baseline is llama.cpp's own target-only on the same weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from svip.grammar import MethodSpec
from svip.method import InputError

from ..kinds import MethodKind, ModelSet, Option
from .gguf import DTYPE_OUTTYPE, OUTTYPES, GgufError, gguf_for
from .method import LLAMACPP, LlamaCppMethod, LlamaCppSpec
from .server import LlamaServer, LlamaServerError, ServerConfig
from .speed import start_checked

__all__ = ["LLAMACPP_KIND"]

CONTEXT = 4096  # tokens per slot: prompt + new tokens


def _bin_dir(options: Mapping[str, str | None]) -> Path:
    from .upstream import build_dir

    return Path(options.get("llamacpp_bin") or build_dir() / "bin")


def _binary(options: Mapping[str, str | None], name: str) -> Path:
    path = _bin_dir(options) / name
    if not path.exists():
        raise InputError(f"{path} not found: build llama.cpp with make llamacpp-setup (or give --llamacpp-bin DIR)")
    return path


def _gguf_type(models: ModelSet) -> str:
    """``--llamacpp-gguf``, else the GGUF type of the run's ``--dtype`` (the same weights as the torch engine)."""
    given = models.options.get("llamacpp_gguf")
    if given:
        if given.lower() not in OUTTYPES:
            raise InputError(f"--llamacpp-gguf must be one of {', '.join(OUTTYPES)}, got {given!r}")
        return given.lower()
    return DTYPE_OUTTYPE[models.request.dtype if models.request is not None else "fp32"]


def _weights(models: ModelSet, role: str, gguf: str) -> Path:
    """The role's GGUF: the option's file, else the run's model converted to ``gguf`` (cached)."""
    given = models.options.get(f"llamacpp_{role}")
    name = given or (getattr(models.request, role, None) if models.request is not None else None)
    if not name:
        raise InputError(f"llamacpp: no {role} model (--{role} or --llamacpp-{role} FILE.gguf)")
    try:
        return gguf_for(name, gguf)
    except GgufError as error:
        raise InputError(str(error)) from None


def _threads() -> int:
    import torch

    return torch.get_num_threads()  # the torch engine's threads: both engines get the same cores


def server(
    models: ModelSet,
    gguf: str,
    *,
    drafts: bool,
    draft_gguf: str | None = None,
    args: tuple[str, ...] = (),
    curve: dict | None = None,
) -> LlamaServer:
    """The run's server for (weights, role), started on first use and closed with the models.

    One speculative server per draft type and set of server flags (``llamacpp:draft=q4_0,window=256+...``,
    ``LlamaCppSpec.server_args``): a server loads one draft and runs it one way, and its rule is chosen per request.
    Started with llama-bench's ``curve``, it is started again while it decodes slower than the curve predicts
    (``speed.start_at_speed``), and its checks go into ``curve["servers"]``, stored with the run.
    """
    draft_gguf = draft_gguf or gguf
    role = f"speculative:{draft_gguf}:{' '.join(args)}" if drafts else "target-only"

    def launch() -> LlamaServer:
        config = ServerConfig(
            binary=_binary(models.options, "llama-server"),
            model=_weights(models, "target", gguf),
            draft=_weights(models, "draft", draft_gguf) if drafts else None,
            threads=_threads(),
            ctx_size=CONTEXT,
            extra_args=args,
        )
        try:
            return LlamaServer(config).start()
        except LlamaServerError as error:
            raise InputError(str(error)) from None

    def start() -> LlamaServer:
        return start_checked(launch, curve, gguf, draft_gguf if drafts else None, args, prefix="bench")

    return models.shared(f"llamacpp-server:{gguf}:{role}", start)


def _canonical(spec: MethodSpec) -> str:
    return LlamaCppSpec.from_spec(spec).text


def _build(spec: MethodSpec, models: ModelSet) -> LlamaCppMethod:
    method = LlamaCppSpec.from_spec(spec)
    running = server(
        models, _gguf_type(models), drafts=method.drafts, draft_gguf=method.draft_gguf, args=method.server_args()
    )
    return LlamaCppMethod(running, method, models.sampling, CONTEXT)


def _check(spec: MethodSpec, options: Mapping[str, str | None]) -> None:
    LlamaCppSpec.from_spec(spec)
    _binary(options, "llama-server")


def _other_draft_types(models: ModelSet, gguf: str) -> list[str]:
    """The draft GGUF types the run's methods name with ``draft=`` besides the run's own."""
    named = (spec.draft_gguf for spec in _llamacpp_specs(models) if spec.drafts)
    return sorted({draft for draft in named if draft and draft != gguf})


def _cost_curve(models: ModelSet, prompt: list[int]) -> dict:
    """llama-bench's curve on the run's weights, plus the step of every other draft type the run uses."""
    from .costs import draft_step_over, measure_cost_curve

    gguf = _gguf_type(models)
    has_draft = bool(models.options.get("llamacpp_draft") or (models.request and models.request.draft))
    bench = _binary(models.options, "llama-bench")
    common = {"threads": _threads(), "depth": len(prompt)}
    curve = {
        "gguf": gguf,
        **measure_cost_curve(
            bench, _weights(models, "target", gguf), _weights(models, "draft", gguf) if has_draft else None, **common
        ),
    }
    others = _other_draft_types(models, gguf) if has_draft else []
    if others:
        curve["draft_over_step_by_gguf"] = {
            draft: draft_step_over(bench, _weights(models, "draft", draft), curve["target_step_s"], **common)
            for draft in others
        }
    for spec in _llamacpp_specs(models):  # every server of the run, started now and checked against the curve
        server(models, gguf, drafts=spec.drafts, draft_gguf=spec.draft_gguf, args=spec.server_args(), curve=curve)
    return curve


def _llamacpp_specs(models: ModelSet) -> list[LlamaCppSpec]:
    return [LlamaCppSpec.from_spec(spec) for spec in models.methods if spec.kind == LLAMACPP]


LLAMACPP_KIND = MethodKind(
    LLAMACPP,
    _canonical,
    _build,
    options=(
        Option(
            "llamacpp_bin",
            "directory of the patched llama.cpp binaries (default: make llamacpp-setup's build)",
            metavar="DIR",
        ),
        Option(
            "llamacpp_target", "target GGUF for llamacpp methods (default: --target converted by the pinned converter)"
        ),
        Option("llamacpp_draft", "draft GGUF for llamacpp+<policy> methods (default: --draft converted)"),
        Option(
            "llamacpp_gguf",
            "GGUF type converted for llamacpp methods: bf16, q8_0, f32, f16 (default: --dtype's)",
            metavar="TYPE",
        ),
    ),
    check=_check,
    cost_curve=_cost_curve,
    baseline=LLAMACPP,
    needs="target",  # the torch draft is not used: llama.cpp loads its own GGUF of it
    help="llamacpp[+constant:k=3|confidence:p_min=0.75|svip|svip-adaptive]: the rule inside "
    "the patched llama.cpp's own drafter, through llama-server (make llamacpp-setup); llamacpp alone = its target-only",
)
