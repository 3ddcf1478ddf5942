"""The vLLM plugin's framework-free half: per-row stops over a batch, verdicts fed back, ragged lengths, config.

No vLLM here (these run in this project's environment): ``BatchRound`` gets
hand-made logits whose entropies are known, ``RequestRules`` a hand-made
stream of verdicts, and the expected decisions are worked out by hand.
"""

from __future__ import annotations

import math

import pytest
import torch

from svip.adapters.vllm.config import SvipVllmConfig
from svip.adapters.vllm.method import VllmSpec, rounds_from_stats, rounds_from_steps
from svip.adapters.vllm.rounds import RequestRules, RequestStats
from svip.grammar import MethodSpecError, parse_method
from svip.spec import make_policy

VOCAB = 64


def _logits_with_entropy(target: float) -> torch.Tensor:
    """A row whose softmax puts mass p on token 0 and spreads the rest evenly; p found for entropy ``target``."""
    low, high = 1e-6, 1.0 - 1e-9

    def entropy_of(p: float) -> float:
        rest = (1 - p) / (VOCAB - 1)
        return -(p * math.log(p) + (VOCAB - 1) * rest * math.log(rest))

    for _ in range(200):  # entropy falls as p grows (p > 1/VOCAB)
        mid = (low + high) / 2
        low, high = (mid, high) if entropy_of(mid) > target else (low, mid)
    p = (low + high) / 2
    row = torch.full((VOCAB,), math.log((1 - p) / (VOCAB - 1)))
    row[0] = math.log(p)
    return row


# svip defaults: stop once sqrt(0.15 * H) > 0.3, i.e. H > 0.6 nats
CALM, UNSURE = _logits_with_entropy(0.2), _logits_with_entropy(1.5)


def _rules(rule_by_request: dict[str, str | None], default: str | None = None) -> RequestRules:
    return RequestRules(make_policy, rule_by_request.get, default)


def test_each_row_stops_after_its_own_first_crossing_and_keeps_that_token():
    rules = _rules({"a": "svip", "b": "svip"})
    round_ = rules.start_round(["a", "b"], None, cap=8)
    tokens = torch.tensor([0, 0])
    assert not round_.step(torch.stack([CALM, UNSURE]), tokens)  # b crossed at its 1st token: keeps it, stops
    assert not round_.step(torch.stack([CALM, CALM]), tokens)  # b's row is no longer judged
    assert round_.step(torch.stack([UNSURE, CALM]), tokens)  # a crosses at its 3rd: every row stopped
    assert rules.end_round(round_) == [3, 1]


def test_a_row_stops_at_the_engine_cap_and_the_policy_max():
    rules = _rules({"a": "svip", "b": "svip:max=2"})
    round_ = rules.start_round(["a", "b"], None, cap=3)
    calm = torch.stack([CALM, CALM])
    tokens = torch.tensor([0, 0])
    assert [round_.step(calm, tokens) for _ in range(3)] == [False, False, True]
    assert round_.lengths() == [3, 2]


def test_a_request_without_a_rule_drafts_vllms_fixed_k():
    rules = _rules({"a": "constant:k=2"})
    round_ = rules.start_round(["a", "plain"], None, cap=4)
    calm = torch.stack([UNSURE, UNSURE])
    tokens = torch.tensor([0, 0])
    assert [round_.step(calm, tokens) for _ in range(4)] == [False, False, False, True]
    assert round_.lengths() == [2, 4]


def test_the_batch_stops_drafting_once_fewer_than_min_open_of_its_rows_draft():
    tokens = torch.tensor([0, 0, 0, 0])
    for min_open, expected in ((0.5, [1, 1, 2, 2]), (0.0, [1, 1, 2, 4])):
        rules = RequestRules(make_policy, lambda r: "svip", None, min_open)
        round_ = rules.start_round(["a", "b", "c", "d"], None, cap=4)
        round_.step(torch.stack([UNSURE, UNSURE, CALM, CALM]), tokens)  # 2 of 4 open: not fewer than half
        assert not round_.all_stopped
        round_.step(torch.stack([CALM, CALM, UNSURE, CALM]), tokens)  # 1 of 4 open: the batch stops (min_open=0.5)
        while not round_.all_stopped:
            round_.step(torch.stack([CALM] * 4), tokens)
        assert round_.lengths() == expected
    with pytest.raises(ValueError, match="min_open"):
        RequestRules(make_policy, lambda r: None, None, 1.5)


def test_a_uniform_round_proposes_the_loops_length_for_every_row():
    for uniform, expected in ((False, [1, 2, 3, 3]), (True, [3, 3, 3, 3])):
        rules = RequestRules(make_policy, lambda r: "svip", None, 0.5)
        round_ = rules.start_round(["a", "b", "c", "d"], None, cap=8)
        tokens = torch.tensor([0, 0, 0, 0])
        round_.step(torch.stack([UNSURE, CALM, CALM, CALM]), tokens)
        round_.step(torch.stack([CALM, UNSURE, CALM, CALM]), tokens)
        assert round_.step(torch.stack([CALM, CALM, UNSURE, CALM]), tokens)  # 1 of 4 open: the batch stops
        if uniform:
            round_.pad_to_loop()
        assert rules.end_round(round_) == expected
        assert [len(e) for e in round_.entropies] == [3, 3, 3, 3]  # every row's entropy recorded, judged or not


def test_the_engine_default_applies_to_requests_that_name_none():
    rules = _rules({"a": "constant:k=1"}, default="svip")
    round_ = rules.start_round(["a", "b"], None, cap=8)
    assert not round_.step(torch.stack([CALM, CALM]), torch.tensor([0, 0]))
    assert round_.step(torch.stack([CALM, UNSURE]), torch.tensor([0, 0]))
    assert round_.lengths() == [1, 2]


class _Recorder:
    """A policy that records its verdicts and drafts a fixed 3."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.inner = make_policy("constant:k=3")

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def observe(self, drafted: int, accepted: int) -> None:
        self.seen.append((drafted, accepted))


def test_each_request_gets_its_own_verdict_from_vllms_rejected_counts():
    made: dict[str, _Recorder] = {}

    def make(rule: str):
        made[rule] = _Recorder()
        return made[rule]

    rules = RequestRules(make, {"a": "ra", "b": "rb"}.get, None)
    round_ = rules.start_round(["a", "b"], None, cap=3)
    for _ in range(3):
        round_.step(torch.stack([CALM, CALM]), torch.tensor([0, 0]))
    assert rules.end_round(round_) == [3, 3]
    # the target rejected 1 of a's 3 and all of b's: a accepted 2, b none
    round_ = rules.start_round(["a", "b"], [1, 3], cap=3)
    assert made["ra"].seen == [(3, 2)] and made["rb"].seen == [(3, 0)]
    assert rules.stats("a").accepted == [2] and rules.stats("b").drafted == [3]


def test_a_finished_request_keeps_its_rounds_and_its_unverified_last_draft():
    rules = _rules({"a-1234": "svip", "b-5678": "svip"})
    round_ = rules.start_round(["a-1234", "b-5678"], None, cap=4)
    round_.step(torch.stack([UNSURE, CALM]), torch.tensor([5, 6]))
    round_.step(torch.stack([CALM, UNSURE]), torch.tensor([5, 6]))
    rules.end_round(round_)
    rules.end_round(rules.start_round(["b-5678"], [2], cap=4))  # a left the batch: finished, draft never judged
    stats = rules.take("a")
    assert stats is not None and stats.drafted == [] and stats.unverified == 1
    assert rules.take("a") is None  # taken once
    assert rules.stats("b-5678").accepted == [0]


def test_a_row_with_no_budget_proposes_nothing():
    class NoDraft:
        def start_sequence(self):
            pass

        def round_budget(self):
            return 0

    rules = RequestRules(lambda rule: NoDraft(), {"a": "x"}.get, None)
    round_ = rules.start_round(["a"], None, cap=4)
    assert round_.all_stopped
    assert rules.end_round(round_) == [0]


def test_entropies_are_computed_over_the_batch_and_recorded_per_row():
    rules = _rules({"a": "svip", "b": "svip"})
    round_ = rules.start_round(["a", "b"], None, cap=2)
    round_.step(torch.stack([CALM, UNSURE]), torch.tensor([0, 0]))
    assert round_.entropies[0][0] == pytest.approx(0.2, abs=1e-4)
    assert round_.entropies[1][0] == pytest.approx(1.5, abs=1e-4)
    with pytest.raises(ValueError, match="rows"):
        round_.step(torch.stack([CALM]), torch.tensor([0]))


def test_rounds_from_the_plugins_stats_account_for_every_token():
    stats = RequestStats(drafted=[3, 2], accepted=[3, 0], entropies=[[0.1] * 3, [0.2, 0.9]], unverified=4)
    stats.entropies.append([0.1, 0.1, 0.1, 0.8])
    rounds = rounds_from_stats(stats, 10)
    assert [(r.drafted, r.accepted, r.emitted) for r in rounds] == [(0, 0, 1), (3, 3, 4), (2, 0, 1), (4, 3, 4)]
    assert sum(r.emitted for r in rounds) == 10
    clipped = rounds_from_stats(stats, 4)  # an EOS cut the answer inside the second round
    assert sum(r.emitted for r in clipped) == 4 and len(clipped) == 2


def test_rounds_from_vllms_own_per_step_record():
    rounds = rounds_from_steps([3, 3, 3], [3, 0, 2], new_tokens=12)
    assert [(r.drafted, r.accepted, r.emitted) for r in rounds[:4]] == [(0, 0, 1), (3, 3, 4), (3, 0, 1), (3, 2, 3)]
    assert sum(r.emitted for r in rounds) == 12  # 1 (prefill) + 8 (rounds) + 3 target-only steps
    assert sum(r.emitted for r in rounds_from_steps([3, 3], [3, 3], new_tokens=6)) == 6  # the last round clipped


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vllm:k=3", VllmSpec(3, None)),
        ("vllm+svip", VllmSpec(None, "svip:h=0.3,gamma=0.15,max=40")),
        ("vllm:uniform=1+svip", VllmSpec(None, "svip:h=0.3,gamma=0.15,max=40", True)),
    ],
)
def test_method_strings(text, expected):
    assert VllmSpec.from_spec(parse_method(text)) == expected


@pytest.mark.parametrize(
    "text", ["vllm", "vllm:k=0", "vllm:k=two", "vllm:k=3+svip", "vllm:depth=2+svip", "vllm:uniform=2+svip", "vllm:k=3,uniform=1"]
)
def test_bad_method_strings_are_refused(text):
    with pytest.raises(MethodSpecError):
        VllmSpec.from_spec(parse_method(text))


def test_the_plugin_is_off_without_its_config_entry_and_checks_it_when_present():
    assert SvipVllmConfig.from_mapping({}) is None
    assert SvipVllmConfig.from_mapping({"svip": {}}) == SvipVllmConfig(None)
    assert SvipVllmConfig.from_mapping({"svip": {"policy": "svip:h=0.2"}}).policy == "svip:h=0.2,gamma=0.15,max=40"
    with pytest.raises(ValueError, match="unknown key"):
        SvipVllmConfig.from_mapping({"svip": {"polcy": "svip"}})
    with pytest.raises(ValueError, match="policy"):
        SvipVllmConfig.from_mapping({"svip": {"policy": "svipp"}})
    assert SvipVllmConfig.from_mapping({"svip": {"min_open": 0}}).min_open == 0.0
    with pytest.raises(ValueError, match="min_open"):
        SvipVllmConfig.from_mapping({"svip": {"min_open": 2}})
    with pytest.raises(ValueError, match="mapping"):
        SvipVllmConfig.from_mapping({"svip": "svip"})


# -- faults, without vLLM: the kind's own checks and a stand-in engine ---------------------------------------------
def test_vllm_methods_outside_the_vllm_venv_say_where_to_run(monkeypatch):
    import builtins

    from svip.adapters import registry
    from svip.method import InputError

    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(InputError, match="make vllm-setup"):
        registry.check_run([registry.parse("vllm+svip")], {})


def test_an_engine_that_fails_to_start_names_its_role_and_vllms_reason(monkeypatch):
    import sys
    import types

    from svip.adapters.vllm.engine import EngineConfig, VllmEngine, VllmEngineError

    class FailingLLM:
        def __init__(self, **kwargs):
            raise ValueError("Invalid speculative_config: num_speculative_tokens must be > 0")

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FailingLLM))
    config = EngineConfig(target="t", draft="d", num_speculative_tokens=3, svip=True)
    with pytest.raises(VllmEngineError, match=r"draft_model K=3 \+ svip plugin.*num_speculative_tokens must be > 0"):
        VllmEngine(config).start()
    with pytest.raises(VllmEngineError, match="needs a draft"):
        EngineConfig(target="t", num_speculative_tokens=3).llm_kwargs()


def test_engine_arguments_carry_the_plugins_settings_only_when_asked():
    from svip.adapters.vllm.engine import EngineConfig

    plain = EngineConfig(target="t").llm_kwargs()
    assert "speculative_config" not in plain and "additional_config" not in plain
    stock = EngineConfig(target="t", draft="d", num_speculative_tokens=3).llm_kwargs()
    assert stock["speculative_config"]["num_speculative_tokens"] == 3 and "additional_config" not in stock
    plugin = EngineConfig(target="t", draft="d", num_speculative_tokens=8, svip=True, uniform=True).llm_kwargs()
    assert plugin["additional_config"] == {"svip": {"min_open": 0.5, "uniform": True}}
