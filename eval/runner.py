"""Side-by-side benchmark runs: every method on every question, interleaved.

For each question the methods run back to back (A B C, A B C, ...), so drift
in a shared, noisy machine hits every method alike; ``target-only`` always
runs first because speedups, token-match and the oracle are measured against
it. Results go to ``RUN_DIR/results.jsonl`` as they finish (see records.py),
so a rerun with the same settings resumes where the last one stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from svip.adapters import registry
from svip.adapters.kinds import ModelSet
from svip.grammar import expand_grid
from svip.sampling import SamplingConfig

from .datasets import Question, load_questions, per_category
from .lossless import prefix_match
from .methods import DEFAULT_METHODS, MethodRunner, canonical_method
from .metrics import TARGET_ONLY, policy_name
from .prompts import encode_prompt, stop_token_ids
from .records import ResultLog

__all__ = ["TARGET_ONLY", "BenchConfig", "RunDirError", "run_bench"]


class RunDirError(ValueError):
    """A run directory whose stored settings differ from the requested ones."""


@dataclass
class BenchConfig:
    """Everything that defines a run; stored as ``RUN_DIR/config.json``."""

    target: str = "smollm2-135m"
    draft: str | None = "smollm2-135m"
    draft_layers: int | None = None
    dtype: str = "fp32"
    device: str = "cpu"
    kernels: str = "default"  # linear-layer kernels (svip.kernels); part of the settings: it changes the timings
    memory_first_gpu: float | None = None  # GiB for the target on GPU 0 (accelerate device map); placement only
    memory_per_gpu: float | None = None  # GiB on every other GPU
    questions: str = "spec-bench"
    per_category: int | None = 2
    shortest: bool = False
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    raw: bool = False
    template: str | None = None  # fschat conversation template (vicuna_v1.1, llama-2); None: the model's own
    multi_turn: bool = False  # run every turn (MT-Bench has 2), each on the method's own earlier answers
    cross_entropy: bool = True  # store H(q, p) per drafted token (Figure 3); timed apart, not in wall_time
    eagle_head: str | None = None  # EAGLE-1/2 head (dir or hub id): eagle2* methods on the patched upstream EaModel
    glide_draft: str | None = None  # GliDe draft directory: glide* methods (cross-attention to the target's cache)
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))

    def __post_init__(self) -> None:
        # Canonical spelling ("svip" -> "svip:h=0.3,gamma=0.15,max=40"): one key per method across reruns;
        # an unknown policy fails here, before any model is loaded.
        expanded = [m for grid in self.methods for m in expand_grid(grid)]  # "svip:h=0.2|0.3" -> two methods
        self.methods = list(dict.fromkeys(canonical_method(m) for m in expanded))
        if any(policy_name(m) == "oracle" for m in self.methods) and self.temperature > 0:
            raise ValueError("the oracle method is defined for greedy decoding only")
        eagle = [m for m in self.methods if registry.kind_of(m).needs == "eagle"]
        if eagle and not self.eagle_head:
            raise ValueError(f"{eagle[0]} needs an EAGLE head (--eagle-head DIR_OR_HUB_ID)")
        if self.eagle_head and len(eagle) < len([m for m in self.methods if m != TARGET_ONLY]):
            # target-only runs on EAGLE's own base model there: other methods belong in a run of their own
            raise ValueError("a run with --eagle-head takes only eagle2 / eagle2-svip methods")
        glide = [m for m in self.methods if registry.kind_of(m).name.startswith("glide")]
        if glide and not self.glide_draft:
            raise ValueError(f"{glide[0]} needs a GliDe draft (--glide-draft DIR; shipped: adapters/glide/drafts/...)")

    @property
    def all_methods(self) -> list[str]:
        return [TARGET_ONLY] + [m for m in self.methods if m != TARGET_ONLY]

    def settings(self) -> dict:
        """What must match for a resumed run: everything that changes a generation.

        Methods and the question subset (``per_category``, ``shortest``) may
        grow between reruns: records are per (method, question), so a wider
        rerun only adds the missing ones.
        """
        return {k: v for k, v in asdict(self).items() if k not in _SUBSET_KEYS}


# May change between reruns: the method list and question subset grow, and placement moves weights without changing a generation.
_SUBSET_KEYS = frozenset({"methods", "per_category", "shortest", "memory_first_gpu", "memory_per_gpu"})


def _open_run_dir(config: BenchConfig, run_dir: Path) -> ResultLog:
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    if config_path.exists():
        stored = json.loads(config_path.read_text())
        defaults = BenchConfig(methods=[]).settings()  # keys a run from an older version did not store
        stored_settings = {**defaults, **{k: v for k, v in stored.items() if k not in _SUBSET_KEYS}}
        if stored_settings != config.settings():
            changed = sorted(k for k in config.settings() if stored_settings.get(k) != config.settings()[k])
            raise RunDirError(f"{run_dir} holds a run with other settings ({', '.join(changed)}); use a new --run-dir")
    config_path.write_text(json.dumps(asdict(config), indent=1))
    return ResultLog(run_dir / "results.jsonl")


def _write_environment(run_dir: Path, environment: dict) -> None:
    """``environment.json`` = this start's environment; ``environments.jsonl`` keeps every start (resumes included)."""
    (run_dir / "environment.json").write_text(json.dumps(environment, indent=1))
    with open(run_dir / "environments.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(environment, separators=(",", ":")) + "\n")


def _environment() -> dict:
    """Versions behind the numbers (rewritten on every (re)start of the run)."""
    import platform

    import torch
    import transformers

    import svip
    from svip.adapters.hf import sklearn_refit_available

    from .machine import machine_info

    return {
        "machine": machine_info(),
        "svip": svip.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        # hf-confidence: transformers re-fits its threshold online (ROC) only when scikit-learn imports
        "hf_confidence_threshold_refit": sklearn_refit_available(),
    }


def _record(
    question: Question, method: str, prompts: list[list[int]], results: list, reference: list[list[int]] | None
) -> dict:
    """One JSONL line: totals over the question's turns, per-round lists concatenated."""
    turns = [result.rounds_record() for result in results]
    turn_tokens = [result.tokens for result in results]
    crosses = [c for turn in turns for c in (turn["cross_entropies"] or [None] * turn["decoding_steps"])]
    record = {
        "question_id": question.question_id,
        "category": question.category,
        "group": question.group,
        "method": method,
        "turns": len(results),
        "prompt_tokens": len(prompts[0]),
        "new_tokens": sum(len(t) for t in turn_tokens),
        "wall_time": sum(result.wall_time for result in results),
        "draft_time": sum(result.draft_time for result in results),
        "verify_time": sum(result.verify_time for result in results),
        **{key: [v for turn in turns for v in turn[key]] for key in _ROUND_LISTS},
        "decoding_steps": sum(turn["decoding_steps"] for turn in turns),
        "cross_entropies": crosses if any(c is not None for c in crosses) else None,
        "tokens": [t for turn in turn_tokens for t in turn],
        "turn_tokens": turn_tokens,
        "turn_wall_times": [result.wall_time for result in results],
        "turn_decoding_steps": [turn["decoding_steps"] for turn in turns],
        "stopped_by": results[-1].stopped_by,
    }
    if reference is not None:
        matched = sum(prefix_match(ref, out) for ref, out in zip(reference, turn_tokens))
        record["token_match"] = matched / max(1, sum(len(ref) for ref in reference))
    return record


_ROUND_LISTS = (
    "accept_lengths",
    "drafted",
    "draft_forwards",
    "target_forwards",
    "accepted",
    "entropies",
    "draft_times",
    "verify_times",
)


def _reference_turns(record: dict | None) -> list[list[int]] | None:
    if record is None:
        return None
    return record.get("turn_tokens") or [record["tokens"]]


def _load_models(config: BenchConfig):
    from .loading import ModelRequest, load_models

    sampling = SamplingConfig(config.temperature, config.top_p)
    return load_models(ModelRequest.of(config), sampling, record_cross_entropy=config.cross_entropy)


class _QuestionRunner:
    """Runs one method on one question, turn by turn (each turn sees the method's own earlier answers)."""

    def __init__(self, runner: MethodRunner, tokenizer, config: BenchConfig, stops: set[int]) -> None:
        self.runner, self.tokenizer, self.config, self.stops = runner, tokenizer, config, stops

    def encode(self, question: Question, turn: int, history: list[tuple[str, str]]) -> list[int]:
        chat = not (question.raw or self.config.raw)
        return encode_prompt(
            self.tokenizer, question.turns[turn], chat=chat, template=self.config.template, history=history
        )

    def turns(self, question: Question) -> int:
        return len(question.turns) if self.config.multi_turn else 1

    def __call__(self, question: Question, method: str, reference: list[list[int]] | None) -> dict:
        history: list[tuple[str, str]] = []
        prompts, results = [], []
        for turn in range(self.turns(question)):
            prompt = self.encode(question, turn, history)
            turn_reference = reference[turn] if reference and turn < len(reference) else None
            result = self.runner.run(
                method,
                prompt,
                max_new_tokens=self.config.max_new_tokens,
                stop_tokens=self.stops,
                seed=self.config.seed,
                reference=turn_reference,
            )
            prompts.append(prompt)
            results.append(result)
            history.append((question.turns[turn], self.tokenizer.decode(result.tokens, skip_special_tokens=True)))
        return _record(question, method, prompts, results, None if method == TARGET_ONLY else reference)


def run_bench(config: BenchConfig, run_dir: Path, *, progress: bool = True, models=None) -> ResultLog:
    """Run (or resume) a benchmark; ``models`` (a ``ModelSet``, or (target, draft, tokenizer)) skips loading."""
    log = _open_run_dir(config, run_dir)
    questions = per_category(load_questions(config.questions), config.per_category, shortest=config.shortest)
    methods = config.all_methods
    todo = [(q, m) for q in questions for m in methods if (m, q.question_id) not in log]
    if log.repaired:
        print(f"[bench] cut a torn last line ({log.repaired} bytes) from {log.path}; that generation is redone")
    environment = _environment()
    if not todo:
        _write_environment(run_dir, environment)
        return log
    if isinstance(models, tuple):
        target, draft, tokenizer = models
        models = ModelSet(
            target, draft, tokenizer, SamplingConfig(config.temperature, config.top_p), config.cross_entropy
        )
    models = models if models is not None else _load_models(config)
    if models.eagle is None and models.draft is None and len(methods) > 1:
        raise ValueError("speculative methods need a draft model")
    runner = MethodRunner.for_models(models)
    run_question = _QuestionRunner(runner, models.tokenizer, config, stop_token_ids(models.tokenizer, models.target))
    for question in questions:  # fail on a bad prompt (template, context) before any long run
        run_question.encode(question, 0, [])

    warm_prompt = run_question.encode(questions[0], 0, [])
    if models.eagle is None and models.target is not None:  # the machine's cost curve, stored with the results
        from svip.adapters.vanilla.costs import measure_cost_curve

        # Shared with the methods: a cost-aware policy (svip-adaptive) starts from this curve.
        environment["cost_curve"] = models.shared(
            "cost_curve", lambda: measure_cost_curve(models.engine(), warm_prompt)
        )
    elif models.eagle is not None:  # the verify curve on EAGLE's base model and cache (svip-adaptive starts from it)
        environment["cost_curve"] = models.eagle.cost_curve(warm_prompt)
    _write_environment(run_dir, environment)
    for method in methods:  # warm-up: allocator, kernels, caches; not recorded
        runner.run(method, warm_prompt, max_new_tokens=4, stop_tokens=run_question.stops, seed=config.seed)

    total = len(questions) * len(methods)
    bar = tqdm(total=total, initial=total - len(todo), desc="bench", unit="gen", disable=not progress)
    for question, method in todo:
        reference = _reference_turns(log.get(TARGET_ONLY, question.question_id))
        bar.set_postfix_str(f"{question.group}/{question.question_id} {method}")
        log.append(run_question(question, method, reference))
        bar.update()
    bar.close()
    return log
