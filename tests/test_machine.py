"""Machine records: what is stored with every run, and reports that refuse to mix machines silently."""

from __future__ import annotations

import json

from svip.adapters.vanilla import SpeculativeEngine
from svip.adapters.vanilla.costs import measure_cost_curve
from svip.eval.cli import main
from svip.eval.machine import describe, machine_info, same_machine
from svip.runtime import cpu_fields, cpu_flags

from helpers import tiny_llama


def test_machine_info_names_cpu_isa_threads():
    info = machine_info()
    assert set(info) == {"cpu", "cpu_id", "cores", "isa", "torch_threads", "gpus"}
    assert info["cores"] >= 1 and info["torch_threads"] >= 1 and isinstance(info["isa"], list)
    assert (
        same_machine(info, dict(info)) and not same_machine(info, None) and not same_machine(info, {**info, "isa": []})
    )
    assert "torch threads" in describe(info)


def test_cpu_fields_read_the_first_processor_only(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: First CPU\nflags\t\t: fpu avx2 amx_int8\n\n"
        "processor\t: 1\nmodel name\t: Second CPU\nflags\t\t: fpu\n"
    )
    assert cpu_fields(cpuinfo)["model name"] == "First CPU"
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_int8"}
    assert cpu_fields(tmp_path / "missing") == {} and cpu_flags(tmp_path / "missing") == set()


def test_cost_curve_is_measured_on_the_engine():
    engine = SpeculativeEngine(tiny_llama(seed=0), tiny_llama(seed=1))
    curve = measure_cost_curve(engine, [1, 2, 3, 4], sizes=(2, 4), repeats=3)
    assert curve["target_step_s"] > 0 and set(curve["verify_over_step"]) == {"2", "4"}
    assert all(v > 0 for v in curve["verify_over_step"].values()) and curve["draft_over_step"] > 0
    assert engine.target.model.cached_length == 0  # caches left empty
    assert "verify(k)/step 2:" in describe(machine_info(), curve)


RECORDS = [
    dict(question_id="1", group="qa", category="qa", method=method, new_tokens=10, wall_time=seconds,
         drafted=drafted, accepted=accepted, entropies=[[0.1] * d for d in drafted], token_match=1.0,
         draft_time=0.1, verify_time=seconds / 2, accept_lengths=[a + 1 for a in accepted])
    for method, seconds, drafted, accepted in [("target-only", 1.0, [0] * 10, [0] * 10), ("svip:h=0.3,gamma=0.15,max=40", 0.5, [3, 3], [2, 3])]
]  # fmt: skip


def _run_dir(path, machine):
    path.mkdir()
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    (path / "environment.json").write_text(json.dumps({"machine": machine}))
    return str(path)


def test_report_over_runs_from_different_machines_says_so(tmp_path, capsys):
    here = machine_info()
    a = _run_dir(tmp_path / "a", here)
    b = _run_dir(tmp_path / "b", {**here, "isa": ["avx2"], "cpu": "another CPU"})
    assert main(["report", a, a, "--no-paper"]) == 0
    assert "different" not in capsys.readouterr().out
    assert main(["report", a, b, "--no-paper"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: these runs come from different (or unrecorded) machines" in out and "another CPU" in out


def test_a_run_resumed_on_another_machine_says_so(tmp_path, capsys):
    here = machine_info()
    run = _run_dir(tmp_path / "run", here)
    starts = [{"machine": here}, {"machine": {**here, "torch_threads": here["torch_threads"] + 1}}]
    (tmp_path / "run" / "environments.jsonl").write_text("".join(json.dumps(s) + "\n" for s in starts))
    assert main(["report", run, "--no-paper"]) == 0
    assert "resumed on 2 different machine setups" in capsys.readouterr().out


def test_a_running_child_counts_as_this_process_not_as_others():
    """A kind's llama-server runs beside the harness while a curve is watched: its CPU is ours, not interference."""
    import subprocess
    import sys
    import time

    from svip.eval.machine import _running_children_cpu_seconds

    before = _running_children_cpu_seconds()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass\ntime.sleep(30)",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while _running_children_cpu_seconds() - before < 0.9 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _running_children_cpu_seconds() - before >= 0.9  # its second of CPU, read while it still runs
    finally:
        child.kill()
        child.wait()
