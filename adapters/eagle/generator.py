"""Drive the patched upstream ``EaModel`` (EAGLE-2) one prompt at a time, on any device.

Upstream's ``eagenerate`` loop is rebuilt here from EAGLE's own building
blocks (``initialize_tree``, ``tree_decoding``, ``evaluate_posterior``,
``update_inference_inputs``) for three reasons: it hard-codes nothing about
CUDA here, it stops exactly at ``max_new_tokens`` / our stop tokens (upstream
overshoots by up to a tree), and it yields our per-round ``RoundStats`` so
EAGLE rows land in the same tables as every other method.

Target-only decoding for EAGLE runs uses the *same* base model and KV cache
(upstream's ``naivegenerate`` loop), so a speedup compares tree decoding with
plain decoding on identical kernels, and no second copy of the weights is
loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Collection, Sequence

import torch

from svip.kernels import pack_linears
from svip.method import Decoded, GenerationRequest, SpeculativeMethod, clip, finished
from svip.results import GenerationResult, RoundStats
from svip.runtime import DTYPES
from svip.sampling import SamplingConfig
from svip.spec import make_policy

from .adaptive import AdaptiveTreeRule, measure_tree_curve
from .method import EagleMethod

__all__ = [
    "EagleSetupError",
    "EagleGenerator",
    "EagleMethodRunner",
    "eagle_root",
    "greedy_path",
    "hub_offline_for",
    "import_eagle",
    "is_eagle3_head",
]

# base models whose EAGLE modeling file returns EAGLE-3's three layers: llama and qwen3 at the pin, qwen2 by our patch
EAGLE3_BASES = ("llama", "qwen2", "qwen3")


class EagleSetupError(RuntimeError):
    """The patched EAGLE checkout (or its environment) is missing or unusable."""


def eagle_root() -> Path:
    """``$SVIP_EAGLE_DIR``, else ``third_party/EAGLE`` under the working directory (where ``make eagle-setup`` clones)."""
    configured = os.environ.get("SVIP_EAGLE_DIR")
    return Path(configured) if configured else Path.cwd() / "third_party" / "EAGLE"


def import_eagle(*, require_patch: bool = True):
    """The upstream modules, from the patched checkout; a clear error if anything is off.

    ``require_patch=False`` admits a pristine checkout (to compare patched with unpatched).
    """
    root = eagle_root()
    if not (root / "eagle" / "model" / "ea_model.py").exists():
        raise EagleSetupError(f"no EAGLE checkout at {root}: run `make eagle-setup` (or set SVIP_EAGLE_DIR)")
    if require_patch and "set_draft_vocab" not in (root / "eagle" / "model" / "cnets1.py").read_text():
        raise EagleSetupError(f"{root} is not patched with patches/eagle2-svip.patch: run `make eagle-setup`")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from eagle.model import ea_model, kv_cache, utils
    except ImportError as error:  # e.g. transformers 5 in this environment
        raise EagleSetupError(
            f"cannot import EAGLE from {root} ({error}); run EAGLE methods in its environment: "
            "third_party/eagle-venv/bin/python (made by `make eagle-setup`)"
        ) from error
    return ea_model, kv_cache, utils


@contextlib.contextmanager
def hub_offline_for(*paths: str):
    """Offline hub while loading local directories.

    Upstream looks for ``pytorch_model.bin`` first and, when a local head has
    only ``model.safetensors``, asks the hub for it (five retries, ~25 s, then
    falls back). With every path local, nothing should go to the network.
    """
    if not all(Path(p).is_dir() for p in paths):
        yield
        return
    import huggingface_hub.constants as hub

    saved = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved


def is_eagle3_head(head: str | Path) -> bool:
    """An EAGLE-3 head (upstream's ``cnets.Model``): its config names a draft vocabulary size; EAGLE-1/2's does not.

    A hub id (not a local directory) is taken as EAGLE-1/2, upstream's default.
    """
    config = Path(head) / "config.json"
    return config.exists() and "draft_vocab_size" in json.loads(config.read_text())


def _check_eagle3_base(base_model: str) -> None:
    config = Path(base_model) / "config.json"
    model_type = json.loads(config.read_text()).get("model_type") if config.exists() else None
    if model_type is not None and model_type not in EAGLE3_BASES:
        raise EagleSetupError(
            f"an EAGLE-3 head reads three target layers, which EAGLE's modeling file for {model_type!r} does not "
            f"return (patched EAGLE returns them for {', '.join(EAGLE3_BASES)}); use an EAGLE-1/2 head for this base model"
        )


def greedy_path(
    node_logits: torch.Tensor, candidates: torch.Tensor, retrieve_indices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Upstream's greedy ``evaluate_posterior`` on per-node logits: (best path, accepted length, next logits).

    ``node_logits``: (nodes, vocab), the target's logits per tree node;
    ``candidates``: (paths, depth + 1) token ids per root-to-leaf path (-1 pads);
    ``retrieve_indices``: (paths, depth + 1) node per path position (-1 pads).
    Upstream gathers the logits per path first and takes the argmax of each
    gathered row; a gathered row is a copy of its node's row and ``argmax``
    returns the first maximum, so one argmax per node, gathered as ids, is
    the same choice row for row (ties included), for a fraction of the copying.
    """
    path_argmax = node_logits.argmax(dim=-1)[retrieve_indices]
    matches = (candidates[:, 1:] == path_argmax[:, :-1]).int()
    accept_lengths = torch.cumprod(matches, dim=1).sum(dim=1)
    accept_length = accept_lengths.max()
    if accept_length == 0:
        best = torch.tensor(0, dtype=torch.long, device=candidates.device)
    else:
        best = torch.argmax(accept_lengths).to(torch.long)
    return best, accept_length, node_logits[retrieve_indices[best, accept_length]]


class EagleGenerator:
    """EAGLE-2 or EAGLE-3 tree decoding (optionally + SVIP) and plain decoding on one loaded ``EaModel``.

    The head's format decides the drafter: an EAGLE-3 head (``is_eagle3_head``)
    drafts with upstream's ``cnets.Model`` from its own draft vocabulary
    (``d2t``), an EAGLE-1/2 head with ``cnets1.Model`` through the target's LM
    head or a ``draft_vocab.json`` beside it. The patch's SVIP stop is the same in both.
    """

    def __init__(
        self,
        base_model: str,
        head: str,
        *,
        dtype: str = "fp32",
        device: str = "cpu",
        sampling: SamplingConfig = SamplingConfig(),
        kernels: str = "default",
    ) -> None:
        ea_model, kv_cache, self._utils = import_eagle()
        self._init_cache = kv_cache.initialize_past_key_values
        kwargs: dict = {"torch_dtype": DTYPES[dtype], "low_cpu_mem_usage": True}
        if device != "cpu":
            kwargs["device_map"] = device
        default = EagleMethod()
        self.eagle3 = is_eagle3_head(head)
        if self.eagle3:
            _check_eagle3_base(base_model)
        with hub_offline_for(base_model, head):
            self.model = ea_model.EaModel.from_pretrained(
                use_eagle3=self.eagle3,
                base_model_path=base_model,
                ea_model_path=head,
                total_token=default.total,
                depth=default.depth,
                top_k=default.top_k,
                **kwargs,
            ).eval()
        self.sampling = sampling
        self.device = self.model.base_model.model.embed_tokens.weight.device
        self.draft_vocab = self._load_draft_vocab(Path(head))  # before packing: it takes rows of the dense LM head
        pack_linears(self.model.base_model, kernels)
        if self.draft_vocab is not None:
            pack_linears(self.draft_vocab[1], kernels)
        self.vocab_size = self.model.vocab_size
        self._cache_length = 0
        self._draft_seconds = 0.0
        self.levels: list[int] = []  # tree levels grown per draft of the last generate() (SVIP cuts them)
        self.sizes: list[int] = []  # nodes verified per tree (without the root) of the last generate()
        self.trees: list[list[int]] = []  # each draft tree's tokens (root first) of the last generate()
        self._rules: dict[str, AdaptiveTreeRule] = {}  # one learner per svip-adaptive method, across prompts
        self._rule: AdaptiveTreeRule | None = None  # the one growing trees now
        self._curve: dict | None = None
        upstream_draft = self.model.ea_layer.topK_genrate

        def timed_draft(*args, **kwargs):  # the tree is grown inside upstream helpers; time it where it happens
            start = time.perf_counter()
            if self._rule is not None:
                self._rule.start_draft()
            try:
                grown = upstream_draft(*args, **kwargs)
            finally:
                self._draft_seconds += time.perf_counter() - start
                self.levels.append(self.model.ea_layer.svip_levels)
            self.sizes.append(int(grown[0].shape[1]) - 1)
            self.trees.append(grown[0][0].tolist())
            if self._rule is not None:
                self._rule.end_draft(self.levels[-1], self.sizes[-1])
            return grown

        self.model.ea_layer.topK_genrate = timed_draft

    def _load_draft_vocab(self, head: Path) -> tuple[torch.Tensor, torch.nn.Linear] | None:
        """The head's reduced draft vocabulary (``draft_vocab.json``: sorted target ids), with its LM-head rows."""
        path = head / "draft_vocab.json"
        if self.eagle3 or not path.exists():  # an EAGLE-3 head has its own draft vocabulary (d2t)
            return None
        ids = torch.tensor(json.loads(path.read_text()), dtype=torch.long)
        lm_head = self.model.base_model.lm_head
        if ids.ndim != 1 or len(ids) == 0 or int(ids.max()) >= lm_head.out_features or bool((ids.diff() <= 0).any()):
            raise EagleSetupError(f"{path}: expected sorted, distinct token ids below {lm_head.out_features}")
        rows = torch.nn.Linear(lm_head.in_features, len(ids), bias=False, dtype=lm_head.weight.dtype)
        with torch.no_grad():
            rows.weight.copy_(lm_head.weight[ids.to(lm_head.weight.device)])
        return ids, rows.to(lm_head.weight.device).eval()

    @property
    def adaptive_rules(self) -> dict[str, AdaptiveTreeRule]:
        """The learner of each ``svip-adaptive`` method run so far (its ``log`` holds the rounds' forecasts)."""
        return dict(self._rules)

    # -- costs ----------------------------------------------------------------
    def cost_curve(self, prompt: Sequence[int]) -> dict:
        """This machine's verify curve on the base model and EAGLE's cache (measured once per generator)."""
        if self._curve is None:
            self._cache(len(prompt) + 80)
            self._curve = measure_tree_curve(self.model, prompt)
        return self._curve

    def _rule_for(self, method: EagleMethod, prompt: Sequence[int]) -> AdaptiveTreeRule:
        rule = self._rules.get(method.spec)
        if rule is None:
            policy = make_policy(method.adaptive)
            policy.seed_costs(self.cost_curve(prompt))
            rule = self._rules[method.spec] = AdaptiveTreeRule(policy, top_k=method.top_k, total=method.total)
        return rule

    # -- set-up per request -------------------------------------------------
    def _configure(self, method: EagleMethod, prompt: Sequence[int]) -> None:
        layer = self.model.ea_layer
        if (layer.top_k, layer.depth, layer.total_tokens) != (method.top_k, method.depth, method.total - 1):
            layer.top_k, layer.depth, layer.total_tokens = method.top_k, method.depth, method.total - 1
            layer.init_tree()
        if self.eagle3:
            if method.vocab == "full":
                raise ValueError(f"{method.spec}: an EAGLE-3 head drafts from its own vocabulary; vocab=full needs EAGLE-2")
        elif self.draft_vocab is not None and method.vocab == "head":
            layer.set_draft_vocab(*self.draft_vocab)
        else:
            layer.set_draft_vocab(None, None)
        self._rule = self._rule_for(method, prompt) if method.adaptive is not None else None
        if self._rule is not None:
            layer.set_svip(None, method.gamma, method.variant, rule=self._rule)
        else:
            layer.set_svip(method.h, method.gamma, method.variant)

    def _cache(self, needed: int):
        if needed > self._cache_length:
            self._cache_length = max(2048, needed)
            self.model.past_key_values, self.model.past_key_values_data, self.model.current_length_data = (
                self._init_cache(self.model.base_model, max_length=self._cache_length)
            )
        self.model.current_length_data.zero_()
        return self.model.past_key_values

    def _logits_processor(self):
        if self.sampling.greedy:
            return None
        return self._utils.prepare_logits_processor(
            temperature=self.sampling.temperature, top_p=self.sampling.top_p if self.sampling.top_p < 1 else 0.0
        )

    def _start(self, prompt: Sequence[int], max_new_tokens: int, seed: int | None, tree_nodes: int):
        if seed is not None:
            torch.manual_seed(seed)  # upstream samples with torch's and Python's global generators
            random.seed(seed)
        self.model.ea_layer.reset_kv()
        self._utils.reset_tree_mode(self.model)
        self._draft_seconds = 0.0
        self.levels, self.sizes, self.trees = [], [], []
        past = self._cache(len(prompt) + max_new_tokens + tree_nodes + 16)
        return torch.tensor([list(prompt)], dtype=torch.long, device=self.device), past

    # -- decoding -----------------------------------------------------------
    def generate(
        self,
        prompt: Sequence[int],
        method: EagleMethod | None,
        *,
        max_new_tokens: int,
        stop_tokens: Collection[int] = (),
        seed: int | None = None,
    ) -> GenerationResult:
        """EAGLE-2 tree decoding under ``method``; ``None`` decodes target-only on the same base model."""
        return EagleMethodRunner(self, method).generate(
            prompt, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens, seed=seed
        )

    def target_only_method(self) -> "EagleMethodRunner":
        return EagleMethodRunner(self, None)

    @torch.no_grad()
    def decode(self, request: GenerationRequest, method: EagleMethod | None) -> Decoded:
        """The rounds for a checked request (``method=None``: upstream's plain decoding loop)."""
        prompt, max_new_tokens, stops, seed = (
            list(request.prompt),
            request.max_new_tokens,
            request.stop_tokens,
            request.seed,
        )
        if method is None:
            return self._target_only(prompt, max_new_tokens, stops, seed)
        self._configure(method, prompt)
        u = self._utils
        input_ids, past = self._start(prompt, max_new_tokens, seed, method.total)
        if self._rule is not None:
            self._rule.start_sequence()
        processor = self._logits_processor()
        padding = torch.full((1, 1), -1, dtype=torch.long, device=self.device)
        start = time.perf_counter()
        draft_tokens, retrieve_indices, tree_mask, tree_position_ids, _, _, token = u.initialize_tree(
            input_ids, self.model, past, processor
        )
        tokens = [int(token)]
        prefill = time.perf_counter() - start
        rounds = [
            RoundStats(
                drafted=0,
                accepted=0,
                emitted=1,
                draft_time=self._draft_seconds,
                verify_time=prefill - self._draft_seconds,
            )
        ]
        new_token = 0
        while not finished(tokens, stops, max_new_tokens):
            self._draft_seconds = 0.0
            verify_start = time.perf_counter()
            self.model.base_model.model.tree_mask = tree_mask
            drafted = int(draft_tokens.shape[1]) - 1
            node_logits, hidden_state_new = self._score_tree(draft_tokens, past, tree_position_ids, input_ids)
            candidates = torch.cat((draft_tokens, padding), dim=1)[0, retrieve_indices]
            best, accept_length, sample_p = self._choose_path(node_logits, candidates, retrieve_indices, processor)
            verify_seconds = time.perf_counter() - verify_start
            accepted = int(accept_length)
            if self._rule is not None:  # before update_inference_inputs grows the next tree
                self._rule.observe(accepted, verify_seconds)
            input_ids, draft_tokens, retrieve_indices, tree_mask, tree_position_ids, new_token, _, token = (
                u.update_inference_inputs(
                    input_ids,
                    candidates,
                    best,
                    accept_length,
                    retrieve_indices,
                    processor,
                    new_token,
                    self.model.past_key_values_data,
                    self.model.current_length_data,
                    self.model,
                    hidden_state_new,
                    sample_p,
                )
            )
            emitted = clip(
                input_ids[0, input_ids.shape[1] - accepted :].tolist() + [int(token)],
                stops,
                max_new_tokens - len(tokens),
            )
            tokens.extend(emitted)
            rounds.append(
                RoundStats(drafted, accepted, len(emitted), draft_time=self._draft_seconds, verify_time=verify_seconds)
            )
        return Decoded(tokens, rounds)

    def _score_tree(self, draft_tokens, past, tree_position_ids, input_ids) -> tuple[torch.Tensor, torch.Tensor]:
        """Upstream's ``tree_decoding`` up to its per-path gather: the target's logits per tree *node* (nodes, vocab).

        Upstream gathers full-vocabulary logits for every root-to-leaf path
        (``tree_logits[0, retrieve_indices]``: leaves x depth x vocab) before
        the greedy check reads one argmax per row; on a CPU that copy and the
        argmax over it took 15 ms a round on a 20-node tree and 196 ms on the
        60-node one, against a 169-178 ms target step (Qwen2.5-Coder 1.5B, bf16,
        Xeon with AMX). ``_choose_path`` gathers only what it needs.
        """
        position_ids = tree_position_ids + input_ids.shape[1]
        if position_ids.dim() == 1:
            position_ids = position_ids.unsqueeze(0)
        outputs, tree_logits, hidden_state = self.model(
            draft_tokens.to(self.device), output_orig=True, past_key_values=past, position_ids=position_ids
        )
        if self.eagle3:  # EAGLE-3's head reads three target layers, on its own device (as upstream's tree_decoding)
            head_device = self.model.ea_layer.lm_head.weight.device
            hidden_state = torch.cat([h.to(head_device) for h in outputs["hidden_states"]], dim=-1)
        return tree_logits[0], hidden_state

    def _choose_path(self, node_logits, candidates, retrieve_indices, processor):
        """Upstream's ``evaluate_posterior`` (sampling); greedy: ``greedy_path``, the same choice without the gather."""
        if processor is not None:
            return self._utils.evaluate_posterior(node_logits[retrieve_indices], candidates, processor)
        return greedy_path(node_logits, candidates, retrieve_indices)

    def _target_only(self, prompt, max_new_tokens, stops, seed) -> GenerationResult:
        """Upstream's ``naivegenerate``: one token per forward, same base model and cache."""
        input_ids, past = self._start(prompt, max_new_tokens, seed, 0)
        processor = self._logits_processor()
        base = self.model.base_model
        tokens, rounds = [], []
        start = time.perf_counter()
        outputs = base(input_ids, past_key_values=past, use_cache=True)
        while True:
            logits = outputs.logits[:, -1]
            if processor is None:
                token = int(logits.argmax(dim=-1))
            else:
                token = int(torch.multinomial(torch.softmax(processor(None, logits), dim=-1), 1))
            tokens.append(token)
            rounds.append(RoundStats(drafted=0, accepted=0, emitted=1))
            if finished(tokens, stops, max_new_tokens):
                break
            outputs = base(torch.tensor([[token]], device=self.device), past_key_values=past, use_cache=True)
        wall = time.perf_counter() - start
        for r in rounds:
            r.verify_time = wall / len(rounds)
        return Decoded(tokens, rounds)


class EagleMethodRunner(SpeculativeMethod):
    """One EAGLE configuration (or target-only on EaModel's base model) behind the common interface."""

    def __init__(self, generator: EagleGenerator, method: EagleMethod | None) -> None:
        self.generator, self.method = generator, method
        self.spec = method.spec if method is not None else "target-only"
        self.vocab_size = generator.vocab_size

    def _decode(self, request: GenerationRequest, reference: Sequence[int] | None) -> Decoded:
        return self.generator.decode(request, self.method)
