"""GGUF files for llama.cpp: the 4-bit draft types come from the pinned ``llama-quantize``, recorded like the rest.

A fake ``llama-quantize`` (a script that writes a marker of its arguments)
stands in for the build, so this checks our side: the bf16 file is the
source, the new file gets its SHA256 record naming that source, a cached
file is not made again, and a failed tool leaves no file behind.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from svip.adapters.llamacpp import gguf, upstream


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tiny-model"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    return directory


@pytest.fixture
def cache(tmp_path: Path, model_dir: Path) -> Path:
    """A cache already holding the model's bf16 GGUF and its record (what ``make llamacpp-models`` leaves)."""
    root = tmp_path / "home"
    bf16 = root / "gguf" / f"{model_dir.name}-bf16.gguf"
    bf16.parent.mkdir(parents=True)
    bf16.write_bytes(b"GGUF bf16 weights")
    record = {"file": bf16.name, "outtype": "bf16", "size": bf16.stat().st_size, "sha256": gguf.sha256_of(bf16)}
    bf16.with_suffix(".json").write_text(json.dumps(record))
    return root


def _fake_quantize(tmp_path: Path, monkeypatch, *, exit_code: int = 0) -> Path:
    calls = tmp_path / "calls"
    tool = tmp_path / "llama-quantize"
    tool.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nprintf "GGUF %s" "$3" > "$2"\nexit {exit_code}\n')
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(upstream, "binary", lambda name, **_: tool)
    return calls


def test_q4_draft_is_quantized_from_the_bf16_file_and_recorded(tmp_path, monkeypatch, model_dir, cache):
    calls = _fake_quantize(tmp_path, monkeypatch)
    out = gguf.gguf_for(str(model_dir), "q4_0", root=cache)
    assert out.name == "tiny-model-q4_0.gguf" and out.read_bytes() == b"GGUF Q4_0"
    source, target, kind = calls.read_text().split()
    assert (Path(source).name, kind) == ("tiny-model-bf16.gguf", "Q4_0") and target.endswith(".partial")
    record = json.loads(out.with_suffix(".json").read_text())
    bf16_record = json.loads((cache / "gguf" / "tiny-model-bf16.json").read_text())
    assert record["outtype"] == "q4_0" and record["quantized_from"] == bf16_record["sha256"]
    assert record["sha256"] == gguf.sha256_of(out)
    assert gguf.gguf_for(str(model_dir), "q4_0", root=cache) == out
    assert len(calls.read_text().splitlines()) == 1  # cached: not quantized again


def test_a_failed_quantize_leaves_no_file_and_quotes_the_tool(tmp_path, monkeypatch, model_dir, cache):
    _fake_quantize(tmp_path, monkeypatch, exit_code=2)
    with pytest.raises(gguf.GgufError, match="llama-quantize .* failed \\(exit 2\\)"):
        gguf.gguf_for(str(model_dir), "q4_k_m", root=cache)
    assert not list((cache / "gguf").glob("*q4_k_m*"))


def test_unknown_type_and_missing_tool_name_the_fix(tmp_path, monkeypatch, model_dir, cache):
    with pytest.raises(gguf.GgufError, match="must be one of"):
        gguf.gguf_for(str(model_dir), "q2_k", root=cache)

    def missing(name, **_):
        raise upstream.BuildError(f"{name} is missing: build llama.cpp first (make llamacpp-setup)")

    monkeypatch.setattr(upstream, "binary", missing)
    with pytest.raises(gguf.GgufError, match="make llamacpp-setup"):
        gguf.gguf_for(str(model_dir), "q4_0", root=cache)
