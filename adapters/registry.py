"""The method registry: a method string -> its kind's parser and factory.

Every entry point (``svip bench --methods``, ``generate``, ``check-lossless``,
grids, user code) parses a method string here, once, into a ``Method``
(canonical text, kind, parsed spec) that is passed down to the kind's
factory; a string means the same thing everywhere and one spelling is stored
per method. Adding a method is one module that defines a ``MethodKind`` and
one line in ``BUILTIN`` (or ``register(kind)`` from user code). What a run
of several methods needs from its kinds (options, who loads the models,
which baseline each method compares with) is answered here too, so the
harness never names a kind.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Iterable, Mapping

from svip.grammar import MethodSpec, MethodSpecError, expand_grid, parse_method
from svip.method import SpeculativeMethod
from svip.spec import POLICIES

from .kinds import TARGET_ONLY, Method, MethodKind, ModelSet, Option

__all__ = [
    "BUILTIN",
    "TARGET_ONLY",
    "Method",
    "MethodDeprecationWarning",
    "MethodKind",
    "baseline_of",
    "build",
    "canonical",
    "check_run",
    "expand",
    "kinds",
    "kind_of",
    "loader_of",
    "options",
    "parse",
    "register",
    "resolve",
    "unregister",
]


BUILTIN = (
    "svip.adapters.vanilla.method:TARGET_ONLY_KIND",
    "svip.adapters.vanilla.method:VANILLA_KIND",
    "svip.adapters.hf.method:HF_KIND",
    "svip.adapters.cascade.kind:CASCADE_KIND",
    "svip.adapters.cape.kind:CAPE_KIND",
    "svip.adapters.glide.kind:GLIDE_KIND",
    "svip.adapters.glide.kind:GLIDE_CAPE_KIND",
    "svip.adapters.eagle.kind:EAGLE2_KIND",
    "svip.adapters.llamacpp.kind:LLAMACPP_KIND",
    "svip.adapters.vllm.kind:VLLM_KIND",
)

_KINDS: dict[str, MethodKind] = {}
_BASELINES: dict[str, str] = {}  # a kind's baseline as written -> its canonical text (parsed once per registry state)


class MethodDeprecationWarning(FutureWarning):
    """An old method spelling (``hf-svip``, ``eagle2-svip:...``, ``cascade:h=...``): still read, please respell."""


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry in BUILTIN:
        module, _, attribute = entry.partition(":")
        _add(getattr(importlib.import_module(module), attribute))


def _add(kind: MethodKind) -> MethodKind:
    if kind.name in POLICIES:
        raise ValueError(f"{kind.name!r} is a policy name; a method kind needs a name of its own")
    _KINDS[kind.name] = kind
    _BASELINES.clear()
    return kind


def register(kind: MethodKind) -> MethodKind:
    """Add (or replace) a kind; its name must not be a policy name (a bare policy means the vanilla engine)."""
    _load_builtin()
    return _add(kind)


def unregister(name: str) -> None:
    _KINDS.pop(name, None)
    _BASELINES.clear()


def kinds() -> dict[str, MethodKind]:
    _load_builtin()
    return dict(_KINDS)


def _respell(text: str, *, warn: bool) -> str:
    for kind in kinds().values():
        new = kind.alias(text) if kind.alias else None
        if new is not None and new != text:
            if warn:
                warnings.warn(
                    f"method {text!r} is an old spelling; write {new!r}", MethodDeprecationWarning, stacklevel=4
                )
            return new
    return text


def resolve(text: str, *, warn: bool = True) -> tuple[MethodKind, MethodSpec]:
    """The kind and parsed spec of a method string (old spellings accepted, with a deprecation warning)."""
    if not isinstance(text, str) or not text.strip():
        raise MethodSpecError("empty method string")
    spec = parse_method(_respell(text.strip(), warn=warn))
    kind = kinds().get(spec.kind)
    if kind is None:
        import difflib

        names = sorted(kinds()) + sorted(POLICIES)
        close = difflib.get_close_matches(spec.kind, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise MethodSpecError(
            f"unknown policy or method {spec.kind!r}{hint}; kinds: {', '.join(sorted(kinds()))}; policies: {', '.join(POLICIES)}"
        )
    return kind, spec


def parse(text: str | Method, *, warn: bool = True) -> Method:
    """The one parse of a method string: validated, canonical, its kind and spec (a ``Method`` passes through)."""
    if isinstance(text, Method):
        return text
    kind, spec = resolve(text, warn=warn)
    canonical_text = kind.canonical(spec)  # validates; the factory and result files see one spelling
    method = Method(canonical_text, kind, parse_method(canonical_text))
    method.spec.policy_call  # the policy split here too: factories hand the Call to make_policy/policy_factory
    return method


def expand(texts: Iterable[str | Method], *, warn: bool = True) -> list[Method]:
    """Methods of several strings or grids (``svip:h=0.2|0.3`` is two), parsed once each, duplicates dropped."""
    methods: dict[str, Method] = {}
    for text in texts:
        for one in [text] if isinstance(text, Method) else expand_grid(text):
            method = parse(one, warn=warn)
            methods.setdefault(method.text, method)
    return list(methods.values())


def canonical(text: str, *, warn: bool = True) -> str:
    """The one spelling of a method (``svip`` -> ``svip:h=0.3,gamma=0.15,max=40``); raises on a bad one."""
    return parse(text, warn=warn).text


def kind_of(text: str | Method) -> MethodKind:
    return text.kind if isinstance(text, Method) else resolve(text, warn=False)[0]


def build(method: str | Method, models: ModelSet) -> SpeculativeMethod:
    """A ready ``SpeculativeMethod`` for a method, on already loaded models (a string is parsed here, once)."""
    method = parse(method)
    return method.kind.build(method.spec, models)


def baseline_of(method: str | Method) -> str:
    """The method whose output ``method`` is compared with (speedup, token-match, the oracle's reference).

    A kind's own engine's target-only (``MethodKind.baseline``) for its other
    methods; the run's ``target-only`` for everything else, the kind's
    baseline itself included; ``target-only`` is its own baseline. A stored
    name no registered kind reads (tables of an old run) compares with ``target-only``.
    """
    try:
        method = parse(method, warn=False)
    except ValueError:
        return TARGET_ONLY
    if method.text == TARGET_ONLY or method.kind.baseline is None:
        return TARGET_ONLY
    if method.kind.baseline not in _BASELINES:
        _BASELINES[method.kind.baseline] = canonical(method.kind.baseline, warn=False)
    own = _BASELINES[method.kind.baseline]
    return TARGET_ONLY if own == method.text else own


def options() -> dict[str, Option]:
    """Every registered kind's options by name (kinds sharing one, like glide and glide-cape, list it once)."""
    found: dict[str, Option] = {}
    for kind in kinds().values():
        for option in kind.options:
            found.setdefault(option.name, option)
    return found


def loader_of(methods: Iterable[Method]) -> MethodKind | None:
    """The kind that brings the run's models (``load_models``), or None for the shared target + draft."""
    loaders = list(dict.fromkeys(m.kind.name for m in methods if m.kind.load_models is not None))
    if len(loaders) > 1:
        raise ValueError(
            f"{' and '.join(loaders)} each load models of their own: one run takes methods of one of them only"
        )
    return kinds()[loaders[0]] if loaders else None


def check_run(methods: Iterable[Method], given: Mapping[str, str | None]) -> None:
    """Refuse a run its kinds cannot serve, before any model is loaded or anything written.

    Each kind checks its options (``MethodKind.check``); a kind with models of
    its own (``load_models``) runs with its own methods and target-only only.
    """
    methods = list(methods)
    for method in methods:
        if method.kind.check is not None:
            method.kind.check(method.spec, given)
    loader = loader_of(methods)
    others = [m.text for m in methods if m.kind.name != loader.name and m.text != TARGET_ONLY] if loader else []
    if others:
        raise ValueError(
            f"a run of {loader.name} methods takes only {loader.name} methods (and target-only, which runs on "
            f"its models): {others[0]} belongs in a run of its own"
        )
