"""Parse policy strings such as ``svip:h=0.3,gamma=0.15`` or ``constant:k=5``.

Every CLI, adapter and the eval harness builds policies through
``make_policy`` so a method string means the same thing everywhere.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Callable, Mapping, Optional, Sequence

from .adaedl import AdaEdlPolicy
from .adaptive import AdaptiveSvipPolicy
from .bandit import BanditPolicy
from .grammar import Call, parse_call
from .policies import (
    ConfidencePolicy,
    ConstantPolicy,
    DraftLengthPolicy,
    HeuristicPolicy,
    OraclePolicy,
    SvipPolicy,
)

__all__ = ["POLICIES", "PolicyFactory", "PolicySpecError", "make_policy", "policy_factory", "policy_help"]

POLICIES: dict[str, type[DraftLengthPolicy]] = {
    cls.name: cls
    for cls in (
        ConstantPolicy,
        HeuristicPolicy,
        SvipPolicy,
        AdaptiveSvipPolicy,
        ConfidencePolicy,
        BanditPolicy,
        AdaEdlPolicy,
        OraclePolicy,
    )
}

PolicyFactory = Callable[[Optional[Sequence[int]]], DraftLengthPolicy]
"""reference (the target's greedy output, or None) -> the policy for one generation."""

# Short, user-facing aliases for fields whose attribute name is longer.
_ALIASES = {"max": "max_draft"}


class PolicySpecError(ValueError):
    """A policy string that names no policy, an unknown key or a bad value."""


def _parameters(cls: type[DraftLengthPolicy]) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _convert(policy: str, key: str, raw: str, default: object) -> object:
    target_type = type(default)
    try:
        if target_type is int:
            return int(raw)
        if target_type is float:
            return float(raw)
    except ValueError:
        raise PolicySpecError(f"{policy}: {key}={raw!r} is not a valid {target_type.__name__}") from None
    return raw


def policy_help() -> str:
    """One line per policy with its parameters and defaults (for ``--help``)."""
    lines = []
    for name, cls in POLICIES.items():
        ordered = sorted(_parameters(cls).items(), key=lambda item: item[0] == "max_draft")
        params = ",".join(f"{'max' if f == 'max_draft' else f}={field.default}" for f, field in ordered)
        lines.append(f"{name}:{params}" if params else name)
    return "; ".join(lines)


def make_policy(spec: str | Call, *, reference: Sequence[int] | None = None) -> DraftLengthPolicy:
    """Build a policy from ``name`` or ``name:key=value,key=value`` (or that string already split: a ``Call``).

    ``reference`` (the target's greedy output) is handed to policies that use
    one (the oracle) and ignored by the others.
    """
    policy = _build(_call(spec))
    if reference is not None and isinstance(policy, OraclePolicy):
        policy.set_reference(reference)
    return policy


def policy_factory(spec: str | Call, *, costs: Callable[[], Mapping | None] | None = None) -> PolicyFactory:
    """The policy per generation: a fresh one for fixed rules, one learning instance for a whole run.

    A policy that ``learns_across_prompts`` (``svip-adaptive``) is built once,
    seeded with ``costs()`` (a measured cost curve; asked for only then), and
    returned for every prompt, so what it learned carries over; every other
    policy is rebuilt (from the string split once, here) so no state leaks between prompts.
    """
    call = _call(spec)
    policy = _build(call)  # fail on a bad string now, not at the first prompt
    if not policy.learns_across_prompts:
        return lambda reference: make_policy(call, reference=list(reference or []))
    curve = costs() if costs is not None else None
    if curve:
        policy.seed_costs(curve)
    return lambda reference: policy


def _call(spec: str | Call) -> Call:
    if isinstance(spec, Call):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise PolicySpecError("empty policy string; choose one of: " + policy_help())
    return parse_call(spec, error=PolicySpecError)


def _build(call: Call) -> DraftLengthPolicy:
    name = call.name
    cls = POLICIES.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, POLICIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PolicySpecError(f"unknown policy {name!r}{hint}; choose one of: {', '.join(POLICIES)}")
    fields = _parameters(cls)
    kwargs: dict[str, object] = {}
    for raw_key, raw in call.items:
        key = _ALIASES.get(raw_key, raw_key)
        if key not in fields:
            valid = ", ".join("max" if k == "max_draft" else k for k in fields) or "none"
            raise PolicySpecError(f"{name}: unknown parameter {raw_key!r}; valid: {valid}")
        if key in kwargs:
            raise PolicySpecError(f"{name}: parameter {key!r} given twice")
        kwargs[key] = _convert(name, key, raw, fields[key].default)
    try:
        return cls(**kwargs)
    except ValueError as error:
        raise PolicySpecError(str(error)) from None
