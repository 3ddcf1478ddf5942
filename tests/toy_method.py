"""A toy method kind: what adding a method takes (this module + one ``registry.register`` line).

``repeat:n=3`` emits the prompt's last token ``n`` times per round, verified
by nobody -- a mechanics example, not a decoding method anyone should use.
"""

from __future__ import annotations

from svip.adapters.kinds import MethodKind, ModelSet
from svip.grammar import MethodSpec, MethodSpecError
from svip.method import Decoded, GenerationRequest, SpeculativeMethod, clip, finished
from svip.results import RoundStats


class RepeatMethod(SpeculativeMethod):
    def __init__(self, n: int) -> None:
        self.n, self.spec = n, f"repeat:n={n}"

    def _decode(self, request: GenerationRequest, reference) -> Decoded:
        tokens: list[int] = []
        rounds: list[RoundStats] = []
        while not finished(tokens, request.stop_tokens, request.max_new_tokens):
            emitted = clip([request.prompt[-1]] * self.n, request.stop_tokens, request.max_new_tokens - len(tokens))
            tokens += emitted
            rounds.append(RoundStats(drafted=self.n, accepted=len(emitted), emitted=len(emitted)))
        return Decoded(tokens, rounds)


def _canonical(spec: MethodSpec) -> str:
    if spec.policy or set(spec.params) - {"n"}:
        raise MethodSpecError("repeat takes only n")
    return f"repeat:n={int(spec.params.get('n', 2))}"


def _build(spec: MethodSpec, models: ModelSet) -> RepeatMethod:
    return RepeatMethod(int(spec.params["n"]))


TOY_KIND = MethodKind("repeat", _canonical, _build, needs="target", help="repeat:n=2: a toy")
