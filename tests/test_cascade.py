"""Cascade Speculative Drafting, mechanics: method strings, the bigram table, Max-Gram's order, the
cascade round (scripted draft model: exact positions, laws and forward counts), the one-hot rejection
test, losslessness on tiny random models, the cost counters and the report's cost table.

Real weights (SmolLM2) are in test_cascade_real.py."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from svip.adapters.cascade import CascadeMethod, DraftLevelPolicy, MaxGram, is_cascade_method
from svip.adapters.cascade.bigram import bigram_table, cached_bigram_table, stdlib_text
from svip.adapters.cascade.maxgram import longest_suffix_match
from svip.adapters.cascade.proposer import CascadeProposer
from svip.adapters.vanilla import SamplingConfig, SpeculativeEngine
from svip.adapters.vanilla.sampling import acceptance_probability, residual_distribution, to_probs, verify_sampled
from svip.eval.methods import canonical_method
from svip.grammar import parse_method
from svip.policies import DraftLengthPolicy, HeuristicPolicy

from helpers import tiny_llama


# -- method strings -------------------------------------------------------------------------------
def test_method_strings_round_trip_through_the_canonical_spec():
    assert CascadeMethod.parse("cascade") == CascadeMethod(k=5, mag=5, sub=10, lenience=1.0)
    assert CascadeMethod.parse("cascade").spec == "cascade:k=5,mag=5,sub=10,lenience=1"
    svip = CascadeMethod.parse("cascade:k=8,mag=2+svip")
    assert (svip.k, svip.mag, svip.budget, svip.handoff, svip.policy) == (8, 2, 10, 1, "svip:h=0.3,gamma=0.15,max=40")
    assert svip.spec == "cascade:k=8,mag=2,sub=10,lenience=1,handoff=1+svip:h=0.3,gamma=0.15,max=40"
    for method in (
        "cascade",
        "cascade:k=3,mag=0,sub=4,lenience=2.5",
        "cascade: sub=3 , k=2 +svip:gamma=0.1,h=0.2",
        "cascade:handoff=0+confidence:p_min=0.3",
        "cascade:lenience=1e+3+heuristic:k0=2",
    ):
        parsed = CascadeMethod.parse(method)
        assert CascadeMethod.parse(parsed.spec) == parsed and parsed.spec == canonical_method(
            method
        ) == canonical_method(parsed.spec)
    assert CascadeMethod.parse("cascade:lenience=1e+3").lenience == 1000.0  # a float's '+' is not a policy join
    split = parse_method("cascade:k=2+svip:h=0.2")
    assert (split.kind, str(split.call), split.policy) == ("cascade", "cascade:k=2", "svip:h=0.2") and parse_method(
        "cascade:k=2"
    ).policy is None
    assert (
        is_cascade_method("cascade:k=2")
        and is_cascade_method("cascade+svip")
        and not is_cascade_method("constant:k=2")
    )
    assert not is_cascade_method("svip:h=0.3") and not is_cascade_method("hf+svip")


@pytest.mark.parametrize(
    "method, message",
    [
        ("cascade:k=0", "k must be an integer in \\[1, 64\\]"),
        ("cascade:mag=-1", "mag must be an integer in \\[0, 64\\]"),
        ("cascade:sub=0", "sub must be an integer in \\[1, 64\\]"),
        ("cascade:lenience=0.5", "lenience must be a finite number >= 1"),
        ("cascade:lenience=inf", "lenience must be a finite number >= 1"),
        ("cascade:k=60,mag=10", "k \\+ mag must be <= 64"),
        ("cascade:handoff=1", "handoff says what happens when a draft-level policy stops"),
        ("cascade:handoff=2+svip", "handoff must be 0 or 1"),
        ("cascade:depth=3", "unknown parameter 'depth'"),
        (
            "cascade:p_min=0.3",
            "unknown parameter .p_min..*joined with .\\+.",
        ),  # cascade:h=...,gamma=... is the old SVIP spelling (an alias)
        ("cascade:k=two", "k must be an integer, got 'two'"),
        ("cascade:k=2,k=3", "'k' given twice"),
        ("cascade:k", "expected key=value"),
        ("cascade:k=2+", "nothing after '\\+'"),
        ("cascade:k=2+svip:h=-1", "bad draft-level policy after '\\+': svip: h must be"),
        ("cascade:k=2+sivp", "bad draft-level policy after '\\+': unknown policy 'sivp'"),
    ],
)
def test_bad_method_strings_are_refused_with_the_reason(method, message):
    with pytest.raises(ValueError, match=message):
        CascadeMethod.parse(method)
    with pytest.raises(ValueError, match=message):
        canonical_method(method)


# -- the bigram table -----------------------------------------------------------------------------
def test_bigram_table_takes_the_most_frequent_successor():
    table = bigram_table([1, 2, 3, 1, 2, 4, 1, 2, 3, 5], vocab_size=10)
    assert table[1] == 2 and table[2] == 3  # 2->3 twice, 2->4 once
    assert table[3] == 1  # 3->1 and 3->5 once each: the smaller id
    assert table[7] == 1 and table[5] == 1  # never followed by anything: the most frequent token
    with pytest.raises(ValueError, match="at least two tokens"):
        bigram_table([4], vocab_size=10)
    with pytest.raises(ValueError, match="must lie in"):
        bigram_table([4, 10], vocab_size=10)


class _CountingTokenizer:
    """Characters as tokens (a..z -> 0..25); counts how often it tokenizes."""

    def __init__(self):
        self.calls = 0

    def get_vocab(self):
        return {chr(97 + i): i for i in range(26)}

    def __call__(self, text, add_special_tokens=False):
        self.calls += 1
        return {"input_ids": [ord(c) - 97 for c in text if "a" <= c <= "z"]}


def test_bigram_table_is_counted_once_per_tokenizer_and_text(tmp_path):
    tokenizer = _CountingTokenizer()
    first = cached_bigram_table(tokenizer, 26, tmp_path, text="abcabdabc")
    again = cached_bigram_table(tokenizer, 26, tmp_path, text="abcabdabc")
    assert tokenizer.calls == 1 and np.array_equal(first, again) and first[1] == 2  # b -> c (twice) over b -> d
    other = cached_bigram_table(tokenizer, 26, tmp_path, text="abdabdabc")  # other text: other key, counted anew
    assert tokenizer.calls == 2 and other[1] == 3
    assert len(list(tmp_path.glob("stdlib-*.npy"))) == 2 and not list(tmp_path.glob("*.partial*"))
    uncached = cached_bigram_table(tokenizer, 26, None, text="abcabdabc")
    assert tokenizer.calls == 3 and np.array_equal(uncached, first)


def test_bigram_text_is_the_standard_library_not_eval_data():
    import sysconfig

    text = stdlib_text(limit_chars=200_000)
    assert len(text) >= 200_000 and "def " in text and "import" in text
    first_file = sorted(__import__("pathlib").Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[0]
    assert text.startswith(first_file.read_text(encoding="utf-8", errors="ignore"))


# -- Max-Gram -------------------------------------------------------------------------------------
def test_longest_suffix_match_prefers_length_then_recency():
    seq = np.array([1, 2, 9, 5, 2, 8, 3, 2, 8, 0, 1, 2])
    assert longest_suffix_match(seq, 0, len(seq) - 2, 32) == 1  # "1 2" at 0..1 beats the later lone "2"s
    assert longest_suffix_match(seq, 0, len(seq) - 2, 1) == 7  # n-grams capped at 1: the latest "2"
    assert longest_suffix_match(seq, 2, len(seq) - 2, 32) == 7  # outside the window the lone "2"s remain
    assert longest_suffix_match(seq, 0, 0, 32) is None  # the window holds no "2"
    assert longest_suffix_match(np.array([4]), 0, 0, 32) is None


def test_maxgram_tries_the_prompt_then_the_generated_text_then_bigrams():
    maxgram = MaxGram(np.array([(t + 1) % 20 for t in range(20)]))  # bigram: t -> t+1
    prompt = [7, 1, 2, 3, 9]
    # the suffix "1 2" occurs in the prompt: copy what followed it there (up to the prompt's end), then go on
    assert maxgram.propose(prompt, prompt + [5, 1, 2], 2) == [3, 9]
    # the prompt wins even over a longer match in the generated text
    context = prompt + [4, 6, 3, 0, 4, 6, 3]
    assert maxgram.propose(prompt, context, 1) == [9]
    # nothing in the prompt: the generated text ("4 8" earlier in the answer)
    assert maxgram.propose([6], [6, 4, 8, 11, 4, 8], 3) == [11, 4, 8]
    # the generated match may continue into the answer's last token
    assert maxgram.propose([6], [6, 4, 8, 4], 2) == [8, 4]
    # nowhere: bigrams from the last token
    assert maxgram.propose([6], [6, 0], 3) == [1, 2, 3]


def test_maxgram_matches_again_after_each_chunk():
    maxgram = MaxGram(np.array([(t + 1) % 20 for t in range(20)]))
    # the prompt copy runs into the prompt's end after "3 9"; "9" then matches again at its earlier occurrence
    prompt = [9, 4, 1, 2, 3, 9]
    assert maxgram.propose(prompt, prompt + [1, 2], 4) == [3, 9, 4, 1]
    # a bigram step that lands on a prompt token starts a prompt copy
    assert maxgram.propose([5, 6, 11, 12], [5, 6, 11, 12, 17, 4], 3) == [5, 6, 11]


# -- a scripted draft model: exact rounds ---------------------------------------------------------
class _ScriptedDraft:
    """Stands in for CachedCausalLM: after token t the draft's logits are ``rule(t)``; counts forwards."""

    def __init__(self, vocab: int, rule):
        self.vocab, self.rule, self.tokens, self.forwards = vocab, rule, [], 0

    @property
    def cached_length(self) -> int:
        return len(self.tokens)

    def forward(self, new_tokens, n_logits):
        self.forwards += 1
        self.tokens.extend(int(t) for t in new_tokens)
        return torch.stack([self.rule(t) for t in self.tokens[-n_logits:]])

    def crop(self, length):
        del self.tokens[length:]


V = 100


def _peaked(t: int, second: float = 0.0, rest: float = 0.0) -> torch.Tensor:
    """Logits with a clear argmax at t+1 (and, optionally, some mass on t+2); ``rest`` for every other token."""
    row = torch.full((V,), rest)
    row[(t + 1) % V] = 8.0
    row[(t + 2) % V] = second
    return row


def _proposer(method: str, step: int, sampling=SamplingConfig(), second: float = 0.0, rest: float = 0.0):
    """Draft: t -> t+1; Max-Gram (no prompt repeats, so bigrams): t -> t+step."""
    draft = _ScriptedDraft(V, lambda t: _peaked(t, second, rest))
    maxgram = MaxGram(np.array([(t + step) % V for t in range(V)]))
    return draft, CascadeProposer(draft, sampling, maxgram, CascadeMethod.parse(method), V)


PROMPT = [40, 41, 45]


def _propose(proposer, budget, policy, sampling=SamplingConfig(), seed=None):
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return proposer.propose(PROMPT, generated=0, budget=budget, policy=policy, stop_tokens=(), generator=generator)


def test_agreeing_maxgram_gives_long_reviews_and_the_level_keeps_its_overshoot():
    draft, proposer = _proposer("cascade:k=4,mag=3,sub=2", step=1)
    proposal = _propose(proposer, 7, CascadeMethod.parse("cascade:k=4,mag=3,sub=2").engine_policy())
    # review 1: offers 46 47, keeps both + its own 48; review 2 (3 < k): offers 49 50, keeps both + 51 -> 6 >= k
    assert proposal.tokens == [46, 47, 48, 49, 50, 51, 52] and proposal.draft_forwards == 2 == draft.forwards
    assert len(proposal.entropies) == len(proposal.logits) == 6  # the level's tokens; the 7th is Max-Gram's tail
    assert draft.tokens == PROMPT + [46, 47, 48, 49, 50]  # cache: the context up to the last level token


def test_disagreeing_maxgram_costs_one_forward_per_token_then_the_tail_is_horizontal():
    draft, proposer = _proposer("cascade:k=4,mag=3,sub=3", step=2)
    proposal = _propose(proposer, 7, CascadeMethod.parse("cascade:k=4,mag=3,sub=3").engine_policy())
    # every review rejects Max-Gram's first offer and keeps the draft's own token: 4 forwards for 4 tokens;
    # positions 5-7 are Max-Gram's (t -> t+2), untouched by the draft
    assert proposal.tokens == [46, 47, 48, 49, 51, 53, 55] and proposal.draft_forwards == 4
    assert len(proposal.entropies) == 4 and proposal.probs == [None] * 7  # greedy: no laws


def test_round_budget_clips_both_levels():
    draft, proposer = _proposer("cascade:k=4,mag=3,sub=2", step=1)
    assert _propose(proposer, 2, DraftLengthPolicy(max_draft=7)).tokens == [
        46,
        47,
    ]  # one review: offer 46, keep it + 47
    assert draft.forwards == 1


class _StopAfter(DraftLengthPolicy):
    def __init__(self, count: int):
        super().__init__(max_draft=40)
        self.count, self.observed = count, []

    def continue_drafting(self, step) -> bool:
        return step.index + 1 < self.count

    def observe(self, drafted, accepted):
        self.observed.append((drafted, accepted))


@pytest.mark.parametrize("handoff, expected", [(1, [46, 47, 49, 51, 53, 55, 57]), (0, [46, 47])])
def test_policy_stop_hands_the_rest_to_maxgram_or_ends_the_round(handoff, expected):
    draft, proposer = _proposer(f"cascade:k=4,mag=3,sub=3,handoff={handoff}+svip", step=2)
    policy = DraftLevelPolicy(max_draft=7, inner=_StopAfter(2))
    proposal = _propose(proposer, 7, policy)
    assert proposal.tokens == expected and proposal.draft_forwards == 2 and len(proposal.entropies) == 2
    assert policy.level_drafted == 2
    policy.observe(len(proposal.tokens), 5)  # the target's counts are translated to the level's
    policy.observe(len(proposal.tokens), 1)
    assert policy.inner.observed == [(2, 2), (2, 1)]


def test_policy_budget_caps_the_level_exactly():
    draft, proposer = _proposer("cascade:k=6,mag=2,sub=4,handoff=1+heuristic:k0=2", step=1)
    policy = DraftLevelPolicy(max_draft=8, inner=HeuristicPolicy(k0=2))
    proposal = _propose(proposer, 8, policy)
    # the level may hold 2: Max-Gram offers 1 (46), the draft keeps it and adds 47; then Max-Gram hands off
    assert proposal.tokens == list(range(46, 54)) and proposal.draft_forwards == 1 and len(proposal.entropies) == 2


@pytest.mark.parametrize("lenience, kept", [(6.0, True), (5.0, False)])
def test_greedy_lenience_keeps_a_maxgram_token_above_one_over_lenience(lenience, kept):
    # the draft gives t+2 probability e^6.5 / (e^8 + e^6.5 + 98) = 0.178: kept iff 1/lenience < that
    draft, proposer = _proposer(f"cascade:k=3,mag=0,sub=2,lenience={lenience:g}", step=2, second=6.5)
    p_second = float(torch.softmax(_peaked(45, 6.5), -1)[47])
    assert 1 / 6 < p_second < 1 / 5
    proposal = _propose(proposer, 3, DraftLengthPolicy(max_draft=3))
    assert proposal.tokens == ([47, 49, 50] if kept else [46, 47, 48])
    assert proposal.draft_forwards == (1 if kept else 3)


def test_sampled_laws_lenient_and_maxgram_tokens_one_hot_the_draft_s_own_q():
    """Draft samples only t+1 (82%) or t+2 (18% > 1/6): Max-Gram's t+2 offers are always kept by lenience 6."""
    sampling = SamplingConfig(temperature=1.0)
    own = Counter()
    for seed in range(40):
        draft, proposer = _proposer(
            "cascade:k=3,mag=2,sub=2,lenience=6", step=2, sampling=sampling, second=6.5, rest=-50.0
        )
        proposal = _propose(proposer, 5, DraftLengthPolicy(max_draft=5), seed=seed)
        # one review: offers 47 49 (kept by rule), then the draft's own sample; Max-Gram's tail goes on by +2
        assert proposal.tokens[:2] == [47, 49] and proposal.tokens[2] in (50, 51) and proposal.draft_forwards == 1
        assert proposal.tokens[3:] == [proposal.tokens[2] + 2, proposal.tokens[2] + 4]
        laws = proposal.probs
        assert [float(q.max()) == 1.0 for q in laws] == [True, True, False, True, True]
        assert all(int(laws[i].argmax()) == proposal.tokens[i] for i in (0, 1, 3, 4))
        assert torch.allclose(laws[2], to_probs(_peaked(49, 6.5, -50.0), sampling))  # the law it was drawn from
        own[proposal.tokens[2]] += 1
    assert set(own) == {50, 51}


def test_sampled_exact_review_carries_the_draft_s_q():
    """Lenience 1: Max-Gram's offer is kept with probability q(x), else resampled from q without x; both carry q."""
    sampling = SamplingConfig(temperature=1.0)
    first = Counter()
    for seed in range(60):
        draft, proposer = _proposer("cascade:k=1,mag=1,sub=3", step=2, sampling=sampling, second=6.5, rest=-50.0)
        proposal = _propose(proposer, 2, DraftLengthPolicy(max_draft=2), seed=seed)
        assert (
            len(proposal.tokens) == 2 and proposal.draft_forwards == 1
        )  # one review: offer 47 (budget 2 leaves room for 1)
        assert torch.allclose(proposal.probs[0], to_probs(_peaked(45, 6.5, -50.0), sampling))
        if proposal.tokens[0] == 47:  # kept: the same review's next row is the draft's own token, law q after 47
            assert len(proposal.entropies) == 2 and torch.allclose(
                proposal.probs[1], to_probs(_peaked(47, 6.5, -50.0), sampling)
            )
        else:  # rejected and resampled (46): the level ends, Max-Gram's tail (48) carries one-hot
            assert proposal.tokens == [46, 48] and len(proposal.entropies) == 1
            assert float(proposal.probs[1].max()) == 1.0 and int(proposal.probs[1].argmax()) == 48
        first[proposal.tokens[0]] += 1
    assert set(first) == {46, 47}  # kept (47) and rejected-then-resampled (46) both happened


# -- the rejection test with a one-hot proposal ---------------------------------------------------
def test_one_hot_rejection_is_exact():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    one_hot = torch.tensor([0.0, 0.0, 0.0, 1.0])
    assert acceptance_probability(p, one_hot, 3) == pytest.approx(0.05)  # accept with p(x)
    residual = residual_distribution(p, one_hot)  # else p without x
    assert torch.allclose(residual, torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95)
    # P(emit t) = p(x) [t = x] + (1 - p(x)) residual(t) = p(t)
    assert torch.allclose(0.05 * one_hot + 0.95 * residual, p)


def test_one_hot_proposal_keeps_the_target_distribution_statistically():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    rows = torch.log(p).expand(2, 4)
    generator = torch.Generator().manual_seed(0)
    n, counts = 20000, Counter()
    for _ in range(n):
        accepted, token = verify_sampled(
            rows, [3], [torch.tensor([0.0, 0.0, 0.0, 1.0])], SamplingConfig(temperature=1.0), generator
        )
        counts[3 if accepted else token] += 1
    for token, p_t in enumerate(p.tolist()):
        assert abs(counts[token] / n - p_t) < 4 * (p_t * (1 - p_t) / n) ** 0.5, (token, counts)


# -- tiny random models through the engine --------------------------------------------------------
def _engine(sampling=SamplingConfig(), vocab=64, sharpen=1.0):
    target, draft = tiny_llama(vocab, seed=0), tiny_llama(vocab, seed=1, layers=1)
    with torch.no_grad():  # random tiny models are near-uniform; sharpen them so laws differ visibly
        target.lm_head.weight.mul_(sharpen)
        draft.lm_head.weight.mul_(sharpen)
    return SpeculativeEngine(target, draft, sampling=sampling)


def _run(engine, method, prompt, max_new_tokens, seed=None, proposer_class=CascadeProposer):
    cascade = CascadeMethod.parse(method)
    maxgram = MaxGram(np.arange(1, engine.vocab_size + 1) % engine.vocab_size)  # bigram: t -> t+1
    proposer = proposer_class(engine.draft.model, engine.sampling, maxgram, cascade, engine.vocab_size)
    return engine.generate(
        prompt, policy=cascade.engine_policy(), max_new_tokens=max_new_tokens, seed=seed, proposer=proposer
    )


GREEDY_VARIANTS = [
    "cascade",
    "cascade:k=3,mag=4,sub=3,lenience=3",
    "cascade:k=6,mag=1,sub=2,handoff=1+svip:h=0.1",
    "cascade:k=6,mag=1,handoff=0+svip:h=0.1",
    "cascade:k=4,mag=4,sub=1+heuristic:k0=2",
    "cascade:k=2,mag=0,sub=5+confidence",
]


@pytest.mark.parametrize("method", GREEDY_VARIANTS)
def test_greedy_cascade_equals_target_only_on_tiny_models(method):
    engine = _engine()
    prompt = [5, 6, 7, 5, 6, 9, 5]
    reference = engine.generate(prompt, max_new_tokens=30).tokens
    counted = []
    forward = engine.draft.model.forward
    engine.draft.model.forward = lambda *a, **k: counted.append(1) or forward(*a, **k)
    result = _run(engine, method, prompt, 30)
    assert result.tokens == reference
    assert result.method == CascadeMethod.parse(method).spec and sum(r.emitted for r in result.rounds) == 30
    # cost counters: every draft forward is counted, one target forward per round
    assert result.draft_forwards == sum(r.draft_forwards for r in result.rounds) == len(counted) > 0
    assert result.target_forwards == len(result.rounds)
    assert all(1 <= r.draft_forwards <= max(1, len(r.entropies)) for r in result.rounds)


def test_plain_drafting_counts_one_forward_per_token():
    engine = _engine()
    result = engine.generate([5, 6, 7], policy=DraftLengthPolicy(max_draft=4), max_new_tokens=20)
    assert [r.draft_forwards for r in result.rounds] == [r.drafted for r in result.rounds]
    assert result.draft_forwards == result.drafted and result.target_forwards == len(result.rounds)


@torch.no_grad()
def _exact_two_token_law(engine, prompt) -> dict[tuple[int, int], float]:
    """P(first two new tokens) of target-only sampling, from the target's own logits."""
    model, config = engine.target.model, engine.sampling
    model.reset()
    first = to_probs(model.forward(prompt, 1)[-1], config)
    law = {}
    for a in range(engine.vocab_size):
        model.crop(len(prompt))
        second = to_probs(model.forward([a], 1)[-1], config)
        for b in range(engine.vocab_size):
            law[(a, b)] = float(first[a] * second[b])
    return law


def _chi_square(counts: Counter, law: dict, n: int) -> tuple[float, int]:
    """Pearson's statistic over cells with expected count >= 5 (the rest pooled) and its degrees of freedom."""
    big = [cell for cell, p in law.items() if p * n >= 5]
    stat = sum((counts[c] - law[c] * n) ** 2 / (law[c] * n) for c in big)
    rest_expected = n * (1 - sum(law[c] for c in big))
    rest_observed = n - sum(counts[c] for c in big)
    if rest_expected > 0:
        stat += (rest_observed - rest_expected) ** 2 / rest_expected
    return stat, len(big) - (0 if rest_expected > 0 else 1)


# lenience 6 on 6 tokens keeps any offer the draft gives more than uniform mass: the one-hot fallback runs often
SAMPLED_VARIANTS = [
    "cascade:k=2,mag=2,sub=2",
    "cascade:k=2,mag=0,sub=2,lenience=6",
    "cascade:k=3,mag=3,sub=2,handoff=1+svip:h=0.3",
]


@pytest.mark.parametrize("method", SAMPLED_VARIANTS)
def test_sampled_cascade_keeps_the_target_law_of_two_tokens(method):
    engine = _engine(SamplingConfig(temperature=1.0), vocab=6, sharpen=6.0)
    prompt = [1, 2, 3, 1, 2]
    law = _exact_two_token_law(engine, prompt)
    n = 2000
    counts = Counter(tuple(_run(engine, method, prompt, 2, seed=s).tokens) for s in range(n))
    stat, dof = _chi_square(counts, law, n)
    # mean dof, sd sqrt(2 dof): 6 sd above the mean fails a wrong law, practically never a right one
    assert stat < dof + 6 * math.sqrt(2 * dof), (stat, dof)


class _LeakyProposer(CascadeProposer):
    """The bug the one-hot rule prevents: a token kept by lenience claims the draft's q."""

    def _review(self, row, proposed, generator):
        token, q, kept = super()._review(row, proposed, generator)
        if kept and q is not None and float(q.max()) == 1.0:
            q = to_probs(row, self.sampling)
        return token, q, kept


def test_the_two_token_check_detects_a_wrong_law():
    engine = _engine(SamplingConfig(temperature=1.0), vocab=6, sharpen=6.0)
    prompt = [1, 2, 3, 1, 2]
    law = _exact_two_token_law(engine, prompt)
    n = 2000
    counts = Counter(
        tuple(
            _run(engine, "cascade:k=2,mag=0,sub=2,lenience=6", prompt, 2, seed=s, proposer_class=_LeakyProposer).tokens
        )
        for s in range(n)
    )
    stat, dof = _chi_square(counts, law, n)
    assert stat > dof + 6 * math.sqrt(2 * dof), (stat, dof)


# -- the report's cost table ----------------------------------------------------------------------
def _record(method, question, tokens, wall, drafted, **extra):
    return {
        "method": method,
        "question_id": question,
        "group": "qa",
        "category": "qa",
        "new_tokens": tokens,
        "wall_time": wall,
        "draft_time": extra.pop("draft_time", 0.0),
        "drafted": drafted,
        "accepted": [0] * len(drafted),
        **extra,
    }


def test_cost_table_weights_forwards_and_fills_old_records():
    from svip.eval.tables import cost_table, draft_cost_ratio

    records = [
        _record("target-only", "q1", 10, 10.0, [0] * 10),
        _record(
            "constant:k=2", "q1", 10, 8.0, [2] * 4, draft_time=1.0
        ),  # no draft_forwards key: one per drafted token
        _record("cascade:k=5,mag=5,sub=10,lenience=1", "q1", 10, 5.0, [5, 5], draft_forwards=[1, 2]),
    ]
    assert draft_cost_ratio(records) == pytest.approx(
        (1.0 / 8) / 1.0
    )  # 1 s over 8 draft forwards / 1 s per target token
    rows = {line.split()[0]: line.split()[1:] for line in cost_table(records).splitlines()[2:-1]}
    wall, tau, target, forwards, per_round, cost = rows["cascade:k=5,mag=5,sub=10,lenience=1"]
    assert (float(wall), float(tau), int(target), int(forwards), float(per_round)) == (2.0, 5.0, 2, 3, 1.5)
    assert float(cost) == pytest.approx(10 / (2 + 0.125 * 3), abs=0.005)
    assert float(rows["constant:k=2"][-1]) == pytest.approx(10 / (4 + 0.125 * 8), abs=0.005)
    given = cost_table(records, draft_cost=0.5)
    assert "c = 0.500, given" in given and f"{10 / (2 + 0.5 * 3):.2f}" in given
    only_cascade = [records[0], records[2]]
    assert "--draft-cost" in cost_table(only_cascade) and "c = 0.250" in cost_table(only_cascade, draft_cost=0.25)
    assert cost_table([records[0]]) is None


def test_speedup_table_compares_cascade_with_svip_to_plain_cascade_only():
    from svip.eval.tables import speedup_table

    records = [
        _record("target-only", "q1", 10, 10.0, [0] * 10),
        _record("constant:k=5", "q1", 10, 4.0, [5, 5]),  # 2.5x
        _record("svip:h=0.3,gamma=0.15,max=40", "q1", 10, 2.0, [5, 5]),  # 5x: +100% vs constant
        _record("cascade:k=5,mag=5,sub=10,lenience=1", "q1", 10, 1.0, [5, 5]),  # 10x: not SVIP's baseline
        _record(
            "cascade:k=5,mag=5,sub=10,lenience=1,handoff=1+svip:h=0.3,gamma=0.15,max=40", "q1", 10, 2.0, [5, 5]
        ),  # 5x: -50%
    ]
    lines = {line.split()[0]: line for line in speedup_table(records).splitlines()[2:6]}
    assert "(+100.0% vs best baseline)" in lines["svip:h=0.3,gamma=0.15,max=40"]
    assert (
        "(-50.0% vs best baseline)"
        in lines["cascade:k=5,mag=5,sub=10,lenience=1,handoff=1+svip:h=0.3,gamma=0.15,max=40"]
    )
    assert "vs best" not in lines["cascade:k=5,mag=5,sub=10,lenience=1"]


def test_speedup_table_compares_eagle_rules_with_the_plain_eagle_tree():
    """An EAGLE run (no vanilla, hf or cascade rows) prints, each rule against plain EAGLE-2."""
    from svip.eval.tables import speedup_table

    records = [
        _record("target-only", "q1", 10, 10.0, [0] * 10),
        _record("eagle2:total=60,depth=7,top_k=10", "q1", 10, 5.0, [5, 5]),  # 2x
        _record("eagle2:total=60,depth=7,top_k=10,variant=min+svip:h=0.3,gamma=0.15,max=40", "q1", 10, 4.0, [5, 5]),
        _record("eagle2:total=60,depth=7,top_k=10,variant=min+svip-adaptive", "q1", 10, 10.0, [5, 5]),
    ]
    lines = speedup_table(records).splitlines()[2:5]
    assert "vs best" not in lines[0]
    assert "(+25.0% vs best baseline)" in lines[1] and "(-50.0% vs best baseline)" in lines[2]
