"""GliDe on our engine, on tiny random models (mechanics only): cross-attention, drafting, losslessness, files."""

from __future__ import annotations

import random

import pytest
import torch

from svip.adapters.glide.draft import GlideConfig, GlideDraft
from svip.adapters.glide.kind import attach_draft
from svip.adapters.glide.lora import add_lora, lora_state
from svip.adapters.glide.proposer import GlideProposer
from svip.adapters.kinds import ModelSet
from svip.adapters.registry import build, canonical
from svip.adapters.vanilla.engine import SpeculativeEngine
from svip.policies import ConstantPolicy
from svip.training.glide.train_draft import _forward, block_limits, chain_acceptance, teacher_pass

from helpers import tiny_llama


def _random_glide(seed: int = 0, layers: int = 2) -> tuple[torch.nn.Module, GlideDraft]:
    """A tiny target (3 layers) and a GliDe draft on another tiny model, with non-zero cross-attention."""
    target = tiny_llama(seed=seed, layers=3)
    base = tiny_llama(seed=seed + 1, layers=layers)
    draft = GlideDraft.new(base, target, layers=layers, base_name="tiny", lora_rank=4, lora_alpha=8.0)
    torch.manual_seed(seed + 2)
    with torch.no_grad():
        for block in draft.blocks:
            block.o_proj.weight.normal_(0, 0.5)
            block.q_proj.weight.normal_(0, 0.5)
    return target, draft.eval()


def test_the_draft_reads_the_top_target_layers_and_starts_as_its_base_model():
    target = tiny_llama(layers=3)
    base = tiny_llama(seed=1, layers=2)
    reference = base(input_ids=torch.tensor([[1, 2, 3, 4]])).logits
    draft = GlideDraft.new(base, target, layers=2, base_name="tiny")
    assert draft.config.target_layers == (1, 2)
    cache = target(input_ids=torch.tensor([[1, 2, 3]]), use_cache=True).past_key_values
    draft.read_target(cache, torch.tensor([[0, 1, 2, 3]]))
    logits = draft.model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits
    assert draft.context.calls == [0, 1]  # every block ran ...
    torch.testing.assert_close(logits, reference)  # ... and a fresh block adds nothing (o_proj = 0)


def test_incremental_drafting_sees_what_training_sees():
    """Prefill + token-by-token drafting with the proposer's limits == one batched forward with the same limits."""
    target, draft = _random_glide()
    tokens = [5, 9, 2, 33, 7, 1, 14, 60, 3]
    committed = 6  # the target has cached tokens[:5]; tokens[5] is the newest committed, tokens[6:] drafts
    cache = target(input_ids=torch.tensor([tokens[: committed - 1]]), use_cache=True).past_key_values
    positions = torch.arange(len(tokens))
    limits = positions.clamp(max=committed - 1)[None]
    kv = torch.stack([torch.stack([cache.layers[i].keys, cache.layers[i].values]) for i in draft.config.target_layers])
    kv = torch.nn.functional.pad(kv, (0, 0, 0, len(tokens) - (committed - 1)))  # unseen positions: masked anyway
    batched = draft.model.lm_head(
        _forward(draft, torch.tensor([tokens]), torch.ones(1, len(tokens), dtype=torch.long), limits, kv)
    )[0]

    from svip.adapters.vanilla.cached_model import CachedCausalLM
    from svip.sampling import SamplingConfig

    target_model, draft_model = CachedCausalLM(target), CachedCausalLM(draft.model)
    target_model.forward(tokens[: committed - 1], 1)
    proposer = GlideProposer(draft, draft_model, target_model, SamplingConfig())
    rows = [proposer._next_logits(tokens[:committed])]
    rows += [proposer._next_logits([t]) for t in tokens[committed:]]
    torch.testing.assert_close(torch.stack(rows), batched[committed - 1 :], rtol=1e-4, atol=1e-4)
    assert draft.context.keys is None  # the target's tensors are not held after a forward


def test_a_query_without_visible_target_positions_gets_no_update():
    target, draft = _random_glide()
    ids = torch.tensor([[4, 8, 15, 16]])
    kv = torch.randn(2, 2, 1, 2, 4, 8)
    blind = _forward(draft, ids, torch.ones_like(ids), torch.zeros_like(ids), kv)
    plain = draft.model.model(input_ids=ids).last_hidden_state
    torch.testing.assert_close(blind, plain)  # the sink alone: zero output


def test_block_limits_and_chain_acceptance_by_hand():
    assert block_limits(7, 3, 0).tolist() == [0, 0, 0, 3, 3, 3, 6]
    assert block_limits(7, 3, 1).tolist() == [0, 0, 2, 2, 2, 5, 5]
    tokens = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    labels = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 0])  # greedy text: label[p] == tokens[p + 1]
    predicted = torch.tensor([1, 2, 0, 4, 5, 6, 7, 8, 9, 9])
    assert chain_acceptance(predicted, labels, tokens, 4, 1) == [1, 4]  # blocks 1-4 (miss at 2), 5-8
    labels[6] = 0  # the text leaves the target's greedy path inside block 5-8: not judged
    assert chain_acceptance(predicted, labels, tokens, 4, 1) == [1]


def test_teacher_pass_matches_one_sequence_at_a_time():
    target = tiny_llama(layers=3)
    sequences = [[1, 2, 3], [4, 5, 6, 7, 8]]
    records = teacher_pass(target, sequences, [1, 2], batch_size=2)
    for sequence, record in zip(sequences, records):
        output = target(input_ids=torch.tensor([sequence]), use_cache=True)
        assert record["labels"].tolist() == output.logits[0].argmax(-1).tolist()
        torch.testing.assert_close(
            record["kv"][1, 0].float(), output.past_key_values.layers[2].keys[0], atol=2e-3, rtol=1e-2
        )


def test_lora_saved_and_merged_gives_the_trained_draft(tmp_path):
    target, draft = _random_glide()
    lora = add_lora(draft.model.model.layers, 4, 8.0)
    torch.manual_seed(3)
    with torch.no_grad():
        for layer in lora.values():
            layer.lora_b.normal_(0, 0.05)
    ids = torch.tensor([[3, 1, 4, 1, 5, 9]])
    cache = target(input_ids=ids[:, :4], use_cache=True).past_key_values
    limits = torch.arange(6).clamp(max=4)[None]
    draft.read_target(cache, limits)
    trained = draft.model(input_ids=ids).logits
    draft.context.clear()
    draft.save(tmp_path, lora_state(lora), {"note": "test"})
    assert GlideConfig.read(tmp_path).target_layers == (1, 2)

    fresh_base = tiny_llama(seed=1, layers=2)
    loaded = GlideDraft.from_pretrained(tmp_path, fresh_base, target).eval()
    loaded.read_target(cache, limits)
    torch.testing.assert_close(loaded.model(input_ids=ids).logits, trained, atol=5e-2, rtol=5e-2)  # fp16 files


def test_a_draft_for_another_target_is_refused(tmp_path):
    _, draft = _random_glide()
    draft.save(tmp_path, {})
    other = tiny_llama(layers=4)
    with pytest.raises(ValueError, match="trained for a target"):
        GlideDraft.from_pretrained(tmp_path, tiny_llama(seed=1, layers=2), other)


def test_method_strings():
    assert canonical("glide") == "glide+constant:k=4"
    assert canonical("glide-svip") == "glide+svip:h=0.3,gamma=0.15,max=40"
    assert canonical("glide-cape") == "glide-cape:bins=8/8/8/6/6/6/4/4/2/2/2/2,nodes=64+constant:k=4"
    assert (
        canonical("glide-cape-svip") == "glide-cape:bins=8/8/8/6/6/6/4/4/2/2/2/2,nodes=64+svip:h=0.3,gamma=0.15,max=40"
    )
    with pytest.raises(ValueError, match="no parameters"):
        canonical("glide:k=3")


def test_glide_methods_without_a_glide_draft_say_what_is_missing():
    from svip.method import InputError

    models = ModelSet(tiny_llama(layers=3), tiny_llama(seed=1))
    with pytest.raises(InputError, match="--glide-draft"):
        build("glide+svip", models)


def test_the_glide_draft_named_by_its_option_is_loaded_on_first_use_once_per_run(tmp_path, monkeypatch):
    """``--glide-draft`` is the kind's option; the draft is the run's resource, loaded by the kind itself."""
    import svip.adapters.glide.loading as glide_loading

    target = tiny_llama(seed=4, layers=3)
    tiny_llama(seed=5, layers=2).save_pretrained(tmp_path / "base")
    GlideDraft.new(tiny_llama(seed=5, layers=2), target, layers=2, base_name=str(tmp_path / "base")).save(
        tmp_path / "draft", {}
    )
    loads = []
    load_model = glide_loading.load_model
    monkeypatch.setattr(glide_loading, "load_model", lambda *a, **k: loads.append(a[0]) or load_model(*a, **k))
    models = ModelSet(target, tiny_llama(seed=5), options={"glide_draft": str(tmp_path / "draft")})
    assert loads == []  # nothing is loaded before a glide method is built
    glide, cape = build("glide+svip", models), build("glide-cape", models)
    assert loads == [str(tmp_path / "base")]  # once, for both methods
    expected = build("target-only", models).generate([1, 2, 3], max_new_tokens=12).tokens
    assert glide.generate([1, 2, 3], max_new_tokens=12).tokens == expected
    assert cape.generate([1, 2, 3], max_new_tokens=12).tokens == expected


@pytest.mark.parametrize(
    "method", ["glide", "glide-svip", "glide-cape", "glide-cape-svip", "glide-cape:nodes=3+svip:h=0.1"]
)
def test_greedy_glide_methods_equal_target_only(method):
    target, draft = _random_glide(seed=4)
    models = attach_draft(ModelSet(target, tiny_llama(seed=5)), draft)
    reference = build("target-only", models)
    speculative = build(method, models)
    rng = random.Random(0)
    drafted = 0
    for _ in range(6):
        prompt = [rng.randrange(64) for _ in range(rng.randint(1, 9))]
        expected = reference.generate(prompt, max_new_tokens=20).tokens
        result = speculative.generate(prompt, max_new_tokens=20)
        assert result.tokens == expected
        assert result.rounds[0].drafted == 0  # the prefill round: nothing to cross-attend to yet
        drafted += sum(r.drafted for r in result.rounds)
    assert drafted > 0


def test_the_engine_loop_with_a_glide_proposer_accepts_when_the_draft_is_the_target():
    """A GliDe draft that *is* the target (its blocks silent): every drafted token is accepted."""
    target = tiny_llama(layers=2)
    draft = GlideDraft.new(tiny_llama(layers=2), target, layers=2, base_name="tiny").eval()  # same seed: same weights
    engine = SpeculativeEngine(target, draft.model)
    proposer = GlideProposer(draft, engine.draft.model, engine.target.model, engine.sampling)
    result = engine.generate([1, 2, 3], policy=ConstantPolicy(k=3), max_new_tokens=13, proposer=proposer)
    assert all(r.accepted == r.drafted for r in result.rounds)
    assert [r.drafted for r in result.rounds] == [0, 3, 3, 3]


def test_the_shipped_qwen_draft_is_complete_and_small():
    """The files ``load_glide_draft`` reads, in the size the brief allows (<= 30 MB), with its training record."""
    import json
    from pathlib import Path

    from safetensors import safe_open

    directory = Path(__file__).resolve().parents[1] / "adapters" / "glide" / "drafts" / "qwen2.5-coder-1.5b"
    config = GlideConfig.read(directory)
    assert (config.base, config.layers, config.target_layers) == ("qwen2.5-coder-0.5b", 4, (24, 25, 26, 27))
    assert config.target == {"hidden_layers": 28, "heads": 12, "kv_heads": 2, "head_dim": 128, "vocab": 151936}
    weights = directory / "glide.safetensors"
    assert weights.stat().st_size <= 30 * 2**20
    with safe_open(str(weights), "pt") as handle:
        keys = set(handle.keys())
    assert {f"blocks.{i}.q_proj.weight" for i in range(4)} <= keys and "norm.weight" in keys
    assert sum(k.startswith("lora.") for k in keys) == 4 * 7 * 2  # q, k, v, o, gate, up, down per layer
    record = json.loads((directory / "training.json").read_text())
    assert record["epochs"][-1]["top1"] > record["baselines_held_out"]["cut_base_untrained"]["top1"] + 0.3


def test_a_deep_draft_crosses_only_its_top_layers_and_starts_as_its_base_model(tmp_path):
    """``cross_layers``: every base layer kept, blocks on the top one only, reading the target's top layer."""
    target = tiny_llama(layers=3)
    base = tiny_llama(seed=1, layers=3)
    ids = torch.tensor([[1, 2, 3, 4]])
    reference = base(input_ids=ids).logits
    draft = GlideDraft.new(base, target, layers=3, base_name="tiny", cross_layers=1).eval()
    assert (len(draft.blocks), draft.config.target_layers, draft.config.crossed) == (1, (2,), 1)
    cache = target(input_ids=ids[:, :3], use_cache=True).past_key_values
    draft.read_target(cache, torch.tensor([[0, 1, 2, 3]]))
    torch.testing.assert_close(draft.model(input_ids=ids).logits, reference)  # a fresh block adds nothing
    assert draft.context.calls == [0]  # one block, after the top layer only
    draft.context.clear()

    with torch.no_grad():
        draft.blocks[0].o_proj.weight.normal_(0, 0.5)
    lower = [output[0] for output in _layer_outputs(draft, ids, cache)]
    plain = [
        output[0]
        for output in _layer_outputs(
            GlideDraft.new(tiny_llama(seed=1, layers=3), target, layers=3, base_name="tiny", cross_layers=1).eval(),
            ids,
            cache,
        )
    ]
    torch.testing.assert_close(lower[0], plain[0])  # layers under the crossed one are the base's
    torch.testing.assert_close(lower[1], plain[1])
    assert not torch.allclose(lower[2], plain[2])  # the top layer's output carries the block's update

    draft.save(tmp_path, {})
    config = GlideConfig.read(tmp_path)
    assert (config.layers, config.cross_layers, config.target_layers) == (3, 1, (2,))
    loaded = GlideDraft.from_pretrained(tmp_path, tiny_llama(seed=1, layers=3), target).eval()
    for one in (draft, loaded):
        one.read_target(cache, torch.tensor([[0, 1, 2, 3]]))
    torch.testing.assert_close(
        loaded.model(input_ids=ids).logits, draft.model(input_ids=ids).logits, atol=5e-2, rtol=5e-2
    )


def _layer_outputs(draft: GlideDraft, ids: torch.Tensor, cache) -> list[torch.Tensor]:
    """Each decoder layer's output (after its cross-attention hook, if any) for ``ids`` reading ``cache``."""
    outputs: list[torch.Tensor] = []
    handles = [
        layer.register_forward_hook(lambda module, args, output: outputs.append(output))
        for layer in draft.model.model.layers
    ]  # registered after the draft's own hooks: they see the updated output
    draft.read_target(cache, torch.arange(ids.shape[1]).clamp(max=cache.get_seq_length())[None])
    try:
        draft.model(input_ids=ids)
    finally:
        draft.context.clear()
        for handle in handles:
            handle.remove()
    return [output if isinstance(output, torch.Tensor) else output[0] for output in outputs]


def test_training_a_deep_draft_moves_only_its_blocks():
    """Without LoRA the base model is frozen whole (final norm included): only the cross-attention learns."""
    from svip.training.glide.train_draft import train

    target = tiny_llama(layers=3)
    draft = GlideDraft.new(tiny_llama(seed=1, layers=3), target, layers=3, base_name="tiny", cross_layers=2)
    frozen = {name: p.detach().clone() for name, p in draft.model.named_parameters()}
    blocks = {name: p.detach().clone() for name, p in draft.blocks.named_parameters()}
    rng = random.Random(0)
    sequences = [[rng.randrange(64) for _ in range(12)] for _ in range(6)]
    records = teacher_pass(target, sequences, list(draft.config.target_layers))
    history = train(draft, {}, records[:4], records[4:], [3, 3], epochs=1, batch_size=2, lr=1e-2, seed=0)
    assert len(history) == 1 and history[0]["positions"] > 0
    for name, parameter in draft.model.named_parameters():
        torch.testing.assert_close(parameter, frozen[name], rtol=0, atol=0)
    assert any(not torch.equal(p, blocks[name]) for name, p in draft.blocks.named_parameters())


def test_the_shipped_deep_qwen_draft_is_complete_small_and_beat_its_base_on_held_out_text():
    """The deep draft: the whole 0.5B (not shipped: the zoo's), 4 trained blocks on its top layers, nothing else."""
    import json
    from pathlib import Path

    from safetensors import safe_open

    directory = Path(__file__).resolve().parents[1] / "adapters" / "glide" / "drafts" / "qwen2.5-coder-1.5b-deep"
    config = GlideConfig.read(directory)
    assert (config.base, config.layers, config.crossed, config.target_layers, config.lora_rank) == (
        "qwen2.5-coder-0.5b",
        24,
        4,
        (24, 25, 26, 27),
        0,
    )
    weights = directory / "glide.safetensors"
    assert weights.stat().st_size <= 30 * 2**20
    with safe_open(str(weights), "pt") as handle:
        keys = set(handle.keys())
    assert {k.split(".")[1] for k in keys if k.startswith("blocks.")} == {"0", "1", "2", "3"}
    assert not any(k.startswith("lora.") for k in keys)
    record = json.loads((directory / "training.json").read_text())
    assert record["epochs"][-1]["top1"] > record["baselines_held_out"]["full_base"]["top1"]
