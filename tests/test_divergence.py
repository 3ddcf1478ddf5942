"""What token-match means in each precision (issue 34): bf16 divergences are listed as near-ties with their
evidence; an fp32 greedy divergence makes ``svip report`` fail as the bug it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from svip.eval.cli import main
from svip.eval.divergence import first_divergences, lossless_violations

OLD_RUN = Path(__file__).parent / "data" / "old_run"
SVIP = "svip:h=0.3,gamma=0.15,max=40"


def _run_with_one_divergence(tmp_path: Path, dtype: str) -> tuple[Path, str]:
    """The stored SmolLM2 run, its svip answer on one question changed from token 3 on, the config's dtype set."""
    run_dir = tmp_path / dtype
    shutil.copytree(OLD_RUN, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "dtype": dtype}))
    lines = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    changed = next(r for r in lines if r["method"] == SVIP)
    changed["tokens"] = changed["tokens"][:3] + [t + 1 for t in changed["tokens"][3:]]
    changed.pop("turn_tokens", None)
    changed["token_match"] = 3 / len(changed["tokens"])
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return run_dir, changed["question_id"]


def test_first_divergence_known_answer():
    records = [
        {"method": "target-only", "question_id": "q", "tokens": [5, 6, 7, 8]},
        {"method": SVIP, "question_id": "q", "tokens": [5, 6, 9, 8], "token_match": 0.5},
        {"method": "constant:k=3", "question_id": "q", "tokens": [5, 6, 7, 8], "token_match": 1.0},
    ]
    (found,) = first_divergences(records)
    assert (found.method, found.position, found.expected, found.got, found.prefix) == (SVIP, 2, 7, 9, (5, 6))
    assert lossless_violations([found], {"dtype": "fp32", "temperature": 0.0}) == [found]
    assert lossless_violations([found], {"dtype": "bf16", "temperature": 0.0}) == []
    assert lossless_violations([found], {"dtype": "fp32", "temperature": 1.0}) == []  # sampling differs by design
    gguf = {"dtype": "fp32", "options": {"llamacpp_gguf": "bf16"}}
    found.method = "llamacpp+svip:h=0.3,gamma=0.15,max=40"
    assert lossless_violations([found], gguf) == []  # llama.cpp ran bf16 weights in that fp32 run


def test_bf16_report_explains_token_match_and_lists_the_divergence(tmp_path, capsys):
    run_dir, question = _run_with_one_divergence(tmp_path, "bf16")
    assert main(["report", str(run_dir), "--no-paper"]) == 0
    out = capsys.readouterr().out
    assert "In bf16, verifying k tokens in one forward rounds differently" in out
    assert f"{question} {SVIP}: token 3: baseline" in out and "--near-ties" in out


def test_fp32_divergence_fails_the_report_as_a_bug(tmp_path, capsys):
    run_dir, question = _run_with_one_divergence(tmp_path, "fp32")
    assert main(["report", str(run_dir), "--no-paper"]) == 1
    captured = capsys.readouterr()
    assert "LOSSLESS VIOLATION" in captured.out and f"{question} {SVIP}: token 3" in captured.out
    assert "a bug" in captured.err


@pytest.mark.slow
def test_near_ties_measures_the_logit_gap_with_the_target(tmp_path, capsys):
    """SmolLM2 (the run's target) scores the baseline's prefix: the gap between its token and the changed one."""
    run_dir, question = _run_with_one_divergence(tmp_path, "bf16")
    assert main(["report", str(run_dir), "--no-paper", "--near-ties"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if f"{question} {SVIP}: token 3" in row)
    assert "logit gap" in line and "in fp32" in line
    assert float(line.split("logit gap ")[1].split()[0]) > 0  # the baseline's token is the target's argmax
