"""The benchmark runner: kill it midway, rerun, nothing finished is lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from svip.adapters import registry
from svip.eval.datasets import load_questions, per_category
from svip.eval.records import ResultLog, read_records
from svip.eval.runner import BenchConfig, RunDirError, run_bench

import toy_method

BENCH = [
    sys.executable, "-m", "svip.eval.cli", "bench",
    "--target", "smollm2-135m", "--draft", "smollm2-135m", "--draft-layers", "2",
    "--per-category", "1", "--shortest", "--max-new-tokens", "6",
    "--methods", "constant:k=2", "svip:h=0.3,gamma=0.15", "oracle",
]  # fmt: skip
EXPECTED = 6 * 4  # six Spec-Bench groups x (target-only + three methods)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_kill_midway_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    results = run_dir / "results.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [*BENCH, "--run-dir", str(run_dir)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 600
    while len(_lines(results)) < 5 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _lines(results)
    assert 5 <= len(before) < EXPECTED, "the run must be killed midway for this test to mean anything"
    with open(results, "a") as handle:  # a crash in the middle of a write
        handle.write('{"question_id": "torn", "meth')

    finished = subprocess.run(
        [*BENCH, "--run-dir", str(run_dir)], env=env, capture_output=True, text=True, timeout=900
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "cut a torn last line" in finished.stdout
    after = _lines(results)
    assert after[: len(before)] == before  # finished records untouched
    records = [json.loads(line) for line in after]
    keys = [(r["method"], r["question_id"]) for r in records]
    assert len(keys) == len(set(keys)) == EXPECTED
    assert all(r["token_match"] == 1.0 for r in records if r["method"] != "target-only")  # greedy: lossless

    report = subprocess.run(
        [sys.executable, "-m", "svip.eval.cli", "report", str(run_dir)], capture_output=True, text=True, env=env
    )
    assert report.returncode == 0, report.stderr
    for text in ("MT-Bench", "RAG", "Avg.", "svip:h=0.3,gamma=0.15,max=40", "accept rate"):
        assert text in report.stdout

    rerun = subprocess.run([*BENCH, "--run-dir", str(run_dir)], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and _lines(results) == after  # nothing left to do, nothing rewritten


def test_other_settings_refuse_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({**BenchConfig(max_new_tokens=64).settings(), "methods": []}))
    with pytest.raises(RunDirError, match="max_new_tokens"):
        run_bench(BenchConfig(max_new_tokens=32), run_dir)


def test_an_old_config_with_kind_options_at_the_top_level_still_resumes(tmp_path):
    """Before ``options``, each kind's setting was a config field of its own (``eagle_head``, ``glide_draft``)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    methods = ["target-only", "svip:h=0.3,gamma=0.15,max=40"]
    old = {**BenchConfig(methods=[]).settings(), "eagle_head": None, "glide_draft": "drafts/a", "methods": methods[1:]}
    (run_dir / "config.json").write_text(json.dumps({**old, "per_category": 1, "shortest": True}))
    questions = per_category(load_questions("spec-bench"), 1, shortest=True)
    log = ResultLog(run_dir / "results.jsonl")
    for question in questions:
        for method in methods:
            log.append({"method": method, "question_id": question.question_id})
    run_bench(BenchConfig(per_category=1, shortest=True, methods=["svip"]), run_dir)  # nothing to redo: no models
    stored = json.loads((run_dir / "config.json").read_text())
    assert "glide_draft" not in stored and stored["options"] == {"glide_draft": "drafts/a"}  # kept, as an option
    with pytest.raises(RunDirError, match="options.glide_draft"):  # a glide method here must use the same draft
        run_bench(BenchConfig(per_category=1, shortest=True, methods=["glide"], options={"glide_draft": "b"}), run_dir)


@pytest.mark.parametrize("error", [RuntimeError("replay broke"), KeyboardInterrupt()])
def test_a_run_closes_its_resources_when_a_method_fails(tmp_path, monkeypatch, smol_target, smol_tokenizer, error):
    """The run's resources (here the toy's open file; a server in the llama.cpp kind) close; the error propagates."""
    ids = tmp_path / "ids.txt"
    ids.write_text("5 6 7")
    calls = []
    decode = toy_method.ReplayMethod._decode

    def failing(self, request, reference):
        calls.append(self.spec)
        if len(calls) > 3:  # warm-up (2) and the first question's baseline ran; then it breaks
            raise error
        return decode(self, request, reference)

    monkeypatch.setattr(toy_method.ReplayMethod, "_decode", failing)
    registry.register(toy_method.REPLAY_KIND)
    try:
        config = BenchConfig(
            per_category=1, shortest=True, max_new_tokens=3, methods=["replay:k=2"], options={"replay_file": str(ids)}
        )
        opened = len(toy_method.ReplayFile.opened)
        with pytest.raises(type(error)):
            run_bench(config, tmp_path / "run", progress=False, models=(smol_target, None, smol_tokenizer))
    finally:
        registry.unregister("replay")
    files = toy_method.ReplayFile.opened[opened:]
    assert len(files) == 1 and files[0].closed
    assert [r["method"] for r in read_records(tmp_path / "run" / "results.jsonl")] == ["target-only", "replay:k=1"]


def test_result_log_repairs_only_the_torn_tail(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"method": "a", "question_id": "1"}\n{"method": "b", "question_id": "1"}\n{"method": "c", "quest')
    log = ResultLog(path)
    assert log.repaired > 0 and len(log.records) == 2 and ("b", "1") in log
    log.append({"method": "c", "question_id": "1"})
    assert [r["method"] for r in read_records(path)] == ["a", "b", "c"]


def test_bad_method_fails_before_loading():
    with pytest.raises(ValueError, match="unknown policy"):
        BenchConfig(methods=["svipp"])
    with pytest.raises(ValueError, match="greedy"):
        BenchConfig(methods=["oracle"], temperature=1.0)


SMOKE_METHODS = [
    "constant:k=5",
    "heuristic:k0=5",
    "confidence:p_min=0.4",
    "svip:h=0.3,gamma=0.15",
    "oracle",
    "hf+constant:k=5",
    "hf+svip",
]


@pytest.mark.slow
def test_smoke_bench_smollm2_self_draft(tmp_path, smol_target, smol_self_draft, smol_tokenizer):
    """The issue's smoke run: SmolLM2 drafting for itself, every method, 16 tokens, then report, plots, answers."""
    from svip.eval.answers import write_answer_files
    from svip.eval.plots import cross_entropy_ratios, plot_all
    from svip.eval.tables import draft_table, speedup_table

    config = BenchConfig(per_category=1, shortest=True, max_new_tokens=16, methods=SMOKE_METHODS)
    log = run_bench(config, tmp_path / "run", progress=False, models=(smol_target, smol_self_draft, smol_tokenizer))
    records = read_records(log.path)
    assert len(records) == 6 * (1 + len(SMOKE_METHODS))
    speculative = [r for r in records if r["method"] != "target-only"]
    assert all(r["token_match"] == 1.0 for r in speculative)  # greedy, fp32: lossless
    assert all(sum(r["accept_lengths"]) == r["new_tokens"] for r in records)
    constant = [r for r in speculative if r["method"] == "constant:k=5"]
    assert sum(map(sum, (r["accepted"] for r in constant))) / sum(map(sum, (r["drafted"] for r in constant))) > 0.95
    # q == p for a self-draft, so H(q, p) = H(q): Figure 3's ratio is 1 on every token
    method, ratios = cross_entropy_ratios(records)
    assert method == "constant:k=5" and len(ratios) > 10
    assert all(abs(r - 1) < 1e-3 for r in ratios)

    table = speedup_table(records)
    for method in config.methods:
        assert method in table
    print(f"\n{table}\n{draft_table(records)}")
    pngs = plot_all(records, tmp_path / "plots")
    assert len(pngs) == 5 and all(p.stat().st_size > 10_000 for p in pngs)
    answers = write_answer_files(records, tmp_path / "answers", "smollm2-135m", lambda t: smol_tokenizer.decode(t))
    lines = [json.loads(line) for line in answers[0].read_text().splitlines()]
    assert len(lines) == 6 and lines[0]["choices"][0]["new_tokens"][0] == sum(lines[0]["choices"][0]["accept_lengths"])


@pytest.mark.slow
def test_multi_turn_fschat_template_and_growing_subset(tmp_path, smol_target, smol_shallow_draft, smol_tokenizer):
    """MT-Bench's second turn runs after the method's own first answer; a rerun may widen the question subset."""
    models = (smol_target, smol_shallow_draft, smol_tokenizer)
    base = dict(
        questions="eagle-mt_bench",
        shortest=True,
        max_new_tokens=8,
        methods=["svip"],
        multi_turn=True,
        template="vicuna_v1.1",
    )
    log = run_bench(BenchConfig(per_category=1, **base), tmp_path / "run", progress=False, models=models)
    first = read_records(log.path)
    assert len(first) == 2 and all(r["turns"] == 2 and len(r["turn_tokens"]) == 2 for r in first)
    assert first[1]["token_match"] == 1.0
    log = run_bench(BenchConfig(per_category=2, **base), tmp_path / "run", progress=False, models=models)
    grown = read_records(log.path)
    assert grown[:2] == first and len(grown) == 4  # one more question, both methods; nothing redone
    starts = [json.loads(line) for line in (tmp_path / "run" / "environments.jsonl").read_text().splitlines()]
    assert len(starts) == 2 and all(
        s["machine"]["cores"] >= 1 and s["cost_curve"]["target_step_s"] > 0 for s in starts
    )
    assert json.loads((tmp_path / "run" / "environment.json").read_text()) == starts[-1]  # one environment per start


def test_grid_methods_expand():
    from svip.eval.ablation import expand_grid

    assert expand_grid("svip:h=0.2|0.3,gamma=0.1|0.15") == [
        "svip:h=0.2,gamma=0.1",
        "svip:h=0.2,gamma=0.15",
        "svip:h=0.3,gamma=0.1",
        "svip:h=0.3,gamma=0.15",
    ]
    assert expand_grid("constant:k=5") == ["constant:k=5"]
    config = BenchConfig(methods=["constant:k=3|5", "svip:h=0.2|0.3"])
    assert config.methods == [
        "constant:k=3",
        "constant:k=5",
        "svip:h=0.2,gamma=0.15,max=40",
        "svip:h=0.3,gamma=0.15,max=40",
    ]
    with pytest.raises(ValueError):
        BenchConfig(methods=["svip:h=0.2|oops"])


def test_methods_after_the_baselines_take_turns_per_question():
    """Baselines run first (token-match needs their answer); the others rotate, so none always runs right after
    the baselines or after the same neighbour, as the fixed order had it."""
    from svip.eval.runner import _question_order

    config = BenchConfig(methods=["constant:k=3", "svip", "heuristic:k0=5"])
    methods = [config.method(m) for m in config.all_methods]
    orders = [[m.text.split(":")[0] for m in _question_order(methods, i)] for i in range(4)]
    assert orders[0] == ["target-only", "constant", "svip", "heuristic"]
    assert orders[1] == ["target-only", "svip", "heuristic", "constant"]
    assert orders[3] == orders[0]
    assert {order[1] for order in orders[:3]} == {"constant", "svip", "heuristic"}
