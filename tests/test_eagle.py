"""EAGLE-2 + SVIP: method strings, the base-model export, the pin and patch, the harness wiring,
and -- where the patched checkout and its venv exist (``make eagle-setup``) -- real EAGLE runs.

The integration tests run EAGLE in its own venv as a subprocess (``svip.eval.eagle.check``)
and skip with the reason printed when the checkout or the venv is missing (e.g. in CI, which
cannot reach GitHub).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from svip.adapters.eagle import EagleMethod, is_eagle_method
from svip.adapters.eagle.loading import eagle_models
from svip.adapters.eagle.upstream import PATCH, read_pin
from svip.adapters.vanilla import RoundStats, SamplingConfig
from svip.eval.datasets import BUILTIN_SETS, EAGLE_SETS, load_questions
from svip.eval.eagle.export import export_base, safetensors_names
from svip.eval.methods import MethodRunner, canonical_method
from svip.eval.prompts import encode_prompt
from svip.eval.runner import BenchConfig
from svip.method import Decoded
from svip.runtime import cache_root
from svip.training.eagle.train_prompts import build_prompts

from helpers import pristine_clone

ROOT = Path(__file__).resolve().parents[1]
EAGLE_DIR = Path(os.environ.get("SVIP_EAGLE_DIR", ROOT / "third_party" / "EAGLE"))
EAGLE_PY = ROOT / "third_party" / "eagle-venv" / "bin" / "python"
HEAD = ROOT / "adapters" / "eagle" / "heads" / "smollm2-135m"
QWEN_HEAD = ROOT / "adapters" / "eagle" / "heads" / "qwen2.5-coder-1.5b"
# the EAGLE-3 head for the same target: 139 MB, trained into the cache (make eagle3-head-qwen), not shipped
QWEN_EAGLE3_HEAD = cache_root() / "eagle" / "heads" / "qwen2.5-coder-1.5b-eagle3"


# -- method strings -------------------------------------------------------------------------------
def test_method_strings_round_trip_and_default_to_upstream_tree():
    assert EagleMethod.parse("eagle2") == EagleMethod(total=60, depth=7, top_k=10, h=None)
    svip = EagleMethod.parse("eagle2-svip:variant=weighted,total=20")
    assert (svip.h, svip.gamma, svip.variant, svip.total) == (0.3, 0.15, "weighted", 20)
    for method in (
        "eagle2",
        "eagle2:depth=3",
        "eagle2-svip",
        "eagle2-svip:h=0.2,gamma=0.1,variant=top,total=20,depth=4,top_k=5",
        "eagle2+svip-adaptive",
        "eagle2:total=30,variant=top+svip-adaptive:prior=2",
    ):
        parsed = EagleMethod.parse(method)
        assert EagleMethod.parse(parsed.spec) == parsed
    adaptive = EagleMethod.parse("eagle2+svip-adaptive")
    assert adaptive.svip and adaptive.h is None and adaptive.adaptive.startswith("svip-adaptive:")
    assert (
        canonical_method("eagle2+svip") == "eagle2:total=60,depth=7,top_k=10,variant=min+svip:h=0.3,gamma=0.15,max=40"
    )
    assert is_eagle_method("eagle2:total=20") and not is_eagle_method("svip") and not is_eagle_method("eagle3")


@pytest.mark.parametrize(
    "method, message",
    [
        ("eagle2:h=0.3", "unknown parameter 'h'"),
        ("eagle2:variant=mean+svip", "variant must be one of"),
        ("eagle2:total=ten", "total must be an integer"),
        ("eagle2:top_k=60", "top_k must be an integer in"),
        ("eagle2+svip:gamma=0", "gamma must be a finite number > 0"),
        ("eagle2:depth", "expected key=value"),
        ("eagle2+svip-adaptive:max=5", "set depth=N"),
        ("eagle2+constant:k=3", "got \\+constant"),
    ],
)
def test_bad_method_strings_are_refused_with_the_reason(method, message):
    with pytest.raises(ValueError, match=message):
        EagleMethod.parse(method)


def test_bench_config_needs_a_head_and_keeps_eagle_runs_separate():
    with pytest.raises(ValueError, match="needs an EAGLE head"):
        BenchConfig(methods=["eagle2"])
    with pytest.raises(ValueError, match="only eagle2"):
        BenchConfig(methods=["eagle2", "svip"], options={"eagle_head": "head"}, draft=None)
    config = BenchConfig(
        methods=["eagle2", "eagle2-svip:variant=top"], options={"eagle_head": "head"}, questions="eagle"
    )
    assert config.all_methods[0] == "target-only" and len(config.methods) == 2
    assert config.draft is None  # EAGLE's own models read no draft: one stored setting, whatever --draft said


# -- harness wiring without EAGLE -----------------------------------------------------------------
class _FakeEagle:
    """Stands in for EagleGenerator: records what the runner asked for."""

    sampling = SamplingConfig()
    vocab_size = 100

    def __init__(self):
        self.calls = []

    def decode(self, request, method):
        self.calls.append((method, request.max_new_tokens))
        return Decoded([1] * request.max_new_tokens, [RoundStats(0, 0, request.max_new_tokens)])

    def target_only_method(self):
        from svip.adapters.eagle.generator import EagleMethodRunner

        return EagleMethodRunner(self, None)


def test_runner_sends_target_only_and_eagle_methods_to_the_eagle_generator():
    fake = _FakeEagle()
    runner = MethodRunner.for_models(eagle_models(fake))
    runner.run("target-only", [5, 6], max_new_tokens=3, stop_tokens=set(), seed=0)
    runner.run("eagle2-svip:total=20", [5, 6], max_new_tokens=4, stop_tokens=set(), seed=0)
    assert fake.calls[0] == (None, 3)
    assert fake.calls[1][0] == EagleMethod(total=20, h=0.3) and fake.calls[1][1] == 4
    with pytest.raises(ValueError, match="drives eagle2 only"):
        runner.run("svip", [5], max_new_tokens=2, stop_tokens=set(), seed=0)


def test_an_eagle_run_is_loaded_by_its_kind_and_stores_its_cost_curve(tmp_path, smol_tokenizer):
    """bench's one loading path hands the run to the kind's ``load_models``; the runner itself names no kind."""
    import dataclasses

    from svip.adapters import registry
    from svip.adapters.eagle.kind import EAGLE2_KIND
    from svip.eval.records import read_records
    from svip.eval.runner import run_bench

    class Fake(_FakeEagle):
        vocab_size = smol_tokenizer.vocab_size + 1000

        def cost_curve(self, prompt):
            return {"verify_prompt_tokens": len(prompt)}

    requests = []

    def load(request, sampling):
        requests.append(request)
        return eagle_models(Fake(), smol_tokenizer, request)

    config = BenchConfig(
        per_category=1, shortest=True, max_new_tokens=3, methods=["eagle2"], options={"eagle_head": "head"}
    )
    registry.register(dataclasses.replace(EAGLE2_KIND, load_models=load))
    try:
        run_bench(config, tmp_path / "run", progress=False)
    finally:
        registry.register(EAGLE2_KIND)
    assert len(requests) == 1 and requests[0].options == {"eagle_head": "head"} and requests[0].draft is None
    records = read_records(tmp_path / "run" / "results.jsonl")
    assert [r["method"] for r in records[:2]] == ["target-only", "eagle2:total=60,depth=7,top_k=10"]
    assert all(r["token_match"] == 1.0 for r in records if r["method"] != "target-only")
    environment = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert environment["cost_curve"]["verify_prompt_tokens"] > 0 and "cost_curves" not in environment


def test_eagle_question_sets_form_one_run_with_a_column_per_set():
    questions = load_questions("eagle")
    parts = {name: load_questions(f"eagle-{name}") for name in EAGLE_SETS}
    assert len(questions) == sum(len(p) for p in parts.values())
    assert len({q.question_id for q in questions}) == len(questions)
    assert [g for g in dict.fromkeys(q.group for q in questions)] == list(EAGLE_SETS.values())


# -- export and training prompts ------------------------------------------------------------------
def test_export_writes_what_transformers_4_and_eagle_read(tmp_path):
    import torch
    from safetensors.torch import save_file

    source = tmp_path / "prepared"
    source.mkdir()
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "dtype": "float32",
        "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
    }
    (source / "config.json").write_text(json.dumps(config))
    save_file(
        {"model.embed_tokens.weight": torch.zeros(4, 2), "model.norm.weight": torch.ones(2)},
        str(source / "model.safetensors"),
    )
    vocab = {"a": 0, "b": 1, "ab": 2, "<|im_end|>": 3}
    tokenizer = {
        "model": {"type": "BPE", "vocab": vocab, "merges": [["a", "b"]]},
        "added_tokens": [
            {
                "id": 3,
                "content": "<|im_end|>",
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "single_word": False,
                "special": True,
            }
        ],
    }
    (source / "tokenizer.json").write_text(json.dumps(tokenizer))
    (source / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "<|im_end|>", "tokenizer_class": "TokenizersBackend"})
    )
    out = export_base(source, tmp_path / "eagle")
    exported = json.loads((out / "config.json").read_text())
    assert (
        exported["rope_theta"] == 100000.0
        and "rope_parameters" not in exported
        and exported["torch_dtype"] == "float32"
    )
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == {
        "model.embed_tokens.weight": "model.safetensors",
        "model.norm.weight": "model.safetensors",
    }
    assert safetensors_names(out / "model.safetensors") == ["model.embed_tokens.weight", "model.norm.weight"]
    assert json.loads((out / "vocab.json").read_text()) == vocab
    assert (out / "merges.txt").read_text().splitlines() == ["#version: 0.2", "a b"]
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "GPT2Tokenizer"
    assert export_base(source, tmp_path / "eagle") == out  # idempotent


def test_training_prompts_are_disjoint_from_every_eval_set_and_deterministic():
    eval_turns = {t for name in BUILTIN_SETS for q in load_questions(name) for t in q.turns}
    prompts = build_prompts(400, seed=0)
    assert len(set(prompts)) == 400 and not set(prompts) & eval_turns
    assert build_prompts(400, seed=0) == prompts
    assert build_prompts(5, exclude={prompts[0]}, seed=0)[0] != prompts[0]
    with pytest.raises(ValueError, match="distinct training prompts"):
        build_prompts(10**6)


def test_styled_prompts_take_the_five_benchmark_shapes_and_are_in_no_eval_set():
    from svip.training.eagle.styled_prompts import styled_prompts

    eval_turns = {t for name in BUILTIN_SETS for q in load_questions(name) for t in q.turns}
    prompts = styled_prompts(600, seed=0)
    assert len(set(prompts)) == 600 and not set(prompts) & eval_turns
    assert styled_prompts(600, seed=0) == prompts and styled_prompts(600, seed=1) != prompts
    code = [p for p in prompts if p.startswith("Complete the code I provided.\n\ndef ")]
    articles = [p for p in prompts if p.startswith("Summarize: ")]
    questions = [p for p in prompts if p.endswith("?") and "\n" not in p and len(p) < 80]
    problems = [p for p in prompts if "$" in p or re.search(r"\d+ ", p)]
    assert min(len(code), len(articles), len(questions), len(problems)) >= 20
    assert all(180 <= len(p.split()) - 1 <= 420 for p in articles)
    assert all(">>> " in p for p in code)
    assert styled_prompts(5, exclude={prompts[0]}, seed=0)[0] != prompts[0]
    first = styled_prompts(5, seed=0)  # one of each shape, in turn
    assert first[1] in code and first[3] in articles and first[2] in questions and first[4] in problems


def test_source_prompts_quote_pinned_docs_are_distinct_deterministic_and_in_no_eval_set():
    from svip.training.eagle.train_prompts import source_prompts

    eval_turns = {t for name in BUILTIN_SETS for q in load_questions(name) for t in q.turns}
    prompts = source_prompts(40, seed=0, sources=("stdlib",))
    assert len(set(prompts)) == 40 and not set(prompts) & eval_turns
    assert source_prompts(40, seed=0, sources=("stdlib",)) == prompts
    assert source_prompts(40, seed=1, sources=("stdlib",)) != prompts
    quoted = [p.split("\n\n", 1)[1] for p in prompts if "\n\n" in p]  # a task line, then a docstring paragraph
    named = [p for p in prompts if "\n\n" not in p]  # or a question on a documented function
    assert quoted and named and all(200 <= len(q) <= 700 for q in quoted)
    assert source_prompts(5, exclude={prompts[0]}, seed=0, sources=("stdlib",))[0] != prompts[0]
    with pytest.raises(ValueError, match="source prompts available"):
        source_prompts(10**5, sources=("stdlib",))


@pytest.mark.parametrize("head", [HEAD, QWEN_HEAD], ids=lambda p: p.name)
def test_shipped_heads_are_in_upstream_format(head):
    assert (head / "model.safetensors").exists(), f"no shipped head at {head}"
    config = json.loads((head / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and config["bias"] is True
    names = safetensors_names(head / "model.safetensors")
    assert "fc.weight" in names and "layers.0.self_attn.q_proj.weight" in names
    assert not any(n.startswith("embed_tokens") for n in names)  # EaModel takes the base model's embedding
    assert (head / "model.safetensors").stat().st_size <= 30 * 2**20  # fp16, small enough to ship
    training = json.loads((head / "training.json").read_text())
    assert 0 < training["epochs"][-1]["held_out_top1"] < 1
    if (head / "draft_vocab.json").exists():
        vocab = json.loads((head / "draft_vocab.json").read_text())
        assert vocab == sorted(set(vocab)) and 0 <= vocab[0] and vocab[-1] < config["vocab_size"]
        assert len(vocab) == training["draft_vocab"] < config["vocab_size"]


# -- pin and patch --------------------------------------------------------------------------------
def test_pin_names_the_repository_and_a_full_commit():
    pin = read_pin()
    assert pin["repo"].endswith("SafeAILab/EAGLE") and len(pin["commit"]) == 40
    int(pin["commit"], 16)


def _require_checkout() -> None:
    if not (EAGLE_DIR / ".git").exists():
        pytest.skip(f"no EAGLE checkout at {EAGLE_DIR} (make eagle-setup; needs the repository or EAGLE_REPO=mirror)")


def _pristine_clone(tmp_path: Path) -> Path:
    return pristine_clone(EAGLE_DIR, tmp_path / "EAGLE-pristine", read_pin()["commit"], ["/eagle/"])


def test_patch_applies_to_the_pinned_commit_and_only_adds_lines(tmp_path):
    _require_checkout()
    clone = _pristine_clone(tmp_path)
    check = subprocess.run(
        ["git", "apply", "--check", "--verbose", str(PATCH)], cwd=clone, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    stat = subprocess.run(
        ["git", "apply", "--numstat", str(PATCH)], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.split()
    files = {stat[i + 2]: stat[i + 1] for i in range(0, len(stat), 3)}  # path -> deleted lines
    # EAGLE-3's and EAGLE-2's drafters, and Qwen2's modeling file (the three layers EAGLE-3 reads);
    # lines added only: upstream code is untouched
    assert files == {"eagle/model/cnets.py": "0", "eagle/model/cnets1.py": "0", "eagle/model/modeling_qwen2_kv.py": "0"}


# -- real EAGLE runs (EAGLE's venv) ---------------------------------------------------------------
def _by_question(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """check.py's rows as question id -> method -> row."""
    by_question: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_question.setdefault(row["question_id"], {})[row["method"]] = row
    return by_question


def _check(env_dir: Path, *args: str, head: Path = HEAD) -> list[dict]:
    if not EAGLE_PY.exists():
        pytest.skip(f"no EAGLE venv at {EAGLE_PY} (make eagle-setup)")
    if not head.exists():
        pytest.skip(f"no EAGLE head at {head}")
    env = {**os.environ, "SVIP_EAGLE_DIR": str(env_dir), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [str(EAGLE_PY), "-m", "svip.eval.eagle.check", "--head", str(head), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_patched_eagle_with_svip_off_matches_unpatched_upstream(tmp_path):
    _require_checkout()
    pristine = _pristine_clone(tmp_path)
    args = ("--upstream", "--per-category", "1", "--max-new-tokens", "24")
    upstream, patched = _check(pristine, *args), _check(EAGLE_DIR, *args)
    assert len(upstream) == 5
    assert upstream == patched  # same tokens and the same number of rounds, prompt by prompt


@pytest.mark.slow
def test_greedy_eagle2_svip_is_token_identical_to_target_only(smol_target, smol_tokenizer):
    _require_checkout()
    methods = [
        "target-only",
        "eagle2",
        "eagle2-svip",
        "eagle2-svip:variant=weighted",
        "eagle2-svip:variant=top,total=20,depth=4,top_k=5",
        "eagle2+svip-adaptive",  # depth by the cost-aware rule, tree size by the measured verify curve
        "eagle2:total=20,depth=4,top_k=5,variant=top+svip-adaptive",
    ]
    rows = _check(EAGLE_DIR, "--per-category", "1", "--max-new-tokens", "32", "--methods", *methods)
    by_question = _by_question(rows)
    assert len(by_question) == 5
    from svip.adapters.vanilla import SpeculativeEngine

    engine = SpeculativeEngine(smol_target)  # transformers 5 in this process: an independent implementation
    cut = False
    for question_id, runs in by_question.items():
        reference = runs["target-only"]["tokens"]
        for method in methods[1:]:
            run = runs[method]
            assert run["tokens"] == reference, (question_id, method)
            assert sum(run["emitted"]) == len(run["tokens"])
            assert all(0 <= a <= d for a, d in zip(run["accepted"], run["drafted"]))
        assert all(level == 8 for level in runs["eagle2"]["levels"])  # upstream tree: root + depth 7, every round
        assert all(size == 59 for size in runs["eagle2"]["sizes"])
        assert all(1 <= size <= 59 for size in runs["eagle2+svip-adaptive"]["sizes"])
        cut |= any(level < 8 for level in runs["eagle2-svip"]["levels"])
        question = next(q for q in load_questions("eagle") if q.question_id == question_id)
        prompt = encode_prompt(smol_tokenizer, question.turns[0])
        ours = engine.generate(prompt, max_new_tokens=32, stop_tokens={smol_tokenizer.eos_token_id}).tokens
        assert ours == reference, question_id  # EAGLE's base model decodes like transformers' Llama
    assert cut, "SVIP never cut a tree: the entropy stop is not reaching EAGLE"


def _random_eagle3_head(directory: Path, draft_vocab: int = 8192, like: Path = HEAD) -> Path:
    """An EAGLE-3 head in upstream's format (``cnets.Model``, ``d2t``/``t2d``) shaped for the base model of the
    shipped EAGLE-1/2 head ``like``, random weights: for the mechanics only (no EAGLE-3 head is trained here)."""
    import torch
    from safetensors.torch import save_file

    config = json.loads((like / "config.json").read_text())
    config.update(draft_vocab_size=draft_vocab, architectures=["LlamaForCausalLMEagle3"])
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    hidden, layers = config["hidden_size"], 3
    state = {
        "fc.weight": torch.randn(hidden, layers * hidden) / (layers * hidden) ** 0.5,
        "norm.weight": torch.ones(hidden),
        "lm_head.weight": torch.randn(draft_vocab, hidden) * 0.2,  # peaked enough that some levels pass SVIP
        "d2t": torch.arange(draft_vocab) * 5 - torch.arange(draft_vocab),  # draft index i -> target id 5i
        "t2d": torch.zeros(config["vocab_size"], dtype=torch.bool).index_fill_(0, torch.arange(draft_vocab) * 5, True),
    }
    kv = config["num_key_value_heads"] * config.get("head_dim", hidden // config["num_attention_heads"])
    shapes = {
        "self_attn.q_proj": (hidden, 2 * hidden),
        "self_attn.k_proj": (kv, 2 * hidden),
        "self_attn.v_proj": (kv, 2 * hidden),
        "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (config["intermediate_size"], hidden),
        "mlp.up_proj": (config["intermediate_size"], hidden),
        "mlp.down_proj": (hidden, config["intermediate_size"]),
    }
    for name, shape in shapes.items():
        state[f"midlayer.{name}.weight"] = torch.randn(*shape) / shape[1] ** 0.5
    for norm in ("input_layernorm", "hidden_norm", "post_attention_layernorm"):
        state[f"midlayer.{norm}.weight"] = torch.ones(hidden)
    save_file({k: v.contiguous() for k, v in state.items()}, str(directory / "model.safetensors"))
    return directory


@pytest.mark.slow
def test_greedy_eagle3_svip_is_token_identical_to_target_only(tmp_path):
    """EAGLE-3's drafter (``cnets.py``, reduced vocabulary through ``d2t``) with the patch's SVIP stop, on SmolLM2."""
    _require_checkout()
    head = _random_eagle3_head(tmp_path / "eagle3-head")
    methods = ["target-only", "eagle2", "eagle2+svip", "eagle2:total=20,depth=4,top_k=5+svip", "eagle2+svip-adaptive"]
    rows = _check(EAGLE_DIR, "--per-category", "1", "--max-new-tokens", "24", "--methods", *methods, head=head)
    by_question = _by_question(rows)
    assert len(by_question) == 5
    cut = False
    for question_id, runs in by_question.items():
        for method in methods[1:]:
            assert runs[method]["tokens"] == runs["target-only"]["tokens"], (question_id, method)
        assert all(level == 8 for level in runs["eagle2"]["levels"])  # upstream tree: root + depth 7
        cut |= any(level < 8 for level in runs["eagle2+svip"]["levels"])
        drafted = {t for tree in runs["eagle2"]["trees"] for t in tree[1:]}
        assert drafted and all(t % 5 == 0 and t < 5 * 8192 for t in drafted)  # only d2t's image is drafted
    assert cut, "SVIP never cut an EAGLE-3 tree"


@pytest.mark.slow
def test_greedy_eagle3_svip_on_qwen2_reads_three_layers_and_is_token_identical_to_target_only(tmp_path):
    """Qwen2.5's EAGLE modeling file returns EAGLE-3's three layers only with the patch: a random EAGLE-3 head
    on the 1.5B (fp32) drafts from them and every method decodes as target-only does."""
    _require_checkout()
    if not (QWEN_HEAD / "model.safetensors").exists():
        pytest.skip(f"no head at {QWEN_HEAD}")
    head = _random_eagle3_head(tmp_path / "eagle3-qwen-head", like=QWEN_HEAD)
    methods = ["target-only", "eagle2", "eagle2+svip", "eagle2:total=16,depth=3,top_k=15+svip"]  # the CPU preset's tree
    args = ("--base", "qwen2.5-coder-1.5b", "--kernels", "onednn", "--per-category", "1", "--max-new-tokens", "16")
    rows = _check(EAGLE_DIR, *args, "--methods", *methods, head=head)
    by_question = _by_question(rows)
    assert len(by_question) == 5
    for question_id, runs in by_question.items():
        for method in methods[1:]:
            assert runs[method]["tokens"] == runs["target-only"]["tokens"], (question_id, method)
        drafted = {t for tree in runs["eagle2"]["trees"] for t in tree[1:]}
        assert drafted and all(t % 5 == 0 and t < 5 * 8192 for t in drafted)  # only d2t's image is drafted


@pytest.mark.slow
@pytest.mark.parametrize("head", [QWEN_HEAD, QWEN_EAGLE3_HEAD], ids=["eagle2-head", "eagle3-head"])
def test_greedy_eagle_with_the_qwen_head_is_token_identical_to_target_only(head):
    """Qwen2.5-Coder-1.5B + the shipped head (reduced draft vocabulary) or the trained EAGLE-3 head, fp32,
    oneDNN kernels, 10 EAGLE prompts."""
    _require_checkout()
    if not (head / "model.safetensors").exists():
        pytest.skip(f"no head at {head}")
    methods = ["target-only", "eagle2", "eagle2+svip", "eagle2:total=16,depth=3,top_k=15+svip", "eagle2+svip-adaptive"]
    args = ("--base", "qwen2.5-coder-1.5b", "--kernels", "onednn", "--per-category", "2", "--max-new-tokens", "24")
    rows = _check(EAGLE_DIR, *args, "--methods", *methods, head=head)
    by_question = _by_question(rows)
    assert len(by_question) == 10
    vocab = head.name == "qwen2.5-coder-1.5b" and set(json.loads((head / "draft_vocab.json").read_text()))
    from svip.adapters.vanilla import SpeculativeEngine
    from svip.eval.loading import Placement, load_model, load_tokenizer
    from svip.kernels import pack_linears

    tokenizer = load_tokenizer("qwen2.5-coder-1.5b")
    target = load_model("qwen2.5-coder-1.5b", Placement(dtype="fp32"))
    pack_linears(target, "onednn")
    engine = SpeculativeEngine(target)  # transformers 5 in this process: an independent implementation
    accepted = 0
    for question_id, runs in by_question.items():
        reference = runs["target-only"]["tokens"]
        for method in methods[1:]:
            assert runs[method]["tokens"] == reference, (question_id, method)
            accepted += sum(runs[method]["accepted"])
        question = next(q for q in load_questions("eagle") if q.question_id == question_id)
        prompt = encode_prompt(tokenizer, question.turns[0])
        ours = engine.generate(prompt, max_new_tokens=24, stop_tokens={tokenizer.eos_token_id}).tokens
        assert ours == reference, question_id
    assert accepted > 0 and vocab != set()  # the head drafted tokens the target accepted
    tree = [a for runs in by_question.values() for a in runs["eagle2"]["accepted"][1:]]  # after the prefill round
    # the shipped head (varied text) keeps ~1.2 drafted tokens a round on the GPU tree, the EAGLE-3 one ~0.95 (bf16
    # runs); the first, templated-only head kept ~0.55 (docs/training.md): a head that does not carry to these prompts fails here
    assert sum(tree) / len(tree) > 0.8, sum(tree) / len(tree)


# -- the patched tree drafter itself (imports in this environment; tiny random head) ----------------
def _tiny_tree_drafter(total: int = 20, depth: int = 4, top_k: int = 4, version: int = 2):
    """A random patched drafter: EAGLE-2's (``cnets1``, drafting through ``head``) or EAGLE-3's (``cnets``: its
    own LM head over a 48-token draft vocabulary mapped to target ids by ``d2t``, fed 3 fused target layers)."""
    _require_checkout()
    import torch

    sys.path.insert(0, str(EAGLE_DIR))
    try:
        from eagle.model import cnets, cnets1
        from eagle.model.configs import EConfig
    finally:
        sys.path.remove(str(EAGLE_DIR))
    Model = cnets1.Model if version == 2 else cnets.Model
    if not hasattr(Model, "set_svip"):
        pytest.skip(f"{EAGLE_DIR} is not patched (make eagle-setup)")
    torch.manual_seed(0)
    config = EConfig(
        vocab_size=64,
        draft_vocab_size=48,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=1,
        max_position_embeddings=256,
        pad_token_id=0,
    )
    config.rope_scaling = None  # transformers 5 fills in a RoPE dict that this 4.x-era class reads as scaling
    model = Model(config, total_tokens=total, depth=depth, top_k=top_k).eval()
    if version == 3:
        model.d2t.copy_(torch.arange(48) * 16 // 12 - torch.arange(48))  # draft index i -> target id 4i//3
    model.init_tree()
    head = torch.nn.Linear(32, 64, bias=False)
    return model, head


def _grow(model, head):
    import torch

    model.reset_kv()
    hidden = torch.randn(1, 6, model.fc.in_features if hasattr(model, "d2t") else 32)  # EAGLE-3: 3 target layers
    ids = torch.randint(1, 64, (1, 7))
    draft_tokens, retrieve_indices, tree_mask, positions = model.topK_genrate(hidden, ids, head, None)
    return draft_tokens.shape[1], model.svip_levels, int(positions.max())


@pytest.mark.parametrize("version", [2, 3], ids=["eagle2", "eagle3"])
def test_patched_tree_is_upstream_sized_with_svip_off_and_cut_by_the_entropy_bound(version):
    model, head = _tiny_tree_drafter(total=20, depth=4, top_k=4, version=version)
    assert _grow(model, head)[:2] == (20, 5)  # svip off: root + 19 nodes chosen from all 4 levels grown
    model.set_svip(h=0.0)  # sqrt(gamma*H) > 0 for any H > 0: stop after the root's children
    nodes, levels, deepest = _grow(model, head)
    assert (nodes, levels, deepest) == (5, 1, 1)  # root + top_k children, total clamped to what was scored
    model.set_svip(h=100.0)  # never stops
    assert _grow(model, head)[:2] == (20, 5)
    model.set_svip(None)
    assert _grow(model, head)[:2] == (20, 5)
    with pytest.raises(ValueError, match="variant"):
        model.set_svip(0.3, variant="mean")


class _StubRule:
    """A rule with fixed answers: grow to ``levels`` levels at full width (4), verify ``size`` nodes."""

    def __init__(self, levels: int, size: int) -> None:
        self.levels, self.size, self.asked, self.candidates = levels, size, [], []

    def frontier_width(self, entropy: float, levels: int, candidates=None) -> int:
        self.asked.append(levels)
        self.candidates.append(None if candidates is None else candidates.numel())
        return 4 if levels < self.levels else 0

    def tree_size(self, path_log_probs) -> int:
        self.offered = path_log_probs
        return self.size


@pytest.mark.parametrize("version", [2, 3], ids=["eagle2", "eagle3"])
def test_a_rule_sets_the_patched_trees_depth_and_size(version):
    model, head = _tiny_tree_drafter(total=20, depth=4, top_k=4, version=version)
    rule = _StubRule(levels=2, size=3)
    model.set_svip(None, rule=rule)
    nodes, levels, deepest = _grow(model, head)
    assert (nodes, levels) == (4, 2) and rule.asked == [1, 2]  # root + 3 nodes; asked after levels 1 and 2
    assert rule.candidates == [4, 16]  # each level's new nodes: the root's 4 children, then 4 x 4
    assert 1 <= deepest <= 2 and rule.offered.numel() == 19  # the 19 best of 4 + 16 scored nodes, best first
    assert bool((rule.offered[:-1] >= rule.offered[1:]).all())
    with pytest.raises(ValueError, match="not both"):
        model.set_svip(0.3, rule=rule)
    model.set_svip(None)
    assert _grow(model, head)[:2] == (20, 5)  # rule removed: upstream again


class _WidthRule(_StubRule):
    """A rule that also sets each level's width: ``widths[i]`` nodes of level i + 1 expanded (0: stop)."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__(levels=len(widths), size=0)
        self.widths = widths

    def frontier_width(self, entropy: float, levels: int, candidates=None) -> int:
        self.asked.append(levels)
        self.candidates.append(tuple(candidates.shape))
        return self.widths[levels - 1] if levels <= len(self.widths) else 0

    def tree_size(self, path_log_probs) -> int:
        return path_log_probs.numel()  # every node scored


def _paths(draft_tokens, tree_mask) -> set[tuple[int, ...]]:
    """Each drafted node's token path from the root (its ancestors by the verify mask, in tree order)."""
    tokens, mask = draft_tokens[0].tolist(), tree_mask[0, 0].bool()
    return {tuple(tokens[j] for j in range(1, i + 1) if mask[i, j]) for i in range(1, len(tokens))}


@pytest.mark.parametrize("version", [2, 3], ids=["eagle2", "eagle3"])
def test_a_rule_sets_each_levels_width_and_the_narrow_tree_is_part_of_the_wide_one(version):
    """A node's children depend only on its path (the draft's tree mask), so a tree that expands fewer nodes must
    be a subtree of the one that expands them all: wrong parents or masks would make other paths."""
    import torch

    model, head = _tiny_tree_drafter(total=64, depth=4, top_k=4, version=version)
    hidden = torch.randn(1, 6, model.fc.in_features if hasattr(model, "d2t") else 32)
    ids = torch.randint(1, 64, (1, 7))

    def grow(widths: list[int]) -> tuple[set, _WidthRule, int]:
        rule = _WidthRule(widths)
        model.set_svip(None, rule=rule)
        model.reset_kv()
        draft_tokens, _, tree_mask, positions = model.topK_genrate(hidden, ids, head, None)
        return _paths(draft_tokens, tree_mask), rule, int(positions.max())

    wide, _, deepest = grow([4, 4, 0])  # 4 + 16 + 16 nodes
    assert len(wide) == 36 and deepest == 3
    narrow, rule, deepest = grow([2, 1, 0])  # the root's 2 best children expanded, then the best of their 8
    assert rule.asked == [1, 2, 3] and rule.candidates == [(4,), (2, 4), (1, 4)]
    assert len(narrow) == 4 + 8 + 4 and deepest == 3
    assert narrow <= wide  # the same paths, and none the wide tree does not have
    chain, rule, _ = grow([1, 1, 1, 0])
    assert len(chain) == 16 and rule.asked == [1, 2, 3, 4]
    assert model.tree_mask_init.shape[-1] == 4 and model.position_ids.numel() == 4  # init_tree's buffers back
    model.set_svip(None)
    assert _grow(model, head)[:2] == (64, 5)  # rule removed: upstream's 63 best of 4 + 4 x 16 nodes


def test_the_adaptive_tree_rule_cuts_only_between_distinct_scores():
    import torch

    from svip.adapters.eagle.adaptive import AdaptiveTreeRule
    from svip.adaptive import AdaptiveSvipPolicy

    policy = AdaptiveSvipPolicy()
    policy.seed_costs({"target_step_s": 1.0, "verify_over_step": {"2": 2.0, "64": 64.0}})  # one node pays best
    rule = AdaptiveTreeRule(policy, top_k=4, total=20)
    rule.start_draft()
    assert rule.tree_size(torch.log(torch.tensor([0.5, 0.3, 0.2]))) == 1
    tied = torch.log(torch.tensor([0.5, 0.5, 0.5, 0.1]))  # a child with its parent's score may come first
    assert rule.tree_size(tied) == 3
    assert policy.verify_tokens == rule.verify_tokens and rule.verify_tokens(1) == 5 and rule.verify_tokens(30) == 20


def _paths_by_hand(node_logits, candidates, retrieve_indices):
    """Upstream's greedy check spelled out: walk each path while its next token is its node's argmax."""
    lengths = []
    for path, nodes in zip(candidates.tolist(), retrieve_indices.tolist()):
        length = 0
        while length + 1 < len(path) and path[length + 1] == int(node_logits[nodes[length]].argmax()):
            length += 1
        lengths.append(length)
    best = lengths.index(max(lengths)) if max(lengths) > 0 else 0
    return best, max(lengths), node_logits[retrieve_indices[best, max(lengths)]]


def test_greedy_path_picks_upstreams_path_from_per_node_argmaxes():
    import torch

    from svip.adapters.eagle.generator import greedy_path

    generator = torch.Generator().manual_seed(0)
    lengths_seen = set()
    for trial in range(200):
        nodes, vocab, depth = 12, 6, 4
        logits = torch.randint(0, 3, (nodes, vocab), generator=generator).float()  # many ties: first max wins
        paths = torch.randint(0, nodes, (5, depth + 1), generator=generator)
        paths[:, 0] = 0  # every path starts at the root
        paths[trial % 5, 3:] = -1  # a shorter path, padded as upstream pads (-1 reads the last node)
        argmax = logits.argmax(-1)
        tokens = torch.randint(0, vocab, (5, depth + 1), generator=generator)
        follow = torch.rand(5, depth, generator=generator) < (0.9 if trial % 2 else 0.2)  # long paths, then short
        tokens[:, 1:] = torch.where(follow, argmax[paths[:, :-1]], tokens[:, 1:])
        tokens[paths == -1] = -1
        best, length, next_logits = greedy_path(logits, tokens, paths)
        expected = _paths_by_hand(logits, tokens, paths)
        assert (int(best), int(length)) == expected[:2]
        assert torch.equal(next_logits, expected[2])
        lengths_seen.add(int(length))
    assert lengths_seen >= {0, 1, 2, 3, 4}  # the check saw rejections at the root and whole paths accepted


def test_greedy_path_is_upstreams_evaluate_posterior_on_gathered_logits():
    import torch

    from svip.adapters.eagle.generator import EagleSetupError, greedy_path, import_eagle

    try:
        _, _, utils = import_eagle()
    except EagleSetupError as error:
        pytest.skip(str(error))
    generator = torch.Generator().manual_seed(1)
    for _ in range(100):
        logits = torch.randint(0, 3, (10, 5), generator=generator).float()
        paths = torch.randint(0, 10, (4, 4), generator=generator)
        paths[:, 0] = 0
        tokens = torch.where(torch.rand(4, 4, generator=generator) < 0.6, 0, 1)
        tokens[:, 1:] = torch.where(tokens[:, 1:] == 0, logits.argmax(-1)[paths[:, :-1]], tokens[:, 1:])
        ours = greedy_path(logits, tokens, paths)
        theirs = utils.evaluate_posterior(logits[paths], tokens, None)
        assert int(ours[0]) == int(theirs[0]) and int(ours[1]) == int(theirs[1]) and torch.equal(ours[2], theirs[2])


@pytest.mark.parametrize("version", [2, 3], ids=["eagle2", "eagle3"])
def test_tree_stop_variants_read_the_frontier_as_documented(version):
    import torch

    model, _ = _tiny_tree_drafter(version=version)
    sharp = torch.log_softmax(torch.tensor([20.0] + [0.0] * 63), -1)  # H ~ 0
    flat = torch.log_softmax(torch.zeros(64), -1)  # H = ln 64 = 4.16 nats > 0.3^2 / 0.15 = 0.6
    frontier = torch.stack([flat, sharp])
    likely_flat = torch.tensor([-0.1, -3.0])  # the flat node lies on the most likely path
    model.set_svip(0.3, 0.15, "min")
    assert not model.svip_should_stop(frontier, likely_flat)  # one confident node keeps the tree growing
    model.set_svip(0.3, 0.15, "top")
    assert model.svip_should_stop(frontier, likely_flat)
    assert not model.svip_should_stop(frontier, likely_flat.flip(0))
    model.set_svip(0.3, 0.15, "weighted")
    assert model.svip_should_stop(frontier, likely_flat)  # ~0.94 * 4.16 nats
    assert not model.svip_should_stop(frontier, torch.tensor([-5.0, -0.01]))  # ~0.007 * 4.16 nats


def test_a_draft_vocabulary_drafts_only_its_tokens_and_the_full_one_changes_nothing():
    import torch

    model, head = _tiny_tree_drafter(total=20, depth=4, top_k=4)
    torch.manual_seed(1)
    hidden, ids = torch.randn(1, 6, 32), torch.randint(1, 64, (1, 7))

    def grow():
        model.reset_kv()
        return model.topK_genrate(hidden, ids, head, None)

    upstream = grow()
    everything = torch.arange(64)
    model.set_draft_vocab(everything, head)  # the identity map and the same head: upstream's tree exactly
    same = grow()
    assert all(torch.equal(a, b) for a, b in zip(upstream, same))
    subset = torch.arange(1, 64, 3)  # 21 of 64 tokens
    rows = torch.nn.Linear(32, len(subset), bias=False)
    rows.weight.data = head.weight.data[subset]
    model.set_draft_vocab(subset, rows)
    drafted = grow()[0][0, 1:]  # the root is the target's own token
    assert set(drafted.tolist()) <= set(subset.tolist()) and len(drafted) == 19
    assert not set(upstream[0][0, 1:].tolist()) <= set(subset.tolist())  # the full vocabulary drafts others
    model.set_draft_vocab(None, None)
    assert all(torch.equal(a, b) for a, b in zip(upstream, grow()))
    with pytest.raises(ValueError, match="both"):
        model.set_draft_vocab(subset, None)


def test_eagle_method_takes_the_vocabulary_choice():
    assert EagleMethod.parse("eagle2").vocab == "head"
    full = EagleMethod.parse("eagle2:vocab=full+svip")
    assert full.vocab == "full" and full.h == 0.3
    assert EagleMethod.parse(full.spec) == full and "vocab=full" in full.spec
    assert "vocab" not in EagleMethod.parse("eagle2+svip").spec  # old canonical strings stay as they were
    with pytest.raises(ValueError, match="vocab must be one of"):
        EagleMethod.parse("eagle2:vocab=small")


def _rule_examples(draw, feature: str, width: int, generator, count: int = 40) -> list[dict]:
    """Tiny training examples: ``draw() -> (9 ids, their labels)`` (3 of prompt), random ``feature`` rows of
    ``width``, the labels' soft targets 0.8 / 0.2."""
    import torch

    examples = []
    for _ in range(count):
        ids, labels = draw()
        examples.append(
            {
                "prompt": ids[:3],
                "answer": ids[3:],
                feature: torch.randn(9, width, generator=generator).to(torch.float16),
                "top_ids": labels.to(torch.int32),
                "top_logp": torch.log(torch.tensor([[0.8, 0.2]] * 9)).to(torch.float16),
            }
        )
    return examples


def test_head_training_learns_the_soft_labels_under_bf16_autocast_and_checkpoints_every_epoch():
    """The loop of ``train_head`` on a tiny random head: batching, the draft-vocabulary loss, autocast, checkpoints."""
    import torch

    from svip.training.eagle.train_head import eagle2_loss, train

    model, _ = _tiny_tree_drafter(version=2)
    model.gradient_checkpointing = False
    generator = torch.Generator().manual_seed(0)
    draft_ids = torch.arange(0, 64, 2)  # 32 even ids are draftable
    to_draft = torch.full((64,), -1, dtype=torch.long)
    to_draft[draft_ids] = torch.arange(32)
    lm_rows = torch.randn(32, 32, generator=generator)
    def draw():
        ids = torch.randint(1, 64, (9,), generator=generator).tolist()
        return ids, torch.tensor([[(2 * t + 6) % 64, (2 * t + 7) % 64] for t in ids])  # the next token is a rule

    examples = _rule_examples(draw, "features", 32, generator)
    seen = []
    report = train(
        model, functools.partial(eagle2_loss, model, lm_rows, to_draft), examples, epochs=12, batch_size=4, lr=3e-3,
        noise=0.0, seed=0, dtype=torch.bfloat16, probe=examples[:10], on_epoch=lambda r: seen.append(len(r["epochs"])),
    )
    assert seen == list(range(1, 13)) and report["held_out_examples"] == 2 and report["train_examples"] == 38
    first, last = report["epochs"][0]["probe_top1"], report["epochs"][-1]["probe_top1"]
    assert last > max(0.5, first), (first, last)  # the rule is learnt: well above chance (1/32)


def test_a_warm_start_loads_a_saved_head_and_refuses_another_shape(tmp_path):
    """``--init``: a head ``save_head`` wrote comes back weight for weight; a head of another shape is an error."""
    import torch

    from svip.training.eagle.train_head import load_init, save_head

    saved, _ = _tiny_tree_drafter(version=2)
    save_head(saved, tmp_path, {"epochs": [{"probe_top1": 0.25}]}, {}, started=0.0)
    torch.manual_seed(1)
    fresh, _ = _tiny_tree_drafter(version=2)
    with torch.no_grad():
        fresh.fc.weight.add_(1.0)  # differs from the saved head before loading
    record = load_init(fresh, tmp_path)
    assert record["epochs"] == 1 and record["probe_top1"] == 0.25 and len(record["sha256"]) == 64
    for name, value in saved.state_dict().items():
        if not name.startswith("embed_tokens"):
            assert torch.equal(fresh.state_dict()[name], value.half().to(value.dtype)), name
    other, _ = _tiny_tree_drafter(version=3)
    with pytest.raises(SystemExit, match="not this head's shape"):
        load_init(other, tmp_path)
    with pytest.raises(SystemExit, match="no model.safetensors"):
        load_init(fresh, tmp_path / "missing")


def test_ttt_steps_are_what_the_eagle3_drafter_computes_down_a_chain_with_its_kv_cache():
    """Training-time test step j at position t = upstream's cached forward (the drafting path) fed the context up
    to t, then its own outputs j times: the training sees exactly the states drafting will."""
    import torch

    from svip.training.eagle.train_eagle3 import ttt_hidden

    model, _ = _tiny_tree_drafter(version=3)
    model.reset()
    torch.manual_seed(1)
    length, steps = 6, 3
    features = torch.randn(1, length, model.fc.in_features)
    tokens = torch.randint(1, 64, (1, length + steps - 1))
    with torch.no_grad():
        trained = ttt_hidden(model, features, tokens, steps)
        torch.testing.assert_close(trained[0], model(features, input_ids=tokens[:, :length]), rtol=1e-4, atol=1e-5)
        for t in range(length):
            out, cache = model(features[:, : t + 1], input_ids=tokens[:, : t + 1], use_cache=True)
            hidden = out[:, -1:]
            for step in range(1, steps):
                position = torch.tensor([[t + step]])
                hidden, cache = model(
                    hidden, input_ids=tokens[:, t + step : t + step + 1], past_key_values=cache, position_ids=position,
                    use_cache=True,
                )
                torch.testing.assert_close(trained[step][:, t], hidden[:, 0], rtol=1e-4, atol=1e-5)


def test_ttt_batches_align_each_position_with_the_next_token_and_the_label_after_it():
    import torch

    from svip.training.eagle.train_eagle3 import _batch3

    example = {
        "prompt": [5, 6],
        "answer": [7, 8, 9],
        "layer_features": torch.arange(5.0)[:, None].expand(5, 3).to(torch.float16),
        "top_ids": torch.tensor([[10 + p] for p in range(5)], dtype=torch.int32),  # label at p: the token after p
        "top_logp": torch.zeros(5, 1, dtype=torch.float16),
    }
    short = {key: value[:3] for key, value in example.items()} | {"prompt": [5, 6], "answer": [7]}
    features, tokens, top_ids, _, mask = _batch3([example, short], [0, 1], steps=3)
    assert features.shape == (2, 4, 3) and features[0, :, 0].tolist() == [0, 1, 2, 3]  # positions 0..3 feed
    assert tokens[0].tolist() == [6, 7, 8, 9, 0, 0] and tokens[1].tolist() == [6, 7, 0, 0, 0, 0]  # the token after
    assert top_ids[0, :, 0].tolist() == [11, 12, 13, 14, 0, 0]  # slot u: the label at position u + 1
    assert mask[0].tolist() == [False, True, True, True, False, False]  # labels of answer positions 2..4
    assert mask[1].tolist() == [False, True, False, False, False, False]


def test_eagle3_head_training_learns_a_rule_several_steps_deep():
    """``train`` with the TTT loss on a tiny random EAGLE-3 head: deeper steps (fed the head's own outputs) learn
    the rule as well, and the LM head (the target's rows) and the embedding stay frozen."""
    import torch

    from svip.training.eagle.train_eagle3 import prepare_head, ttt_loss
    from svip.training.eagle.train_head import _draft_rows, train

    model, _ = _tiny_tree_drafter(version=3)
    model.gradient_checkpointing = False
    generator = torch.Generator().manual_seed(0)
    vocab = torch.cat([torch.arange(32), torch.arange(40, 56)])  # 48 draftable target ids
    prepare_head(model, torch.randn(64, 32, generator=generator), vocab)
    frozen = model.lm_head.weight.clone()
    def draw():
        rows = torch.randint(0, 48, (9,), generator=generator)
        return vocab[rows].tolist(), torch.stack([vocab[(rows + 5) % 48], vocab[(rows + 6) % 48]], -1)  # a rule

    examples = _rule_examples(draw, "layer_features", 96, generator)
    loss = functools.partial(ttt_loss, model, _draft_rows(vocab, 64), steps=3)
    report = train(model, loss, examples, epochs=12, batch_size=4, lr=3e-3, noise=0.0, seed=0, probe=examples[:10])
    first, last = report["epochs"][0]["probe_top1"], report["epochs"][-1]["probe_top1"]
    assert last > max(0.5, first), (first, last)
    assert torch.equal(model.lm_head.weight, frozen) and not model.embed_tokens.weight.requires_grad
    assert model.t2d[vocab].all() and int(model.t2d.sum()) == 48 and torch.equal(model.d2t + torch.arange(48), vocab)


def test_the_heads_format_picks_the_drafter_and_eagle3_needs_a_base_with_three_layers(tmp_path):
    from svip.adapters.eagle.generator import EagleSetupError, _check_eagle3_base, is_eagle3_head

    assert not is_eagle3_head(HEAD) and not is_eagle3_head(QWEN_HEAD)  # the shipped heads: EAGLE-1/2
    eagle3 = tmp_path / "eagle3"
    eagle3.mkdir()
    (eagle3 / "config.json").write_text(json.dumps({"draft_vocab_size": 32000, "vocab_size": 128256}))
    assert is_eagle3_head(eagle3) and not is_eagle3_head("yuhuili/EAGLE-Vicuna-7B-v1.3")  # a hub id: upstream default
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "mixtral"}))
    with pytest.raises(EagleSetupError, match="three target layers"):
        _check_eagle3_base(str(base))
    for model_type in ("llama", "qwen2", "qwen3"):  # qwen2 through the patch
        (base / "config.json").write_text(json.dumps({"model_type": model_type}))
        _check_eagle3_base(str(base))
    from svip.eval.cli import _describe_run

    run = {"target": "qwen2.5-coder-1.5b", "dtype": "bf16", "device": "cpu", "questions": "eagle"}
    assert "/ EAGLE-3 head " in _describe_run(run | {"eagle_head": str(eagle3)})  # the report says which drafter ran
    assert "/ EAGLE-1/2 head " in _describe_run(run | {"eagle_head": str(QWEN_HEAD)})
