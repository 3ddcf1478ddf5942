"""What a registry entry is (``MethodKind``) and what its factory receives (``ModelSet``).

A kind is a parser (``canonical``: validate a parsed method string and spell
it one way) plus a factory (``build``: make a ``SpeculativeMethod`` from the
loaded models). Kinds never load models: the caller loads them once and the
kinds share them (and anything built from them, e.g. one KV-cached engine)
through ``ModelSet.shared``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from svip.grammar import MethodSpec
from svip.method import InputError, SpeculativeMethod
from svip.sampling import SamplingConfig

__all__ = ["MethodKind", "ModelSet"]


@dataclass
class ModelSet:
    """The models one run shares between all its methods."""

    target: Any = None  # transformers causal LM (None in an EAGLE run)
    draft: Any = None
    tokenizer: Any = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    record_cross_entropy: bool = False
    eagle: Any = None  # EagleGenerator: an EAGLE run (target-only decodes on its base model)
    glide: Any = None  # GlideDraft: the run's GliDe draft (glide* methods), reading the target's cache
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def shared(self, key: str, factory: Callable[[], Any]) -> Any:
        """One object per run for ``key`` (an engine, transformers' generator, Max-Gram's table)."""
        if key not in self._shared:
            self._shared[key] = factory()
        return self._shared[key]

    def require_draft(self, method: str) -> None:
        if self.eagle is not None:
            raise InputError(
                f"{method} needs the vanilla engine; this run drives EAGLE only (a run without --eagle-head)"
            )
        if self.target is None or self.draft is None:
            raise InputError(f"{method} needs a target and a draft model (--draft)")

    def cost_curve(self) -> dict:
        """This run's measured cost curve (target step, verify(n)/step, draft/step), measured once.

        The bench runner measures it on its warm-up prompt before any method
        runs (``shared("cost_curve", ...)``); otherwise it is measured here on
        a filler prompt the first time a cost-aware policy asks.
        """
        from .vanilla.costs import measure_cost_curve

        def measure() -> dict:
            engine = self.engine()
            return measure_cost_curve(engine, [t % engine.vocab_size for t in range(100, 164)])

        return self.shared("cost_curve", measure)

    def engine(self):
        """The vanilla engine on these models (shared: one KV cache per model)."""
        from .vanilla.engine import SpeculativeEngine

        if self.target is None:
            raise InputError("this method needs a target model")
        return self.shared(
            "engine",
            lambda: SpeculativeEngine(
                self.target, self.draft, sampling=self.sampling, record_cross_entropy=self.record_cross_entropy
            ),
        )


@dataclass(frozen=True)
class MethodKind:
    """One registry entry: the kind's name, its parser, its factory and what it needs."""

    name: str
    canonical: Callable[[MethodSpec], str]  # validate; return the one spelling stored in result files
    build: Callable[[MethodSpec, ModelSet], SpeculativeMethod]
    alias: Callable[[str], str | None] | None = None  # an old spelling -> the new one (None: not one of ours)
    needs: Literal["target", "draft", "eagle"] = "draft"  # what models a run of this kind loads
    help: str = ""
