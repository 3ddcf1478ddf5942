"""svip simulate: known answers on a hand-made trace, and an exact replay of the real engine on tiny models."""

from __future__ import annotations

import pytest
import torch

from svip import make_policy
from svip.adapters.kinds import ModelSet
from svip.eval.metrics import AVERAGE
from svip.eval.simulate import SimCosts, parse_costs, simulate, simulate_question, speedup_rows
from svip.eval.trace import trace_question

from helpers import tiny_llama

FLAT = {"target_step_s": 1.0, "verify_over_step": {"2": 1.0, "8": 1.0}, "draft_over_step": 0.5}
ROW = {  # the draft agrees with the target except at position 2
    "question_id": "q",
    "group": "g",
    "tokens": [1, 2, 3, 4],
    "draft_argmax": [1, 2, 9, 4],
    "draft_top1": [0.9, 0.9, 0.4, 0.9],
    "draft_entropy": [0.1, 0.1, 2.0, 0.1],
    "branches": {"2": [[0.5, 0.7], [0.5, 0.7]]},
    "prefill_s": {"target": 3.0, "draft": 1.0},
}


def run(policy: str | None, costs=SimCosts(FLAT, prefill=False)):
    meter = costs.meter()
    return simulate_question(ROW, make_policy(policy, reference=ROW["tokens"]) if policy else None, costs, meter, [])


@pytest.mark.parametrize(
    "policy, cost, drafted, accepted, rounds",
    [
        (None, 4.0, 0, 0, 4),  # prefill (1 step without prefill costs) + 3 steps
        ("constant:k=2", 2 * 0.5 + 1 + 0.5 + 1, 3, 3, 2),  # [1,2]+bonus 3, then [4] (budget clipped to 1)
        ("constant:k=3", 3 * 0.5 + 1 + 0.5 + 1, 4, 3, 2),  # drafts 9 at position 2: rejected, corrected to 3
        ("constant:k=4", 4 * 0.5 + 1 + 0.5 + 1, 5, 3, 2),  # one token past the rejection, from the branch
        ("oracle", 3 * 0.5 + 1 + 0.5 + 1, 4, 3, 2),  # stops on the token it knows is wrong
    ],
)
def test_known_answers(policy, cost, drafted, accepted, rounds):
    result = run(policy)
    assert (result.cost, result.drafted, result.accepted, result.rounds) == (
        pytest.approx(cost),
        drafted,
        accepted,
        rounds,
    )
    assert result.tokens == 4 and result.cut_branches == 0


def test_branches_shorter_than_the_policy_are_counted():
    short = {**ROW, "branches": {"2": []}}  # a trace rolled out 0 tokens past the rejection
    result = simulate_question(short, make_policy("constant:k=4"), SimCosts(FLAT, False), SimCosts(FLAT).meter(), [])
    assert result.cut_branches == 1 and result.drafted == 3 + 1


def test_prefill_is_charged_to_both_and_the_draft_prefill_to_speculation_only():
    costs = SimCosts(FLAT, prefill=True)
    assert run(None, costs).cost == pytest.approx(3.0 + 3)
    assert run("constant:k=2", costs).cost == pytest.approx((1.0 + 0.5) + (3.0 + 0.0) + 0.5 + 1)


def test_speedup_rows_and_cost_strings():
    rows = speedup_rows(simulate({"stop_tokens": []}, [ROW], ["target-only", "constant:k=2"], SimCosts(FLAT, False)))
    assert rows["constant:k=2"][AVERAGE] == pytest.approx(4.0 / 3.5)
    gpu = parse_costs("draft=0.1,verify=flat", FLAT)
    assert gpu.curve["draft_over_step"] == 0.1 and gpu.meter().verify(12) == pytest.approx(1.0)
    assert parse_costs("verify=slope:0.1").meter().verify(5) == pytest.approx(1.4)
    assert not parse_costs("prefill=0").prefill
    with pytest.raises(ValueError, match="unknown key"):
        parse_costs("speed=2")
    with pytest.raises(ValueError, match="vanilla loop only"):
        simulate({}, [ROW], ["hf+svip"], SimCosts(FLAT))


@pytest.fixture(scope="module")
def pair():
    target = tiny_llama(seed=0)
    draft = tiny_llama(seed=0)
    with torch.no_grad():  # close to the target: acceptance between 0 and 1
        for p in draft.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return ModelSet(target, draft)


@pytest.mark.parametrize("policy", ["constant:k=3", "svip:h=0.78", "confidence:p_min=0.1", "heuristic:k0=2", "oracle"])
def test_replay_matches_the_real_engine_round_for_round(pair, policy):
    engine = pair.engine()
    prompt = [3, 9, 27, 17, 51, 8]
    tokens = engine.generate(prompt, max_new_tokens=40).tokens
    row = {"question_id": "q", "group": "g", **trace_question(pair, prompt, tokens, branch=40)}
    real = engine.generate(prompt, policy=make_policy(policy, reference=tokens), max_new_tokens=40)
    simulated = simulate_question(
        row, make_policy(policy, reference=tokens), SimCosts(FLAT), SimCosts(FLAT).meter(), []
    )
    assert 0 < real.accepted < real.drafted  # a regime with both outcomes
    assert (simulated.rounds, simulated.drafted, simulated.accepted) == (len(real.rounds), real.drafted, real.accepted)


@pytest.mark.slow
def test_calibrate_trace_and_simulate_from_the_command_line(tmp_path, capsys):
    """The three commands on the bundled SmolLM2 (12-layer self-draft), end to end; a rerun of trace resumes."""
    from svip.eval.cli import main
    from svip.eval.trace import read_trace

    models = ["--draft", "smollm2-135m", "--draft-layers", "12"]
    assert main(["calibrate", *models, "--repeats", "2", "--out", str(tmp_path / "curve.json")]) == 0
    stored = capsys.readouterr().out
    assert "cost curve: target step" in stored and "stored:" in stored
    curve_file = stored.split("stored: ")[1].strip()
    trace = tmp_path / "trace.jsonl"
    args = ["trace", *models, "--per-category", "1", "--shortest", "--max-new-tokens", "12", "--out", str(trace)]
    assert main(args) == 0
    header, rows = read_trace(trace)
    assert len(rows) == 6 and header["cost_curve"]["target_step_s"] > 0
    assert all(len(r["draft_entropy"]) == len(r["tokens"]) for r in rows)
    assert any(r["branches"] for r in rows)  # a 12-layer draft disagrees somewhere
    assert main(args) == 0 and len(read_trace(trace)[1]) == 6  # resumed: nothing redone, nothing lost
    capsys.readouterr()
    methods = ["--methods", "constant:k=3", "svip", "svip-adaptive", "oracle"]
    assert main(["simulate", str(trace), *methods, "--curve", curve_file]) == 0
    out = capsys.readouterr().out
    assert "best fixed rule in hindsight" in out
    oracle_row = next(line.split("  (")[0].split() for line in out.splitlines() if line.startswith("oracle"))
    # the oracle's share of its own gain is 100% where it gains; where drafting cannot pay on this
    # machine's curve (oracle <= 1.0x) no share is defined and the column says so
    assert oracle_row[-1] == ("100%" if float(oracle_row[-4]) > 1.0 else "-"), oracle_row
    assert main(["simulate", str(trace), *methods, "--costs", "draft=0.05,verify=flat"]) == 0
    assert main(["simulate", str(trace), "--methods", "hf+svip"]) == 2  # the replay covers the vanilla loop only


def test_a_runs_curve_comes_from_its_rounds_not_its_prefills(tmp_path):
    import json

    from svip.eval.calibrate import curve_from_records, load_curve

    target_only = {
        "method": "target-only",
        "drafted": [0] * 4,
        "verify_times": [5.0, 1.0, 1.2, 0.8],
        "draft_times": [0] * 4,
    }
    speculative = {
        "method": "constant:k=2",
        "drafted": [2] * 4,
        "draft_forwards": [2] * 4,
        "verify_times": [9.0, 1.2, 1.1, 1.3],
        "draft_times": [4.0, 0.6, 0.5, 0.7],
    }
    curve = curve_from_records([target_only, speculative])
    assert curve["target_step_s"] == pytest.approx(1.0)
    assert curve["verify_over_step"] == {"3": pytest.approx(1.2)}
    assert curve["draft_over_step"] == pytest.approx(0.3)
    assert curve_from_records([{"method": "target-only", "drafted": [0]}]) is None  # a run from before per-round times
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (target_only, speculative)))
    assert load_curve(run)["draft_over_step"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="no cost curve"):
        load_curve(tmp_path / "nothing.json")
