"""The EAGLE head's training data: batched greedy answers with their features, the draft vocabulary, the loss's hits."""

from __future__ import annotations

import torch

from svip.training.eagle.head_data import _answer_batch
from svip.training.eagle.train_head import draft_vocabulary

from helpers import tiny_llama


def test_batched_answers_and_features_equal_one_prompt_at_a_time_teacher_forced():
    model = tiny_llama(seed=7)
    prompts = [[5, 9, 2], [7, 1, 30, 12, 4, 8], [11, 3, 3, 40, 2]]  # different lengths: left padding is exercised
    records = _answer_batch(model, prompts, max_new_tokens=6, pad_id=0, eos_ids=set())
    for prompt, record in zip(prompts, records):
        expected = model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False)[0, len(prompt) :]
        assert record["prompt"] == prompt and record["answer"] == expected.tolist()
        ids = torch.tensor([prompt + record["answer"]])
        with torch.no_grad():
            forced = model.model(ids).last_hidden_state[0]
        assert record["features"].shape == forced.shape  # one feature per prompt and answer position
        assert torch.allclose(record["features"].float(), forced, atol=2e-2)  # fp16 storage


def test_an_answer_stops_at_its_end_token_and_the_others_go_on():
    model = tiny_llama(seed=8)
    prompts = [[5, 9, 2], [7, 1, 30]]
    free = _answer_batch(model, prompts, max_new_tokens=8, pad_id=0, eos_ids=set())
    stop = free[0]["answer"][2]
    records = _answer_batch(model, prompts, max_new_tokens=8, pad_id=0, eos_ids={stop})
    assert records[0]["answer"] == free[0]["answer"][: free[0]["answer"].index(stop) + 1]
    cut = free[1]["answer"].index(stop) + 1 if stop in free[1]["answer"] else 8
    assert records[1]["answer"] == free[1]["answer"][:cut]
    assert all(len(r["features"]) == len(r["prompt"]) + len(r["answer"]) for r in records)


def test_the_draft_vocabulary_is_the_most_emitted_tokens_sorted():
    examples = [{"prompt": [9, 9, 9, 9, 2], "answer": [4, 4, 4, 7, 7, 2]}, {"prompt": [1], "answer": [7, 5]}]
    # answers: 4 x3, 7 x3, 2 x1, 5 x1; a prompt occurrence only breaks ties (2 before 5; 9 after every answer token)
    assert draft_vocabulary(examples, 3, 10) == [2, 4, 7]
    assert draft_vocabulary(examples, 5, 10) == [2, 4, 5, 7, 9]
    assert draft_vocabulary(examples, 0, 10) == list(range(10))  # 0: the full vocabulary
    assert draft_vocabulary(examples, 10, 10) == list(range(10))


def test_the_vocabulary_entropy_comparison_by_hand():
    from svip.eval.eagle.vocab_entropy import compare

    pairs = [(0.5, 0.7, 0.99), (1.0, 1.0, 1.0), (0.2, 0.1, 0.95)]  # bound: 0.3^2 / 0.15 = 0.6 nats
    summary = compare(pairs)
    assert summary["distributions"] == 3
    assert abs(summary["mean_abs_gap"] - (0.2 + 0.0 + 0.1) / 3) < 1e-9
    assert abs(summary["mean_gap"] - (-0.2 + 0.0 + 0.1) / 3) < 1e-9
    assert abs(summary["stop_decision_differs"] - 1 / 3) < 1e-9  # 0.5 vs 0.7 sit on either side of 0.6
    assert abs(summary["min_mass_on_draft_vocab"] - 0.95) < 1e-9


def test_chat_prompts_are_encoded_as_ids_under_this_transformers(smol_tokenizer):
    """transformers 5's ``apply_chat_template`` returns a mapping: the prompts must still reach the model as ids."""
    from svip.eval.prompts import encode_prompt
    from svip.training.eagle.head_data import answer_with_features

    model = tiny_llama(vocab_size=len(smol_tokenizer), seed=9)
    prompts = ["Name a colour.", "Write a haiku about rain."]
    records = answer_with_features(
        model, smol_tokenizer, prompts, max_new_tokens=3, batch_size=2, progress=lambda _: None
    )
    assert [r["prompt"] for r in records] == [encode_prompt(smol_tokenizer, p) for p in prompts]
    assert all(len(r["answer"]) == 3 and len(r["features"]) == len(r["prompt"]) + 3 for r in records)


def test_teacher_features_are_each_sequence_forced_alone_whatever_its_batch():
    from svip.training.eagle.head_data import teacher_features

    model = tiny_llama(seed=10)
    sequences = [[5, 9, 2, 7], [7, 1, 30, 12, 4, 8, 3], [11]]  # right padding of different lengths
    features = teacher_features(model, sequences, batch_size=2, progress=lambda _: None)
    for sequence, feature in zip(sequences, features):
        with torch.no_grad():
            alone = model.model(torch.tensor([sequence])).last_hidden_state[0]
        assert feature.dtype == torch.float16 and feature.shape == alone.shape
        assert torch.allclose(feature.float(), alone, atol=2e-2)


def test_soft_labels_are_the_lm_heads_top_k_log_probabilities():
    from svip.training.eagle.head_data import soft_labels

    head = torch.nn.Linear(16, 50, bias=False)
    features = torch.randn(6, 16).to(torch.float16)
    ids, logp = soft_labels(head.weight.detach(), features, top_k=3)
    expected = head(features.float()).log_softmax(-1).topk(3, dim=-1)
    assert ids.tolist() == expected.indices.tolist()
    assert torch.allclose(logp.float(), expected.values, atol=1e-2)


def test_the_heads_token_loss_covers_the_draft_vocabulary_only_and_hits_count_greedy_agreement():
    """A target token outside the draft vocabulary gets no weight; a hit is the head's top-1 = the target's."""
    from svip.training.eagle.train_head import _loss

    width, vocab = 4, 10
    draft_ids = torch.tensor([1, 3, 5, 7])
    to_draft = torch.full((vocab,), -1, dtype=torch.long)
    to_draft[draft_ids] = torch.arange(4)
    lm_rows = torch.eye(4, width) * 5  # draft row r lights up on feature dimension r

    class Echo(torch.nn.Module):  # the head predicts its input feature unchanged
        def forward(self, hidden, input_ids):
            return hidden

    hidden = torch.zeros(1, 3, width)
    hidden[0, 0, 1] = hidden[0, 1, 2] = hidden[0, 2, 0] = 1.0  # head's top-1 rows: 1 (id 3), 2 (id 5), 0 (id 1)
    target = hidden.clone()
    mask = torch.tensor([[0.0, 1.0, 1.0]])  # the first position is prompt: not scored
    top_ids = torch.tensor([[[3, 2], [5, 2], [7, 1]]])  # greedy ids 3, 5, 7; id 2 is outside the draft vocabulary
    top_logp = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.6, 0.4]]]))
    loss, hits, count = _loss(Echo(), lm_rows, to_draft, hidden, None, target, mask, top_ids, top_logp, noise=0.0)
    assert count == 2 and float(hits) == 1.0  # position 1 agrees (id 5), position 2 does not (1 vs 7)
    log_q = torch.log_softmax(hidden[0, 1:] @ lm_rows.T, -1)
    # position 1: id 2 is not draftable, so all weight on id 5 (row 2); position 2: 0.6/0.4 on rows 3 and 0
    expected = -(log_q[0, 2] + 0.6 * log_q[1, 3] + 0.4 * log_q[1, 0]) / 2
    torch.testing.assert_close(loss, 0.1 * expected)  # the features match exactly: no feature loss
