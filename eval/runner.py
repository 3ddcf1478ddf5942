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

from svip import make_policy
from svip.adapters.vanilla import SamplingConfig, SpeculativeEngine

from .datasets import Question, load_questions, per_category
from .lossless import prefix_match
from .prompts import encode_prompt, stop_token_ids
from .records import ResultLog

__all__ = ["TARGET_ONLY", "BenchConfig", "RunDirError", "run_bench"]

TARGET_ONLY = "target-only"


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
    questions: str = "spec-bench"
    per_category: int | None = 2
    shortest: bool = False
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    raw: bool = False
    methods: list[str] = field(default_factory=lambda: ["constant:k=5", "heuristic:k0=5", "confidence:p_min=0.4", "svip:h=0.3,gamma=0.15"])

    def __post_init__(self) -> None:
        # Canonical spelling ("svip" -> "svip:h=0.3,gamma=0.15,max=40"): one key per method across reruns;
        # an unknown policy fails here, before any model is loaded.
        self.methods = [m if m == TARGET_ONLY else make_policy(m).spec for m in self.methods]
        if "oracle" in {m.partition(":")[0] for m in self.methods} and self.temperature > 0:
            raise ValueError("the oracle method is defined for greedy decoding only")

    @property
    def all_methods(self) -> list[str]:
        return [TARGET_ONLY] + [m for m in self.methods if m != TARGET_ONLY]

    def settings(self) -> dict:
        """What must match for a resumed run (methods may be added)."""
        return {k: v for k, v in asdict(self).items() if k != "methods"}


def _open_run_dir(config: BenchConfig, run_dir: Path) -> ResultLog:
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    if config_path.exists():
        stored = json.loads(config_path.read_text())
        stored_settings = {k: v for k, v in stored.items() if k != "methods"}
        if stored_settings != config.settings():
            changed = sorted(k for k in config.settings() if stored_settings.get(k) != config.settings()[k])
            raise RunDirError(f"{run_dir} holds a run with other settings ({', '.join(changed)}); use a new --run-dir")
    config_path.write_text(json.dumps(asdict(config), indent=1))
    return ResultLog(run_dir / "results.jsonl")


def _record(question: Question, method: str, prompt: list[int], result, reference: list[int] | None) -> dict:
    record = {
        "question_id": question.question_id,
        "category": question.category,
        "group": question.group,
        "method": method,
        "prompt_tokens": len(prompt),
        "new_tokens": len(result.tokens),
        "wall_time": result.wall_time,
        "draft_time": result.draft_time,
        "verify_time": result.verify_time,
        "decoding_steps": len(result.rounds),
        "accept_lengths": [r.emitted for r in result.rounds],
        "drafted": [r.drafted for r in result.rounds],
        "accepted": [r.accepted for r in result.rounds],
        "entropies": [r.entropies for r in result.rounds],
        "tokens": result.tokens,
        "stopped_by": result.stopped_by,
    }
    if reference is not None:
        record["token_match"] = prefix_match(reference, result.tokens) / max(1, len(reference))
    return record


def run_bench(config: BenchConfig, run_dir: Path, *, progress: bool = True, models=None) -> ResultLog:
    """Run (or resume) a benchmark; ``models`` = (target, draft, tokenizer) skips loading."""
    log = _open_run_dir(config, run_dir)
    questions = per_category(load_questions(config.questions), config.per_category, shortest=config.shortest)
    methods = config.all_methods
    todo = [(q, m) for q in questions for m in methods if (m, q.question_id) not in log]
    if log.repaired:
        print(f"[bench] cut a torn last line ({log.repaired} bytes) from {log.path}; that generation is redone")
    if not todo:
        return log
    if models is None:
        from .loading import Placement, check_same_tokenizer, load_model, load_tokenizer

        tokenizer = load_tokenizer(config.target)
        target = load_model(config.target, Placement(config.device, config.dtype))
        draft = None
        if config.draft:
            check_same_tokenizer(tokenizer, load_tokenizer(config.draft))
            draft = load_model(config.draft, Placement(config.device, config.dtype), layers=config.draft_layers)
    else:
        target, draft, tokenizer = models
    if draft is None and len(methods) > 1:
        raise ValueError("speculative methods need a draft model")
    engine = SpeculativeEngine(target, draft, sampling=SamplingConfig(config.temperature, config.top_p))
    stops = stop_token_ids(tokenizer, target)
    encoded = {q.question_id: encode_prompt(tokenizer, q.turns[0], chat=not (q.raw or config.raw)) for q in questions}

    warm_prompt = encoded[questions[0].question_id]
    for method in methods:  # warm-up: allocator, kernels, caches; not recorded
        policy = None if method == TARGET_ONLY else make_policy(method, reference=[])
        engine.generate(warm_prompt, policy=policy, max_new_tokens=4, stop_tokens=stops, seed=config.seed)

    bar = tqdm(total=len(questions) * len(methods), initial=len(questions) * len(methods) - len(todo), desc="bench", unit="gen", disable=not progress)
    for question, method in todo:
        prompt = encoded[question.question_id]
        reference_record = log.get(TARGET_ONLY, question.question_id)
        reference = reference_record["tokens"] if reference_record else None
        policy = None if method == TARGET_ONLY else make_policy(method, reference=reference or [])
        bar.set_postfix_str(f"{question.group}/{question.question_id} {method}")
        result = engine.generate(prompt, policy=policy, max_new_tokens=config.max_new_tokens, stop_tokens=stops, seed=config.seed)
        log.append(_record(question, method, prompt, result, None if method == TARGET_ONLY else reference))
        bar.update()
    bar.close()
    return log
