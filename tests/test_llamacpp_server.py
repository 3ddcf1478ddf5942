"""The llama.cpp adapter's own mechanics, with a fake server: request fields, rounds, faults, cleanup.

No llama.cpp here: ``fake_llama_server.py`` answers the two endpoints the
harness uses, so these run in CI on any machine. llama.cpp's real behaviour
(lossless outputs, flag-off identity) is tested in test_llamacpp_patch.py against
the build ``make llamacpp-setup`` makes.
"""

from __future__ import annotations

import socket
import stat
import sys
from pathlib import Path

import pytest

from svip.adapters.llamacpp.method import LlamaCppMethod, LlamaCppSpec, rounds_from
from svip.adapters.llamacpp.server import LOOPBACK, LlamaServer, LlamaServerError, ServerConfig
from svip.grammar import MethodSpecError, parse_method
from svip.method import InputError
from svip.sampling import SamplingConfig

FAKE = Path(__file__).with_name("fake_llama_server.py")


@pytest.fixture
def fake_binary(tmp_path: Path) -> Path:
    """An executable named like the real one that runs the fake server."""
    binary = tmp_path / "llama-server"
    binary.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} "$@"\n')
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    return binary


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "target.gguf"
    path.write_bytes(b"GGUF")
    return path


def _config(binary: Path, model: Path, tmp_path: Path, **kwargs) -> ServerConfig:
    return ServerConfig(binary=binary, model=model, log_dir=tmp_path, startup_timeout=20, **kwargs)


def _spec(text: str) -> LlamaCppSpec:
    return LlamaCppSpec.from_spec(parse_method(text))


def test_method_strings_and_request_fields():
    assert _spec("llamacpp").text == "llamacpp" and not _spec("llamacpp").drafts
    assert _spec("llamacpp").request_fields() == {}
    svip = _spec("llamacpp+svip")
    assert svip.text == "llamacpp+svip:h=0.3,gamma=0.15,max=40"
    assert svip.request_fields() == {
        "speculative.n_min": 0,
        "speculative.p_min": 0.0,
        "speculative.svip_h": 0.3,
        "speculative.svip_gamma": 0.15,
        "speculative.n_max": 40,
    }
    assert _spec("llamacpp+constant:k=3").request_fields()["speculative.n_max"] == 3
    confidence = _spec("llamacpp+confidence:p_min=0.75,max=16").request_fields()
    assert (confidence["speculative.p_min"], confidence["speculative.n_max"]) == (0.75, 16)
    adaptive = _spec("llamacpp+svip-adaptive")
    assert adaptive.text.startswith("llamacpp+svip-adaptive:")
    assert adaptive.request_fields()["speculative.svip_adaptive"] is True


def test_a_cheaper_draft_is_a_parameter_of_the_method():
    cheap = _spec("llamacpp:draft=Q4_0+svip")
    assert cheap.text == "llamacpp:draft=q4_0+svip:h=0.3,gamma=0.15,max=40" and cheap.draft_gguf == "q4_0"
    assert _spec(cheap.text) == cheap  # the canonical text parses back to the same method
    assert cheap.request_fields() == _spec("llamacpp+svip").request_fields()  # same rule, other weights
    assert _spec("llamacpp+svip").draft_gguf is None
    windowed = _spec("llamacpp:window=256,draft=q4_0+svip-adaptive")
    assert windowed.text.startswith("llamacpp:draft=q4_0,window=256+svip-adaptive:") and windowed.window == 256
    assert _spec(windowed.text) == windowed and _spec("llamacpp+svip").window == 0
    kept = _spec("llamacpp:keep=1,draft=q4_0+svip")
    assert kept.text == "llamacpp:draft=q4_0,keep=1+svip:h=0.3,gamma=0.15,max=40" and _spec(kept.text) == kept
    assert kept.server_args() == ("--spec-draft-keep-kv",) and _spec("llamacpp:keep=0+svip") == _spec("llamacpp+svip")
    assert windowed.server_args() == ("--spec-draft-window", "256") and _spec("llamacpp+svip").server_args() == ()
    calibrated = _spec("llamacpp:calibrate=1,keep=1+svip-adaptive")
    assert (
        calibrated.text.startswith("llamacpp:keep=1,calibrate=1+svip-adaptive:")
        and _spec(calibrated.text) == calibrated
    )
    assert calibrated.server_args() == ("--spec-draft-keep-kv", "--spec-draft-svip-calibrate")
    assert (
        calibrated.request_fields() == _spec("llamacpp:keep=1+svip-adaptive").request_fields()
    )  # the server's setup only


def test_alone_times_a_speculative_servers_target_without_a_rule():
    """``alone=1``: no rule, the speculative server of the other flags (so the same process as the rules it names),
    asked to decode with its draft deferred (the cost-aware rule capped at 0), not upstream's ``n_max`` 0, whose draft
    still reads every token."""
    alone = _spec("llamacpp:calibrate=1,keep=1,alone=1")
    assert alone.text == "llamacpp:keep=1,calibrate=1,alone=1" and _spec(alone.text) == alone
    assert alone.drafts and alone.policy is None
    assert alone.server_args() == _spec("llamacpp:keep=1,calibrate=1+svip-adaptive").server_args()
    assert alone.request_fields() == {"speculative.n_max": 0, "speculative.svip_adaptive": True}
    assert _spec("llamacpp:alone=0+svip") == _spec("llamacpp+svip")


@pytest.mark.parametrize(
    "text, message",
    [
        ("llamacpp+heuristic", "no llama.cpp implementation"),
        ("llamacpp:alone=1+svip", "takes no rule"),
        ("llamacpp:alone=yes", "alone must be 0 or 1"),
        ("llamacpp:n=3+svip", "only draft=TYPE"),
        ("llamacpp:draft=q3_k+svip", "draft must be one of"),
        ("llamacpp:draft=q4_0", "needs a rule"),
        ("llamacpp:window=0+svip", "window must be"),
        ("llamacpp:window=1e3+svip", "window must be"),
        ("llamacpp:keep=yes+svip", "keep must be 0 or 1"),
        ("llamacpp:keep=1", "needs a rule"),
        ("llamacpp:calibrate=2+svip-adaptive", "calibrate must be 0 or 1"),
        ("llamacpp:calibrate=1+svip", "reads no costs"),
    ],
)
def test_bad_method_strings_are_refused(text, message):
    with pytest.raises(MethodSpecError, match=message):
        _spec(text)


def test_rounds_from_llama_timings_known_answer():
    timings = {"draft_rounds": [{"drafted": 3, "accepted": 3}, {"drafted": 4, "accepted": 1, "entropies": [0.1, 2.0]}]}
    rounds = rounds_from(timings, 10)  # 4 + 2 tokens from the rounds, 4 target-only steps
    assert [(r.drafted, r.accepted, r.emitted) for r in rounds] == [(3, 3, 4), (4, 1, 2)] + [(0, 0, 1)] * 4
    assert rounds[1].entropies == [0.1, 2.0]
    clipped = rounds_from(timings, 5)  # EOS inside the second round: it emitted one token, not two
    assert [r.emitted for r in clipped] == [4, 1] and sum(r.emitted for r in clipped) == 5
    assert [r.emitted for r in rounds_from({}, 3)] == [1, 1, 1]


def test_server_answers_and_closes(fake_binary, model, tmp_path):
    server = LlamaServer(_config(fake_binary, model, tmp_path, draft=model)).start()
    try:
        method = LlamaCppMethod(server, _spec("llamacpp+svip"), SamplingConfig(), 4096)
        result = method.generate([5, 6, 7], max_new_tokens=6, stop_tokens={11})
        assert result.tokens == [8, 9, 10, 11]  # clipped after the stop token
        assert sum(r.emitted for r in result.rounds) == 4 and result.drafted > 0
        echo = server.post("/completion", method.payload(method_request()))["echo"]
        assert echo["speculative.svip_h"] == 0.3 and echo["cache_prompt"] is False and echo["speculative.rounds"]
    finally:
        process = server.process
        server.close()
    assert process.poll() is not None  # really stopped
    server.close()  # twice is fine


def method_request():
    from svip.method import check_request

    return check_request([1, 2], 3)


def test_slow_start_waits_for_health(fake_binary, model, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_MODE", "slow-start")
    with LlamaServer(_config(fake_binary, model, tmp_path)) as server:
        assert server.get("/health")["status"] == "ok"


def test_failed_start_quotes_the_log(fake_binary, model, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_MODE", "fail-start")
    with pytest.raises(LlamaServerError, match="(?s)exited with code 1.*failed to load model"):
        LlamaServer(_config(fake_binary, model, tmp_path)).start()


def test_missing_binary_and_model_name_the_fix(model, tmp_path):
    with pytest.raises(LlamaServerError, match="make llamacpp-setup"):
        LlamaServer(_config(tmp_path / "nope" / "llama-server", model, tmp_path)).start()
    with pytest.raises(LlamaServerError, match="model not found"):
        LlamaServer(_config(Path(sys.executable), tmp_path / "missing.gguf", tmp_path)).start()


def test_port_in_use_is_refused(fake_binary, model, tmp_path):
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LlamaServerError, match=f"port {port} .* in use"):
            LlamaServer(_config(fake_binary, model, tmp_path, port=port)).start()


def test_server_dying_mid_run_is_named(fake_binary, model, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_MODE", "die-after=1")
    monkeypatch.setenv("FAKE_LLAMA_COUNT", str(tmp_path / "count"))
    with LlamaServer(_config(fake_binary, model, tmp_path)) as server:
        method = LlamaCppMethod(server, _spec("llamacpp"), SamplingConfig(), 4096)
        assert len(method.generate([1, 2], max_new_tokens=3).tokens) == 3
        with pytest.raises(LlamaServerError, match="(?s)exited with code 3.*dying mid-run"):
            method.generate([1, 2], max_new_tokens=3)


def test_request_timeout_is_named(fake_binary, model, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LLAMA_MODE", "hang")
    config = ServerConfig(binary=fake_binary, model=model, log_dir=tmp_path, request_timeout=1.0)
    with LlamaServer(config) as server:
        with pytest.raises(LlamaServerError, match="did not answer within 1 s"):
            server.post("/completion", {"prompt": [1], "n_predict": 1})


def test_bad_request_is_an_input_error(fake_binary, model, tmp_path):
    with LlamaServer(_config(fake_binary, model, tmp_path)) as server:
        method = LlamaCppMethod(server, _spec("llamacpp"), SamplingConfig(), 4096)
        with pytest.raises(InputError, match="HTTP 400"):
            method._decode(method_request().__class__((), 3, frozenset()), None)


def test_slots_clients_send_the_harness_payload(fake_binary, model, tmp_path, monkeypatch):
    """``make llamacpp-slots`` sends each request as the bench does (``LlamaCppMethod.payload``) and sums tokens."""
    from svip.eval import llamacpp_slots

    sent = []
    post = LlamaServer.post

    def spy(self, path, payload, **kwargs):
        sent.append(payload)
        return post(self, path, payload, **kwargs)

    monkeypatch.setattr(LlamaServer, "post", spy)
    prompts = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    with LlamaServer(_config(fake_binary, model, tmp_path, draft=model, parallel=2)).start() as server:
        row = llamacpp_slots.run_method(server, "llamacpp+svip", prompts, clients=2, max_new_tokens=4)
    assert row["tokens"] == 12 and len(row["latencies"]) == 3 and row["seconds"] > 0
    assert all(p["speculative.svip_h"] == 0.3 and p["top_k"] == 1 and p["n_predict"] == 4 for p in sent)
    assert sorted(tuple(p["prompt"]) for p in sent) == sorted(tuple(p) for p in prompts)


def test_target_only_server_reserves_outputs_like_a_speculative_one(model, tmp_path):
    """Both kinds of server pass the same speculative flags (the target's graphs reserved for n_max + 1 outputs, which
    made SmolLM2 f32 decode 11-14% faster); only the speculative one loads a draft. Opting out gives upstream's
    default draft-less command."""
    spec_flags = ["--spec-type", "draft-simple", "--spec-draft-n-max", "40"]
    plain = ServerConfig(Path("llama-server"), model).command(8080)
    speculative = ServerConfig(Path("llama-server"), model, draft=tmp_path / "d.gguf").command(8080)
    upstream = ServerConfig(Path("llama-server"), model, reserve_draft_outputs=False).command(8080)
    assert "-md" not in plain and speculative[speculative.index("-md") + 1] == str(tmp_path / "d.gguf")
    for command in (plain, speculative):
        start = command.index("--spec-type")
        assert command[start : start + 4] == spec_flags
    assert "--spec-type" not in upstream and "--spec-draft-n-max" not in upstream
    assert [a for a in plain if a not in spec_flags] == upstream


def test_slots_start_one_server_per_draft_type_and_window(fake_binary, model, tmp_path, monkeypatch):
    """``llamacpp_slots`` with ``llamacpp:draft=q4_0,window=256+svip`` beside ``llamacpp+svip``: each runs on a server
    loading its own draft with its own flags (before, every speculative method shared one bf16-draft server)."""
    from contextlib import ExitStack

    from svip.eval import llamacpp_slots

    drafts = {"bf16": tmp_path / "draft-bf16.gguf", "q4_0": tmp_path / "draft-q4_0.gguf"}
    for path in drafts.values():
        path.write_bytes(b"GGUF")
    monkeypatch.setattr(llamacpp_slots, "gguf_for", lambda name, gguf: drafts[gguf])
    texts = (
        "llamacpp",
        "llamacpp+svip",
        "llamacpp:draft=q4_0,window=256+svip",
        "llamacpp+constant:k=2",
        "llamacpp:keep=1+svip",
    )
    specs = [_spec(text) for text in texts]
    with ExitStack() as stack:
        server_for = llamacpp_slots.server_picker(stack, _config(fake_binary, model, tmp_path), "some-draft", "bf16")
        plain, bf16, cheap, bf16_again, kept = (server_for(spec) for spec in specs)
        assert bf16 is bf16_again and len({id(plain), id(bf16), id(cheap), id(kept)}) == 4
        assert kept.config.command(1)[-1] == "--spec-draft-keep-kv" and kept.config.draft == drafts["bf16"]
        assert plain.config.draft is None
        assert (bf16.config.draft, cheap.config.draft) == (drafts["bf16"], drafts["q4_0"])
        assert "--spec-draft-window" not in bf16.config.command(1)
        assert cheap.config.command(1)[-2:] == ["--spec-draft-window", "256"]
        running = [server.process for server in (plain, bf16, cheap, kept)]
        assert all(process.poll() is None for process in running)
    assert all(process.poll() is not None for process in running)  # the stack stopped every one


def test_baseline_check_refuses_missing_files_and_names_the_build(tmp_path, capsys, monkeypatch):
    from svip.adapters.llamacpp import upstream
    from svip.eval import llamacpp_baseline

    with pytest.raises(SystemExit) as exit_info:
        llamacpp_baseline.main(["--target", str(tmp_path / "missing.gguf")])
    assert exit_info.value.code == 2 and "no such GGUF file" in capsys.readouterr().err
    target = tmp_path / "t.gguf"
    target.write_bytes(b"GGUF")
    monkeypatch.setattr(upstream, "build_dir", lambda unpatched=False: tmp_path / "no-build")
    assert llamacpp_baseline.main(["--target", str(target)]) == 2
    assert "make llamacpp-setup" in capsys.readouterr().err


def test_builds_summary_prices_each_build_against_the_target_only_requests():
    """Known answer: seconds summed per category, target-only over method; tokens compared request by request."""
    from svip.eval.llamacpp_builds import summarize

    def row(question, category, label, seconds, tokens=(1, 2)):
        return {"question": question, "category": category, "label": label, "seconds": seconds, "tokens": list(tokens)}

    rows = [
        row("a", "qa", "llamacpp", 2.0),
        row("b", "rag", "llamacpp", 6.0),
        row("a", "qa", "this: m", 1.0),
        row("b", "rag", "this: m", 6.0, tokens=(1, 3)),
        row("a", "qa", "other: m", 4.0),
        row("b", "rag", "other: m", 4.0),
    ]
    lines = summarize(rows).splitlines()
    this = next(line for line in lines if line.startswith("this: m")).split()
    other = next(line for line in lines if line.startswith("other: m")).split()
    assert this[2:] == ["1.14x", "2.00", "1.00", "1/2"]  # 8 s / 7 s overall
    assert other[2:] == ["1.00x", "0.50", "1.50", "2/2"]


def test_builds_refuses_a_missing_other_build_and_target_only_methods(tmp_path, capsys, monkeypatch):
    from svip.eval import llamacpp_builds

    monkeypatch.setattr(llamacpp_builds, "build_dir", lambda: tmp_path / "this")
    (tmp_path / "this" / "bin").mkdir(parents=True)
    (tmp_path / "this" / "bin" / "llama-server").write_text("")
    with pytest.raises(SystemExit):
        llamacpp_builds.main(["--other-bin", str(tmp_path / "other"), "--methods", "llamacpp+svip"])
    assert "no llama-server at " + str(tmp_path / "other") in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "llama-server").write_text("")
    with pytest.raises(SystemExit):
        llamacpp_builds.main(["--other-bin", str(tmp_path / "other"), "--methods", "llamacpp"])
    assert "target-only runs once" in capsys.readouterr().err
