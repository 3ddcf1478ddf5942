"""The one method-string grammar, shared by every framework, the CLI, grids and ``hf.enable``.

::

    method := [kind[:params]+]policy   |   kind[:params]   |   policy
    params := key=value[,key=value...]

- a bare policy runs the vanilla engine:        ``svip:h=0.3,gamma=0.15``  (= ``vanilla+svip:...``)
- any framework "with SVIP" is ``+svip``:       ``hf+svip``, ``cascade:k=8,mag=2+svip``, ``eagle2:total=60+svip``
- a framework alone runs its own schedule:      ``eagle2``, ``cascade:k=5,mag=5``, ``target-only``
- a grid lists values with ``|`` in any part:   ``svip:h=0.2|0.3,gamma=0.1|0.15`` (four methods)

This module only splits and joins strings; which kinds exist, which keys
they take and what they build is the adapters' registry.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Collection

__all__ = [
    "GRID_SEPARATOR",
    "VANILLA",
    "Call",
    "MethodSpec",
    "MethodSpecError",
    "expand_grid",
    "move_keys_to_policy",
    "parse_call",
    "parse_method",
]

VANILLA = "vanilla"  # the kind a bare policy string runs on
GRID_SEPARATOR = "|"
# "cascade:k=8+svip" splits at "+" followed by a name; the "+" of a float such as 1e+3 never does.
_JOIN = re.compile(r"\+(?=\s*[A-Za-z]|\s*$)")


class MethodSpecError(ValueError):
    """A method string that does not parse: bad syntax, unknown kind or key, bad value."""


@dataclass(frozen=True)
class Call:
    """``name:key=value,...`` with its items in the order given."""

    name: str
    items: tuple[tuple[str, str], ...] = ()

    @property
    def params(self) -> dict[str, str]:
        return dict(self.items)

    def __str__(self) -> str:
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in self.items) if self.items else "")


def parse_call(text: str, *, error: type[ValueError] = MethodSpecError) -> Call:
    """Split ``name:key=value,...``; a missing ``=``, an empty value or a repeated key raises ``error``."""
    name, _, params = text.strip().partition(":")
    name = name.strip().lower()
    if not name:
        raise error(f"no name in {text!r}")
    items: list[tuple[str, str]] = []
    for item in filter(None, (p.strip() for p in params.split(","))):
        key, eq, raw = (part.strip() for part in item.partition("="))
        if not eq or not key or not raw:
            raise error(f"{name}: expected key=value, got {item!r}")
        if any(key == seen for seen, _ in items):
            raise error(f"{name}: parameter {key!r} given twice")
        items.append((key, raw))
    return Call(name, tuple(items))


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method string: the kind that runs it, its own parameters, and the draft-length policy."""

    kind: str
    call: Call
    policy: str | None = None  # the policy string after "+" (or the whole string for the vanilla kind)

    @property
    def params(self) -> dict[str, str]:
        return self.call.params

    @cached_property
    def policy_call(self) -> Call | None:
        """The policy split into name and items once, for ``make_policy``/``policy_factory`` (None: no policy)."""
        return parse_call(self.policy) if self.policy else None

    def __str__(self) -> str:
        if self.kind == VANILLA and not self.call.items and self.policy:
            return self.policy
        return str(self.call) + (f"+{self.policy}" if self.policy else "")


def _split(text: str) -> list[str]:
    parts = [part.strip() for part in _JOIN.split(text.strip())]
    if len(parts) > 2:
        raise MethodSpecError(f"{text!r}: at most one '+' (framework+policy), got {len(parts) - 1}")
    if len(parts) == 2 and not parts[1]:
        raise MethodSpecError(f"{text!r}: nothing after '+'; name a policy, e.g. +svip:h=0.3,gamma=0.15")
    return parts


def parse_method(text: str) -> MethodSpec:
    """Split a method string into kind, kind parameters and policy (no validation of keys or values).

    A string that starts with a policy name (the core's policies) is a bare policy on the vanilla engine.
    """
    from .spec import POLICIES

    if not isinstance(text, str) or not text.strip():
        raise MethodSpecError("empty method string")
    parts = _split(text)
    head = parse_call(parts[0])
    if len(parts) == 2:
        return MethodSpec(head.name, head, parts[1])
    if head.name in POLICIES:
        return MethodSpec(VANILLA, Call(VANILLA), parts[0])
    return MethodSpec(head.name, head, None)


def move_keys_to_policy(kind: str, params: str, keys: Collection[str], policy: str) -> str:
    """Rewrite ``kind:params`` whose ``keys`` belong to ``policy`` into the grammar's ``kind[:rest]+policy[:keys]``.

    ``("cascade", "h=0.3,gamma=0.15,k=8", ("h", "gamma"), "svip")`` -> ``cascade:k=8+svip:h=0.3,gamma=0.15``:
    how the spellings from before one grammar (``eagle2-svip:h=..``, ``cascade:h=..``) are read.
    """
    items = [item.strip() for item in params.split(",") if item.strip()]
    moved = [item for item in items if item.partition("=")[0].strip() in keys]
    kept = [item for item in items if item not in moved]
    return (
        str(Call(kind))
        + (":" + ",".join(kept) if kept else "")
        + f"+{policy}"
        + (":" + ",".join(moved) if moved else "")
    )


def _expand_part(part: str) -> list[str]:
    if GRID_SEPARATOR not in part:
        return [part]
    name, _, params = part.partition(":")
    keys, choices = [], []
    for item in params.split(","):
        key, _, values = item.partition("=")
        options = [v.strip() for v in values.split(GRID_SEPARATOR) if v.strip()]
        if not options:
            raise MethodSpecError(f"grid item {item!r} in {part!r}: expected key=v1|v2|...")
        keys.append(key.strip())
        choices.append(options)
    return [f"{name}:" + ",".join(f"{k}={v}" for k, v in zip(keys, combo)) for combo in itertools.product(*choices)]


def expand_grid(text: str) -> list[str]:
    """All methods a grid string stands for, in order (every combination, across both parts)."""
    parts = _split(text) if GRID_SEPARATOR in text else [text]
    return ["+".join(combo) for combo in itertools.product(*(_expand_part(p) for p in parts))]
