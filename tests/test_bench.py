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

from svip.eval.records import ResultLog, read_records
from svip.eval.runner import BenchConfig, RunDirError, run_bench

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
    process = subprocess.Popen([*BENCH, "--run-dir", str(run_dir)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while len(_lines(results)) < 5 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _lines(results)
    assert 5 <= len(before) < EXPECTED, "the run must be killed midway for this test to mean anything"
    with open(results, "a") as handle:  # a crash in the middle of a write
        handle.write('{"question_id": "torn", "meth')

    finished = subprocess.run([*BENCH, "--run-dir", str(run_dir)], env=env, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "cut a torn last line" in finished.stdout
    after = _lines(results)
    assert after[: len(before)] == before  # finished records untouched
    records = [json.loads(line) for line in after]
    keys = [(r["method"], r["question_id"]) for r in records]
    assert len(keys) == len(set(keys)) == EXPECTED
    assert all(r["token_match"] == 1.0 for r in records if r["method"] != "target-only")  # greedy: lossless

    report = subprocess.run([sys.executable, "-m", "svip.eval.cli", "report", str(run_dir)], capture_output=True, text=True, env=env)
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
