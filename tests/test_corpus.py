"""Training text from pinned sources (`svip.training.corpus`) and the GliDe draft's loss: soft labels, answer-only positions."""

from __future__ import annotations

import random

import pytest
import torch

from svip.training.corpus import (
    candidate_files,
    docstrings,
    sample_chunks,
    source_roots,
    source_versions,
    to_exchange,
)
from svip.training.glide.train_draft import _batch, distillation_loss, teacher_pass

from helpers import tiny_llama


def _tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "tests").mkdir()
    module = '"""' + "A module that explains itself at length. " * 4 + '"""\n\n'
    module += "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(300))
    (tmp_path / "pkg" / "a.py").write_text(module)
    (tmp_path / "pkg" / "b.md").write_text("Some prose about things.\n" * 200)
    (tmp_path / "pkg" / "tests" / "test_a.py").write_text("x = 1\n" * 1000)  # a test suite: left out
    (tmp_path / "pkg" / "tiny.py").write_text("x = 1\n")  # too small: left out
    return tmp_path


def test_candidates_leave_out_test_suites_and_tiny_files(tmp_path):
    root = _tree(tmp_path)
    assert [p.name for p in candidate_files(root)] == ["a.py", "b.md"]


def test_docstrings_are_the_prose_of_a_module_and_empty_when_it_does_not_parse():
    source = '"""' + "Top of the module, described in words. " * 3 + '"""\ndef f():\n    """short"""\n'
    assert docstrings(source).startswith("Top of the module")
    assert "short" not in docstrings(source)  # one-liners (<= 80 characters) are not prose worth learning
    assert docstrings("def (:") == ""


def test_chunks_are_seeded_one_per_file_and_refuse_more_than_the_sources_hold(tmp_path, smol_tokenizer):
    roots = {"here": _tree(tmp_path)}
    first = sample_chunks(smol_tokenizer, roots, tokens=90, chunk_tokens=64, seed=1)
    assert first == sample_chunks(smol_tokenizer, roots, tokens=90, chunk_tokens=64, seed=1)
    assert len({c.path for c in first}) == len(first) == 2
    assert all(32 <= len(c.tokens) <= 64 for c in first)  # a docstrings chunk may be shorter, never below half
    with pytest.raises(ValueError, match="hold only"):
        sample_chunks(smol_tokenizer, roots, tokens=10_000, chunk_tokens=64)
    exchange = to_exchange(smol_tokenizer, first[0], lead=16)
    assert exchange["answer"] == list(first[0].tokens[16:])
    assert smol_tokenizer.decode(list(first[0].tokens[:16])) in smol_tokenizer.decode(exchange["prompt"])


def test_the_pinned_sources_are_installed():
    roots = source_roots()
    assert set(roots) == {"stdlib", "transformers", "torch"}
    assert all(candidate_files(root) for root in roots.values())
    assert set(source_versions(roots)) == set(roots) and all(source_versions(roots).values())
    with pytest.raises(ValueError, match="not an installed package"):
        source_roots(("no_such_package_here",))


def test_soft_labels_are_the_targets_top_k_and_the_loss_starts_where_drafting_does():
    target = tiny_llama(layers=3)
    records = teacher_pass(target, [[1, 2, 3, 4, 5]], [1, 2], top_k=3)
    logits = target(input_ids=torch.tensor([[1, 2, 3, 4, 5]])).logits[0]
    assert records[0]["top_ids"][:, 0].tolist() == logits.argmax(-1).tolist()
    torch.testing.assert_close(
        records[0]["top_logp"].float(), logits.log_softmax(-1).topk(3).values, atol=2e-3, rtol=1e-2
    )
    records[0]["first"] = 2
    _, labels, *_ = _batch(records, random.Random(0), 4)
    assert labels[0].tolist()[:2] == [-100, -100] and (labels[0, 2:] >= 0).all()


def test_the_soft_loss_is_the_cross_entropy_to_the_renormalised_top_k():
    logits = torch.randn(5, 11)
    top = torch.randn(5, 11).log_softmax(-1).topk(3)
    weights = top.values.softmax(-1)
    expected = -(weights * logits.log_softmax(-1).gather(-1, top.indices)).sum(-1).mean()
    torch.testing.assert_close(distillation_loss(logits, top.indices[:, 0], top.indices, top.values, True), expected)
    one_hot = torch.tensor([[0.0, -50.0, -50.0]]).expand(5, 3)  # all mass on the first: equals the hard loss
    torch.testing.assert_close(
        distillation_loss(logits, top.indices[:, 0], top.indices, one_hot, True),
        torch.nn.functional.cross_entropy(logits, top.indices[:, 0]),
    )
