"""GliDe/CaPE + SVIP: the pin, the patch on the pinned upstream, and its draft loop run on CPU.

Upstream is CUDA-only (``flash_attn`` at module level in ``glideModel.py``) and
carries no license, so nothing of it is committed and CI (no GitHub) skips what
needs the checkout (``make glide-setup``, or ``GLIDE_REPO=mirror``). The draft
loop the patch changes, ``glide/utils/generation_utils.greedy_search``, imports
without ``flash_attn``; it runs here on a toy draft whose next-token logits
come from a table, with the transformers names it imports but never calls
(gone from transformers 5) stubbed for the test only.
"""

from __future__ import annotations

import importlib
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from svip.adapters.glide.upstream import GLIDE
from svip.adapters.upstream import read_pin
from svip.entropy import should_stop

from helpers import pristine_clone

ROOT = Path(__file__).resolve().parents[1]
GLIDE_DIR = ROOT / "third_party" / "GliDe"
PATCH = ROOT / "patches" / "glide-svip.patch"
VOCAB = 16


def test_pin_names_the_repository_and_a_full_commit():
    pin = read_pin(GLIDE.pin)
    assert pin["repo"].endswith("NonvolatileMemory/GliDe_with_a_CaPE_ICML_24") and len(pin["commit"]) == 40
    int(pin["commit"], 16)
    assert GLIDE.patch == PATCH and PATCH.exists()


def _require_checkout() -> None:
    if not (GLIDE_DIR / ".git").exists():
        pytest.skip(f"no GliDe checkout at {GLIDE_DIR} (make glide-setup; needs the repository or GLIDE_REPO=mirror)")


def _pristine_clone(tmp_path: Path) -> Path:
    return pristine_clone(GLIDE_DIR, tmp_path / "GliDe-pristine", read_pin(GLIDE.pin)["commit"], GLIDE.sparse)


def test_patch_applies_to_the_pinned_commit_and_touches_only_marked_lines(tmp_path):
    _require_checkout()
    clone = _pristine_clone(tmp_path)
    check = subprocess.run(["git", "apply", "--check", str(PATCH)], cwd=clone, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    removed = [line for line in PATCH.read_text().splitlines() if line.startswith("-") and not line.startswith("---")]
    # the two lines changed (not only added to): upstream's hard-coded tokenizer path, kept as the fallback
    assert len(removed) == 2 and all("/home/ducunxiao/model/vicuna-7b-v1.5" in line for line in removed)
    added = [line for line in PATCH.read_text().splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert sum("[SVIP]" in line for line in added) >= 8  # every hunk says what it is for
    hunks = PATCH.read_text().split("\n@@ ")[1:]
    assert all("[SVIP]" in hunk for hunk in hunks)


# -- the draft loop, pristine vs patched, on a toy draft ----------------------------------------
class ToyDraft:
    """What ``greedy_search`` calls on a model; the next-token logits depend on the last token only."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table  # (VOCAB, VOCAB): row t = logits after token t
        self.config = SimpleNamespace(is_encoder_decoder=False)
        self.generation_config = SimpleNamespace(
            pad_token_id=0,
            eos_token_id=None,
            output_scores=True,
            output_attentions=False,
            output_hidden_states=False,
            return_dict_in_generate=True,
        )

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        return {"input_ids": input_ids}

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False):
        return model_kwargs

    def __call__(self, input_ids, **kwargs):
        return SimpleNamespace(logits=self.table[input_ids])


def _generation_utils(checkout: Path, monkeypatch):
    """``glide.utils.generation_utils`` from ``checkout``, with the transformers names it only imports stubbed."""
    import transformers

    source = (checkout / "glide" / "utils" / "generation_utils.py").read_text()
    block = source.split("from transformers import", 1)[1].split("import numpy", 1)[0]
    for name in {word.strip(" ,()\n") for word in block.replace("from transformers import", ",").split(",")}:
        if name.isidentifier() and not hasattr(transformers, name):
            monkeypatch.setattr(transformers, name, type(name, (), {}), raising=False)
    for module in [m for m in sys.modules if m == "glide" or m.startswith("glide.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.syspath_prepend(str(checkout))
    states = torch.get_rng_state(), random.getstate()
    try:
        return importlib.import_module("glide.utils.generation_utils")  # seeds torch/random at import
    finally:
        torch.set_rng_state(states[0])
        random.setstate(states[1])


def _draft(utils, model: ToyDraft, prompt: list[int], max_new: int) -> tuple[list[int], int]:
    from transformers import MaxLengthCriteria, StoppingCriteriaList

    ids = torch.tensor([prompt])
    out = utils.greedy_search(
        model, ids, stopping_criteria=StoppingCriteriaList([MaxLengthCriteria(max_length=max_new + len(prompt))])
    )
    return out["sequences"][0, len(prompt) :].tolist(), len(out["scores"])


def _tables(count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    tables = []
    for _ in range(count):
        sharpness = torch.rand(VOCAB, 1, generator=generator) * 12  # some rows near one-hot, some flat
        tables.append(torch.randn(VOCAB, VOCAB, generator=generator) * sharpness)
    return tables


def _svip_length(table: torch.Tensor, first: int, h: float, gamma: float, cap: int) -> int:
    """Our core rule, applied by hand along the toy draft's greedy path: tokens drafted until it says stop."""
    token = first
    for drafted in range(1, cap + 1):
        logits = table[token]
        if bool(should_stop(logits.float(), h=h, gamma=gamma, kind="logits")):
            return drafted
        token = int(logits.argmax())
    return cap


def test_patched_draft_loop_with_svip_off_is_upstreams(tmp_path, monkeypatch):
    _require_checkout()
    pristine = _generation_utils(_pristine_clone(tmp_path), monkeypatch)
    runs = {}
    for name, utils in (("pristine", pristine), ("patched", None)):
        if utils is None:
            utils = _generation_utils(GLIDE_DIR, monkeypatch)
            assert hasattr(utils, "svip_should_stop"), f"{GLIDE_DIR} is not patched (make glide-setup)"
        runs[name] = [_draft(utils, ToyDraft(t), [3, 5], 4) for t in _tables(12)]
    assert runs["patched"] == runs["pristine"]
    assert all(n == 4 for _, n in runs["patched"])  # upstream's fixed 4 draft tokens


def test_patched_draft_loop_stops_where_the_core_rule_says(monkeypatch):
    _require_checkout()
    utils = _generation_utils(GLIDE_DIR, monkeypatch)
    lengths = []
    for table in _tables(40):
        model = ToyDraft(table)
        model.svip_h, model.svip_gamma = 0.3, 0.15  # what smallLlamaForCausalLM.set_svip(0.3) sets
        tokens, steps = _draft(utils, model, [3, 5], 40)  # medusa_forward's cap with SVIP on: max_draft
        assert steps == len(tokens) == _svip_length(table, 5, 0.3, 0.15, 40)
        lengths.append(steps)
    assert min(lengths) == 1 and max(lengths) > 4  # cut after the first token, and drafted past upstream's 4
    flat = ToyDraft(torch.zeros(VOCAB, VOCAB))
    flat.svip_h, flat.svip_gamma = 0.0, 0.15
    assert _draft(utils, flat, [1], 40)[1] == 1  # h = 0: the first token is always kept, then stop


# -- make glide-svip: upstream's scripts, one run per method and dataset (GPU) -------------------
def test_the_table3_runs_differ_only_in_upstreams_flags(tmp_path):
    from svip.eval.glide.bench import CAPE_BINS, METHODS, jobs

    planned = jobs(tmp_path / "GliDe", tmp_path / "run", "vicuna-7b", "glide-47m", python="py", datasets=["gsm"])
    assert [j.method for j in planned] == list(METHODS)
    by = {j.method: j.argv for j in planned}
    assert by["target-only"][1].endswith("benchmark_llm_only.py") and "--small_path" not in by["target-only"]
    assert by["glide"][-12:] == ["1"] * 12 and "--svip_h" not in by["glide"]
    assert by["glide+cape"][-12:] == CAPE_BINS
    svip = by["glide+cape+svip"]
    assert svip[svip.index("--svip_h") + 1] == "0.3" and svip[svip.index("--svip_max_draft") + 1] == "40"
    assert by["glide+svip"][: len(by["glide"])] == by["glide"]  # +SVIP adds flags, changes none
    assert len({j.cwd for j in planned}) == 5  # each run its own directory: resumable, outputs never mixed


def test_table3_is_speedup_over_target_only_with_accepted_length(tmp_path):
    import json

    from svip.eval.glide.bench import collect, jobs, table

    planned = jobs(tmp_path / "GliDe", tmp_path / "run", "t", "d", datasets=["mtbench", "gsm"])
    speeds = {"target-only": 10.0, "glide": 20.0, "glide+svip": 21.0, "glide+cape": 24.0, "glide+cape+svip": 25.0}
    for job in planned[:-1]:  # the last run (gsm, glide+cape+svip) has not finished
        out = job.cwd / "benchmark" / "rebuttal-cape" / "m"
        out.mkdir(parents=True)
        metrics = {"speed": speeds[job.method] * (2 if job.dataset == "gsm" else 1), "mean_accepted_tokens": 3.0}
        (out / f"metrics_{job.dataset}120000_beam1_batch1.jsonl").write_text(json.dumps(metrics))
    assert planned[-1].metrics() is None and planned[0].metrics() is not None
    rows = {line.split()[0]: line.split()[1:] for line in table(collect(planned)).splitlines()[2:]}
    assert rows["glide"] == ["2.00", "(3.00)", "2.00", "(3.00)", "2.00", "(3.00)"]
    assert rows["glide+cape+svip"] == ["2.50", "(3.00)", "-", "2.50", "(3.00)"]
