"""The method registry: a method string -> its kind's parser and factory.

Every entry point (``svip bench --methods``, ``generate``, ``check-lossless``,
grids, user code) resolves a method string here, so a string means the same
thing everywhere and one spelling is stored per method. Adding a method is
one module that defines a ``MethodKind`` and one line in ``BUILTIN``
(or ``register(kind)`` from user code).
"""

from __future__ import annotations

import importlib
import warnings

from svip.grammar import MethodSpec, MethodSpecError, parse_method
from svip.method import SpeculativeMethod
from svip.spec import POLICIES

from .kinds import MethodKind, ModelSet

__all__ = [
    "BUILTIN",
    "MethodDeprecationWarning",
    "build",
    "canonical",
    "kinds",
    "kind_of",
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
)

_KINDS: dict[str, MethodKind] = {}


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
    return kind


def register(kind: MethodKind) -> MethodKind:
    """Add (or replace) a kind; its name must not be a policy name (a bare policy means the vanilla engine)."""
    _load_builtin()
    return _add(kind)


def unregister(name: str) -> None:
    _KINDS.pop(name, None)


def kinds() -> dict[str, MethodKind]:
    _load_builtin()
    return dict(_KINDS)


def _respell(text: str, *, warn: bool) -> str:
    for kind in kinds().values():
        new = kind.alias(text) if kind.alias else None
        if new is not None and new != text:
            if warn:
                warnings.warn(
                    f"method {text!r} is an old spelling; write {new!r}", MethodDeprecationWarning, stacklevel=3
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


def canonical(text: str, *, warn: bool = True) -> str:
    """The one spelling of a method (``svip`` -> ``svip:h=0.3,gamma=0.15,max=40``); raises on a bad one."""
    kind, spec = resolve(text, warn=warn)
    return kind.canonical(spec)


def kind_of(text: str) -> MethodKind:
    return resolve(text, warn=False)[0]


def build(text: str, models: ModelSet) -> SpeculativeMethod:
    """A ready ``SpeculativeMethod`` for a method string, on already loaded models."""
    kind, spec = resolve(text)
    return kind.build(
        parse_method(kind.canonical(spec)), models
    )  # canonical() validates, and the factory sees one spelling
