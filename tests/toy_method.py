"""Toy method kinds: what adding a method takes (this module + one ``registry.register`` line each).

``repeat:n=3`` emits the prompt's last token ``n`` times per round, verified
by nobody -- a mechanics example, not a decoding method anyone should use.

``replay:k=3`` is a kind with a resource of its own, as a llama.cpp server or
a GliDe draft is: it declares an option (``--replay-file``), refuses a run
without it, opens the file once per run (``ModelSet.shared``; closed by
``ModelSet.close``), measures a "cost curve" and compares with a baseline of
its own engine (``replay``, one token per round) instead of target-only.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from svip.adapters.kinds import MethodKind, ModelSet, Option
from svip.grammar import MethodSpec, MethodSpecError
from svip.method import Decoded, GenerationRequest, InputError, SpeculativeMethod, clip, finished
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


REPLAY_FILE = Option("replay_file", "a text file of token ids the replay methods emit (toy)", metavar="FILE")


class ReplayFile:
    """The replay kind's resource: an open file (every one opened is kept in ``opened``, for tests)."""

    opened: list["ReplayFile"] = []

    def __init__(self, path: str) -> None:
        self.handle = open(path, encoding="utf-8")
        self.tokens = [int(t) for t in self.handle.read().split()]
        self.closed = False
        ReplayFile.opened.append(self)

    def close(self) -> None:
        self.handle.close()
        self.closed = True


class ReplayMethod(SpeculativeMethod):
    def __init__(self, source: ReplayFile, k: int) -> None:
        self.source, self.k, self.spec = source, k, f"replay:k={k}"
        self.references: list[Sequence[int] | None] = []  # what the harness handed over as the baseline's output

    def _decode(self, request: GenerationRequest, reference) -> Decoded:
        self.references.append(reference)
        tokens: list[int] = []
        rounds: list[RoundStats] = []
        ids = self.source.tokens
        while not finished(tokens, request.stop_tokens, request.max_new_tokens):
            drafted = [ids[(len(tokens) + i) % len(ids)] for i in range(self.k)]
            emitted = clip(drafted, request.stop_tokens, request.max_new_tokens - len(tokens))
            tokens += emitted
            rounds.append(RoundStats(drafted=self.k - 1, accepted=len(emitted) - 1, emitted=len(emitted)))
        return Decoded(tokens, rounds)


def _replay_canonical(spec: MethodSpec) -> str:
    if spec.policy or set(spec.params) - {"k"}:
        raise MethodSpecError("replay takes only k")
    return f"replay:k={int(spec.params.get('k', 1))}"


def _replay_check(spec: MethodSpec, options: Mapping[str, str | None]) -> None:
    if not options.get(REPLAY_FILE.name):
        raise ValueError(f"{spec} needs {REPLAY_FILE.flag} FILE")


def _replay_source(models: ModelSet) -> ReplayFile:
    def open_file() -> ReplayFile:
        if not models.options.get(REPLAY_FILE.name):
            raise InputError(f"replay needs {REPLAY_FILE.flag} FILE")
        return ReplayFile(models.options[REPLAY_FILE.name])

    return models.shared("replay-file", open_file)


REPLAY_KIND = MethodKind(
    "replay",
    _replay_canonical,
    lambda spec, models: ReplayMethod(_replay_source(models), int(spec.params["k"])),
    needs="target",
    help="replay:k=1: a toy with a file of its own",
    options=(REPLAY_FILE,),
    check=_replay_check,
    cost_curve=lambda models, prompt: {"tokens_in_file": len(_replay_source(models).tokens)},
    baseline="replay",
)
