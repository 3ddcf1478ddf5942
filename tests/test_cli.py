"""The ``svip`` command end to end on the bundled model."""

from __future__ import annotations

import json

import pytest

from svip.eval.cli import build_parser, main


def test_help_lists_policies(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["generate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "svip:h=0.3,gamma=0.15" in out and "--memory-first-gpu" in out


def test_generate_speculative_json(capsys):
    code = main(
        [
            "generate",
            "--draft",
            "smollm2-135m",
            "--draft-layers",
            "4",
            "--policy",
            "svip",
            "--prompt",
            "Hi!",
            "--max-new-tokens",
            "6",
            "--json",
        ]
    )
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["new_tokens"] == len(record["tokens"]) <= 6
    assert record["method"] == "svip:h=0.3,gamma=0.15,max=40"
    assert all(len(r["entropies"]) == r["drafted"] for r in record["rounds"])


def test_generate_text_output(capsys):
    assert main(["generate", "--prompt", "Say hello.", "--max-new-tokens", "5"]) == 0
    assert "target-only: " in capsys.readouterr().out


def test_errors_exit_2_with_a_message(capsys):
    assert main(["generate", "--prompt", "", "--max-new-tokens", "5"]) == 2
    assert "empty prompt" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--draft", "smollm2-135m", "--policy", "svip:h=-1", "--prompt", "x"])
    assert exit_info.value.code == 2
    assert "h must be" in capsys.readouterr().err
    assert main(["generate", "--target", "/no/such/model", "--prompt", "x"]) == 2
    assert "cannot load model" in capsys.readouterr().err


def test_report_takes_the_run_dir_as_bench_spells_it(capsys):
    """``svip report --run-dir DIR`` = ``svip report DIR`` (every command spells a run directory --run-dir)."""
    from pathlib import Path

    run = str(Path(__file__).parent / "data" / "old_run")
    assert main(["report", run, "--no-paper"]) == 0
    positional = capsys.readouterr().out
    assert main(["report", "--run-dir", run, "--no-paper"]) == 0
    assert capsys.readouterr().out == positional and "speedup" in positional
    assert main(["report", "--no-paper"]) == 2 and "needs a run directory" in capsys.readouterr().err
    for command in (["trace", "--out", "t.jsonl"], ["simulate", "t.jsonl"]):
        assert build_parser().parse_args([*command, "--run-dir", run]).run == run
