"""Method strings in the harness: the default list, canonical spellings, and ``MethodRunner``.

Every kind (``target-only``, bare policies on the vanilla engine, ``hf+``,
``cascade``, ...) lives in ``svip.adapters.registry``; this module only
adds what the harness needs on top: one default method list for every
command, record names read in today's spelling, and a runner that builds each
method once and reuses it over prompts.
"""

from __future__ import annotations

from typing import Collection, Sequence

from svip.adapters import registry
from svip.adapters.kinds import Method, ModelSet
from svip.method import SpeculativeMethod
from svip.results import GenerationResult
from svip.sampling import SamplingConfig

from .metrics import TARGET_ONLY

__all__ = ["DEFAULT_METHODS", "TARGET_ONLY", "MethodRunner", "canonical_method", "record_method"]

DEFAULT_METHODS = ("constant:k=5", "heuristic:k0=5", "confidence:p_min=0.4", "svip:h=0.3,gamma=0.15", "oracle")
"""What ``bench``, ``check-lossless`` and ``generate`` compare when no ``--methods`` is given."""


def canonical_method(method: str) -> str:
    """One spelling per method (``hf-svip`` -> ``hf+svip:h=0.3,gamma=0.15,max=40``); raises on unknown ones."""
    return registry.canonical(method)


def record_method(name: str) -> str:
    """A method name as stored by any earlier version, in today's spelling (unparseable names unchanged)."""
    try:
        return registry.canonical(name, warn=False)
    except ValueError:
        return name


class MethodRunner:
    """Runs any method on one prompt with shared models; each method is parsed and built once."""

    def __init__(
        self,
        target,
        draft,
        sampling: SamplingConfig = SamplingConfig(),
        *,
        record_cross_entropy: bool = False,
        tokenizer=None,
    ) -> None:
        """``tokenizer`` is needed by cascade methods only (Max-Gram's bigram table is counted with it)."""
        self.models = ModelSet(target, draft, tokenizer, sampling, record_cross_entropy)
        self._methods: dict[str, SpeculativeMethod] = {}

    @classmethod
    def for_models(cls, models: ModelSet) -> "MethodRunner":
        runner = cls.__new__(cls)
        runner.models, runner._methods = models, {}
        return runner

    def method(self, method: Method | str) -> SpeculativeMethod:
        key = method.text if isinstance(method, Method) else method
        if key not in self._methods:
            parsed = registry.parse(method)
            built = self._methods.get(parsed.text) or registry.build(parsed, self.models)
            self._methods[key] = self._methods[parsed.text] = built
        return self._methods[key]

    def run(
        self,
        method: Method | str,
        prompt: Sequence[int],
        *,
        max_new_tokens: int,
        stop_tokens: Collection[int],
        seed: int | None,
        reference: Sequence[int] | None = None,
    ) -> GenerationResult:
        """Decode ``prompt`` with ``method``; ``reference`` (its baseline's output) feeds the oracle."""
        return self.method(method).generate(
            prompt, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens, seed=seed, reference=reference
        )
