"""The server speed check: a llama-server slower than llama-bench's curve predicts is started again, and recorded.

The restart logic runs on stand-ins (no process); the measurement and the tools' server picker run on the fake
``llama-server`` (``fake_llama_server.py``), whose timings say each token took ``FAKE_LLAMA_TOKEN_MS``.
"""

from __future__ import annotations

import stat
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import pytest

from svip.adapters.llamacpp.method import LlamaCppSpec
from svip.adapters.llamacpp.server import LlamaServer, ServerConfig
from svip.adapters.llamacpp.speed import SLOW, STARTS, SpeedCheck, measure_token_seconds, start_at_speed
from svip.eval.machine import curve_warnings, describe_curve
from svip.grammar import parse_method

FAKE = Path(__file__).with_name("fake_llama_server.py")


class _Started:
    """A stand-in server: which start it was, and whether it was closed."""

    def __init__(self, number: int) -> None:
        self.number, self.closed = number, False

    def close(self) -> None:
        self.closed = True


def _starter() -> tuple[list[_Started], Callable[[], _Started]]:
    started: list[_Started] = []

    def start() -> _Started:
        started.append(_Started(len(started)))
        return started[-1]

    return started, start


def test_a_slow_start_is_closed_and_started_again_until_one_is_at_speed():
    started, start = _starter()
    seconds = {0: 0.130, 1: 0.101}  # 1.30x and 1.01x of the curve's 0.1 s; a third start would be asked 0.1
    server, checks = start_at_speed(start, 0.1, False, measure=lambda s, drafts: seconds.get(s.number, 0.1))
    assert server is started[1] and len(started) == 2
    assert started[0].closed and not started[1].closed  # never two of one role alive at once
    assert [check.slow for check in checks] == [True, False]
    assert checks[1].ratio == pytest.approx(1.01)


def test_after_every_start_is_slow_the_last_is_kept_and_flagged():
    started, start = _starter()
    server, checks = start_at_speed(start, 0.1, True, measure=lambda s, drafts: 0.2)
    assert len(started) == STARTS and server is started[-1] and not server.closed
    assert all(s.closed for s in started[:-1]) and all(check.slow for check in checks)


def test_a_start_within_the_tolerance_is_kept_at_once():
    started, start = _starter()
    _, checks = start_at_speed(start, 0.1, False, measure=lambda s, drafts: 0.1 * SLOW * 0.99)
    assert len(started) == 1 and not checks[0].slow


def test_a_failing_measurement_closes_the_server_it_started():
    started, start = _starter()

    def broken(server, drafts):
        raise RuntimeError("server died")

    with pytest.raises(RuntimeError, match="died"):
        start_at_speed(start, 0.1, False, measure=broken)
    assert started[0].closed


@pytest.fixture
def fake_binary(tmp_path: Path) -> Path:
    path = tmp_path / "llama-server"
    path.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    return path


def test_the_measurement_reads_llama_cpp_timings_and_drafts_nothing(fake_binary, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_TOKEN_MS", "70")
    config = ServerConfig(fake_binary, tmp_path / "model.gguf", draft=tmp_path / "model.gguf", log_dir=tmp_path)
    with LlamaServer(config) as server:
        assert measure_token_seconds(server, True) == pytest.approx(0.070)
        asked = server.post("/completion", {"prompt": [1, 2], "n_predict": 1})["echo"]
        assert "speculative.n_max" not in asked  # the check's own request sets it, nothing else
    assert SpeedCheck(0.070, 0.066).slow is False and SpeedCheck(0.090, 0.066).slow is True


def test_the_tools_server_picker_restarts_slow_servers_and_records_it(fake_binary, tmp_path, monkeypatch, capsys):
    """Every start of the fake is slow (90 ms a token against the curve's 66): three starts, flagged in the curve,
    warned about in the report; a speculative server is held to a target step plus a draft step."""
    from svip.eval import llamacpp_slots

    monkeypatch.setenv("FAKE_LLAMA_TOKEN_MS", "90")
    curve = {"target_step_s": 0.066, "draft_over_step": 0.36, "verify_over_step": {"2": 1.3}}
    config = ServerConfig(fake_binary, tmp_path / "model.gguf", log_dir=tmp_path, startup_timeout=20)
    monkeypatch.setattr(llamacpp_slots, "gguf_for", lambda name, gguf: tmp_path / "model.gguf")
    with ExitStack() as stack:
        pick = llamacpp_slots.server_picker(stack, config, "draft", "q8_0", curve=curve, label="this")
        target_only = pick(LlamaCppSpec.from_spec(parse_method("llamacpp")))
        speculative = pick(LlamaCppSpec.from_spec(parse_method("llamacpp+svip")))
        assert target_only.process.poll() is None and speculative.process.poll() is None
    slow, at_speed = curve["servers"]
    assert slow["server"] == "this target-only" and slow["token_ms"] == [90.0] * STARTS and slow["slow"]
    assert at_speed["expected_ms"] == pytest.approx(66 * 1.36) and not at_speed["slow"]  # 90 < 1.15 x 89.8
    assert "started 3 times" in capsys.readouterr().err
    assert "this target-only 90.0/66.0 (started 3 times" in describe_curve(curve)
    (warning,) = curve_warnings(curve, "llamacpp cost curve")
    assert "this target-only decoded 1.36x slower" in warning
