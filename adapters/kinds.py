"""What a registry entry is (``MethodKind``), what its factory receives (``ModelSet``) and a parsed method (``Method``).

A kind is a parser (``canonical``: validate a parsed method string and spell
it one way) plus a factory (``build``: make a ``SpeculativeMethod`` from the
loaded models). The caller loads the models once and the kinds share them
(and anything built from them, e.g. one KV-cached engine) through
``ModelSet.shared``. A kind that needs more than the run's target and draft
declares it here, so nothing outside its own module names it:

- ``options``: run-level settings (a head, a draft directory, a server binary), one CLI flag each, stored with the run;
- ``check``: refuses a method whose options are missing before anything is loaded or written;
- its resources (a draft, a server) are loaded by its own ``build``, once per run, through ``ModelSet.shared``,
  and released by ``ModelSet.close`` (every shared object with a ``close()``);
- ``load_models``: a kind that brings its own models instead of target + draft (an engine with its own weights);
- ``cost_curve``: what the runner stores as the kind's measured costs; ``baseline``: the method its speedups,
  token-match and oracle compare with when that is not the run's ``target-only`` (its own engine's target-only).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from svip.grammar import MethodSpec
from svip.method import InputError, SpeculativeMethod
from svip.sampling import SamplingConfig

if TYPE_CHECKING:
    from .loading import ModelRequest

__all__ = ["TARGET_ONLY", "Method", "MethodKind", "ModelSet", "Option"]

TARGET_ONLY = "target-only"  # the run's baseline: plain decoding, run first on every question


@dataclass(frozen=True)
class Option:
    """A run-level setting a kind needs (a head, a draft directory): one ``--flag`` per name on every model-loading command."""

    name: str  # the key in ModelRequest.options / BenchConfig.options; the flag is --name with '_' -> '-'
    help: str
    default: str | None = None
    metavar: str = "PATH"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass
class ModelSet:
    """The models one run shares between all its methods, and every resource its kinds load on them."""

    target: Any = None  # transformers causal LM (None when a kind brings its own models)
    draft: Any = None
    tokenizer: Any = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    record_cross_entropy: bool = False
    options: dict[str, str | None] = field(default_factory=dict)  # the kinds' run-level settings, by Option.name
    request: ModelRequest | None = None  # what was asked for (names, dtype, device): a kind loading more reads it
    loaded_by: str | None = None  # the kind whose load_models made this set: its methods (and target-only) only
    target_only: Callable[[], SpeculativeMethod] | None = None  # how such a set decodes target-only
    methods: tuple[MethodSpec, ...] = ()  # the run's methods, parsed: a kind measuring its costs prices what they name
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def shared(self, key: str, factory: Callable[[], Any]) -> Any:
        """One object per run for ``key`` (an engine, a kind's draft or server, Max-Gram's table)."""
        if key not in self._shared:
            self._shared[key] = factory()
        return self._shared[key]

    def require_draft(self, method: str) -> None:
        """Refuse a method of the vanilla engine on a set without its target and draft."""
        if self.loaded_by is not None:
            raise InputError(
                f"{method} needs the vanilla engine; this run drives {self.loaded_by} only (its models are its own)"
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

    def close(self) -> None:
        """Close every shared object that has ``close()`` (a server, a file), newest first; a failure stops none.

        The set stays usable: a kind asking again gets a new object. A failed
        close is re-raised once all are closed (the first one).
        """
        objects, self._shared = list(self._shared.values()), {}
        errors: list[BaseException] = []
        for obj in reversed(objects):
            close = getattr(obj, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as error:  # noqa: BLE001 -- keep closing the others
                    errors.append(error)
        if errors:
            raise errors[0]

    def __enter__(self) -> "ModelSet":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.close()
            return
        try:  # an exception is on its way out: a failing close must not replace it
            self.close()
        except Exception as close_error:  # noqa: BLE001
            warnings.warn(f"closing the run's resources failed too: {close_error!r}", RuntimeWarning, stacklevel=2)


@dataclass(frozen=True)
class MethodKind:
    """One registry entry: the kind's name, its parser, its factory, and what it needs beyond target and draft."""

    name: str
    canonical: Callable[[MethodSpec], str]  # validate; return the one spelling stored in result files
    build: Callable[[MethodSpec, ModelSet], SpeculativeMethod]  # receives the canonical spec, parsed once
    alias: Callable[[str], str | None] | None = None  # an old spelling -> the new one (None: not one of ours)
    # which of the run's models its methods use: "target" alone, or "draft" (target and draft)
    needs: Literal["target", "draft"] = "draft"
    help: str = ""
    options: tuple[Option, ...] = ()
    check: Callable[[MethodSpec, Mapping[str, str | None]], None] | None = None  # raise on missing options
    load_models: Callable[[ModelRequest, SamplingConfig], ModelSet] | None = None  # its own models, not target+draft
    cost_curve: Callable[[ModelSet, list[int]], dict] | None = None  # measured once per run, after warm-up encoding
    baseline: str | None = None  # its own engine's target-only method; None: the run's target-only
    describe_draft: Callable[[Mapping[str, str | None]], str | None] | None = None  # a report's name for the drafter


@dataclass(frozen=True)
class Method:
    """A method string parsed once at the edge: its canonical text (the key stored in results), kind and spec."""

    text: str
    kind: MethodKind
    spec: MethodSpec  # the canonical text, parsed

    @property
    def policy(self) -> str | None:
        """The draft-length policy after ``+`` (or the bare policy), canonical; None: the kind's own schedule."""
        return self.spec.policy

    @property
    def policy_name(self) -> str | None:
        call = self.spec.policy_call
        return call.name if call is not None else None

    def __str__(self) -> str:
        return self.text
