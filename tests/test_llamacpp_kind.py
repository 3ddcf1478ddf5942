"""The ``llamacpp`` kind inside ``svip bench``, on a fake server: its baseline, its cost curve, resume after a crash.

The fake (``fake_llama_server.py``) stands in for llama-server and a tiny
script for llama-bench, so this checks the harness's side only: that the
kind's servers start on first use and are stopped when the run ends or
fails, that its methods compare with llama.cpp's own target-only, that the
run stores llama.cpp's cost curve, and that a server dying mid-run loses no
finished record and the rerun completes the rest.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from svip.adapters import registry
from svip.adapters.llamacpp.server import LlamaServerError
from svip.eval.records import read_records
from svip.eval.runner import BenchConfig, run_bench

FAKE = Path(__file__).with_name("fake_llama_server.py")
BENCH_ROWS = [{"n_prompt": n, "avg_ns": int(1e7 * (1 + 0.1 * n))} for n in (1, 2, 4, 8, 16)]


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def fake_llamacpp(tmp_path: Path) -> dict[str, str]:
    """A bin directory with a fake llama-server and llama-bench, and two placeholder GGUF files."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "llama-server", f'#!/bin/sh\nexec {sys.executable} {FAKE} "$@"\n')
    _executable(bin_dir / "llama-bench", f"#!/bin/sh\necho '{json.dumps(BENCH_ROWS)}'\n")
    for name in ("target.gguf", "draft.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    return {
        "llamacpp_bin": str(bin_dir),
        "llamacpp_target": str(tmp_path / "target.gguf"),
        "llamacpp_draft": str(tmp_path / "draft.gguf"),
    }


def test_kind_declares_its_baseline_and_options():
    assert registry.baseline_of("llamacpp+svip") == "llamacpp"
    assert registry.baseline_of("llamacpp") == "target-only"
    assert {"llamacpp_bin", "llamacpp_target", "llamacpp_draft", "llamacpp_gguf"} <= set(registry.options())


def test_missing_binary_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="make llamacpp-setup"):  # at the config, before any model or file
        run_bench(BenchConfig(methods=["llamacpp+svip"], options={"llamacpp_bin": str(tmp_path / "none")}), tmp_path / "run")
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.slow
def test_bench_with_llamacpp_methods_resumes_after_the_server_dies(
    tmp_path, monkeypatch, fake_llamacpp, smol_target, smol_tokenizer
):
    """6 questions x (target-only, llamacpp, llamacpp+svip); the speculative server dies after 4 answers."""
    count = tmp_path / "count"
    monkeypatch.setenv("FAKE_LLAMA_COUNT", str(count))
    # both servers share the count: their speed checks 2 x 2, warm-up 2, then 3 answers
    monkeypatch.setenv("FAKE_LLAMA_MODE", "die-after=9")
    config = BenchConfig(
        per_category=1, shortest=True, max_new_tokens=4, methods=["llamacpp+svip"], options=fake_llamacpp
    )
    assert config.all_methods == ["target-only", "llamacpp", "llamacpp+svip:h=0.3,gamma=0.15,max=40"]
    run = tmp_path / "run"
    with pytest.raises(LlamaServerError, match="exited with code 3"):
        run_bench(config, run, progress=False, models=(smol_target, None, smol_tokenizer))
    finished = read_records(run / "results.jsonl")
    assert [r["method"] for r in finished][:3] == config.all_methods  # nothing finished was lost

    monkeypatch.setenv("FAKE_LLAMA_MODE", "ok")
    run_bench(config, run, progress=False, models=(smol_target, None, smol_tokenizer))
    records = read_records(run / "results.jsonl")
    assert len(records) == 18 and len({(r["method"], r["question_id"]) for r in records}) == 18
    by_method = {r["method"]: r for r in records if r["question_id"] == records[-1]["question_id"]}
    svip = by_method["llamacpp+svip:h=0.3,gamma=0.15,max=40"]
    assert svip["token_match"] == 1.0  # against llama.cpp's own target-only (the fake answers both alike)
    assert sum(svip["drafted"]) > 0
    assert by_method["llamacpp"]["token_match"] == 0.0  # the baseline itself is compared with torch's target-only
    environment = json.loads((run / "environment.json").read_text())
    curve = environment["cost_curves"]["llamacpp"]
    assert curve["engine"] == "llama.cpp" and curve["verify_over_step"]["8"] == pytest.approx(1.8 / 1.1)
    # each server of the run was started before the warm-up and its decoding checked against the curve's step
    checked = {server["server"]: server for server in curve["servers"]}
    assert set(checked) == {"target-only", "speculative:f32"}  # the fp32 run's GGUF type
    assert all(server["token_ms"] == [1.0] and not server["slow"] for server in checked.values())
    assert checked["target-only"]["expected_ms"] == pytest.approx(11.0)


@pytest.mark.slow
def test_each_draft_type_gets_its_server_and_its_measured_step(
    tmp_path, monkeypatch, fake_llamacpp, smol_target, smol_tokenizer
):
    """``llamacpp:draft=q4_0+svip`` beside ``llamacpp+svip``: two speculative servers (one per draft file), both
    compared with the one target-only, and the cost curve prices the second draft too."""
    from svip.adapters.llamacpp import kind

    drafts: list[str] = []
    cheap = tmp_path / "draft-q4_0.gguf"
    cheap.write_bytes(b"GGUF")

    def weights(models, role, gguf):
        if role == "draft":
            drafts.append(gguf)
            return cheap if gguf == "q4_0" else Path(fake_llamacpp["llamacpp_draft"])
        return Path(fake_llamacpp["llamacpp_target"])

    monkeypatch.setattr(kind, "_weights", weights)
    options = {**fake_llamacpp, "llamacpp_gguf": "bf16"}
    config = BenchConfig(
        per_category=1, shortest=True, max_new_tokens=4, methods=["llamacpp+svip", "llamacpp:draft=q4_0+svip"],
        options=options,
    )  # fmt: skip
    run = tmp_path / "run"
    run_bench(config, run, progress=False, models=(smol_target, None, smol_tokenizer))
    records = read_records(run / "results.jsonl")
    cheap_text = "llamacpp:draft=q4_0+svip:h=0.3,gamma=0.15,max=40"
    assert {r["method"] for r in records} == {"target-only", "llamacpp", "llamacpp+svip:h=0.3,gamma=0.15,max=40", cheap_text}
    assert all(r["token_match"] == 1.0 for r in records if r["method"] == cheap_text)
    assert {"bf16", "q4_0"} <= set(drafts)  # a server (and a bench) for each draft
    curve = json.loads((run / "environment.json").read_text())["cost_curves"]["llamacpp"]
    assert set(curve["draft_over_step_by_gguf"]) == {"q4_0"}
    assert curve["draft_over_step_by_gguf"]["q4_0"] == pytest.approx(1.0)  # the fake bench: same seconds per file
    from svip.eval.machine import describe_curve

    assert "q4_0 draft 1.00" in describe_curve(curve)  # the report names each draft's price
