"""Side-by-side benchmark runs: every method on every question, interleaved.

For each question the methods run back to back (A B C, A B C, ...), so drift
in a shared, noisy machine hits every method alike; ``target-only`` always
runs first because speedups, token-match and the oracle are measured against
it (or, for a kind with an engine of its own, against that engine's
target-only, which then runs before the kind's other methods:
``registry.baseline_of``). Results go to ``RUN_DIR/results.jsonl`` as they
finish (see records.py), so a rerun with the same settings resumes where the
last one stopped. Nothing here names a kind: what a kind needs (options, its
own models, a cost curve, a baseline) it declares in the registry.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

from tqdm.auto import tqdm

from svip.adapters import registry
from svip.adapters.kinds import Method, ModelSet
from svip.sampling import SamplingConfig

from .datasets import Question, load_questions, per_category
from .loading import ModelRequest, load_models
from .locks import DirectoryLock
from .lossless import prefix_match
from .machine import CpuWatch, curve_warnings
from .methods import DEFAULT_METHODS, MethodRunner
from .metrics import TARGET_ONLY
from .prompts import encode_prompt, stop_token_ids
from .records import ResultLog, turn_tokens

__all__ = ["TARGET_ONLY", "BenchConfig", "RunDirError", "run_bench", "stored_options"]


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
    # the kinds' run-level settings by Option.name (a head, a draft directory, ...): only those the run's kinds
    # declare, unset ones dropped, so a kind registered later never changes a stored run's settings
    options: dict[str, str | None] = field(default_factory=dict)
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))

    def __post_init__(self) -> None:
        # Parsed once: canonical spelling ("svip" -> "svip:h=0.3,gamma=0.15,max=40") is one key per method across
        # reruns; grids expand ("svip:h=0.2|0.3" -> two methods); a bad method fails here, before any model loads.
        parsed = registry.expand(self.methods)
        self.methods = [m.text for m in parsed]
        if self.temperature > 0 and any(m.policy_name == "oracle" for m in parsed):
            raise ValueError("the oracle method is defined for greedy decoding only")
        run = [registry.parse(TARGET_ONLY)] + parsed
        declared = {option.name for method in run for option in method.kind.options}
        self.options = {k: v for k, v in self.options.items() if k in declared and v is not None}
        registry.check_run(run, self.options)
        loader = registry.loader_of(run)
        if loader is not None and loader.needs != "draft":
            self.draft = None  # its own loader reads no draft model: one stored setting, whatever --draft said
        baselines = [registry.parse(registry.baseline_of(m), warn=False) for m in run]
        self._parsed = {m.text: m for m in [*run, *baselines]}

    @property
    def all_methods(self) -> list[str]:
        """``target-only``, then each kind's own baseline (added if missing), then the rest: references run first."""
        baselines = [registry.baseline_of(m) for m in self.parsed_methods]
        return list(dict.fromkeys([TARGET_ONLY, *baselines, *self.methods]))

    @property
    def parsed_methods(self) -> list[Method]:
        """The run's methods as parsed once (``methods`` holds their canonical text)."""
        return [self._parsed[m] for m in self.methods]

    def method(self, text: str) -> Method:
        """Any method of ``all_methods``, parsed."""
        return self._parsed[text]

    def settings(self) -> dict:
        """What must match for a resumed run: everything that changes a generation.

        Methods and the question subset (``per_category``, ``shortest``) may
        grow between reruns: records are per (method, question), so a wider
        rerun only adds the missing ones. ``options`` are compared apart
        (``_conflicting_options``): a rerun may add a kind's options.
        """
        return {k: v for k, v in asdict(self).items() if k not in _SUBSET_KEYS and k != "options"}


# May change between reruns: the method list and question subset grow, and placement moves weights without changing a generation.
_SUBSET_KEYS = frozenset({"methods", "per_category", "shortest", "memory_first_gpu", "memory_per_gpu"})


def stored_options(stored: Mapping) -> dict[str, str | None]:
    """A stored config's options: its ``options``, and the top-level keys an older version wrote per option.

    Before options were one dict, each kind's setting was a field of its own
    (``{"<option name>": null, ...}``); any top-level key named like a registered
    kind's ``Option`` is read as that option. Unset (None) ones are dropped.
    """
    names = registry.options()
    legacy = {k: v for k, v in stored.items() if k in names}
    return {k: v for k, v in {**legacy, **(stored.get("options") or {})}.items() if v is not None}


def _stored_settings(stored: Mapping) -> dict:
    names = registry.options()
    defaults = BenchConfig(methods=[]).settings()  # keys a run from an older version did not store
    kept = {k: v for k, v in stored.items() if k not in _SUBSET_KEYS and k != "options" and k not in names}
    return {**defaults, **kept}


def _conflicting_options(stored: Mapping[str, str | None], given: Mapping[str, str | None]) -> list[str]:
    """Options set in both with other values (one set on one side only changes no stored generation)."""
    return sorted(k for k in stored.keys() & given.keys() if stored[k] != given[k])


def _checked_options(config: BenchConfig, run_dir: Path) -> dict[str, str | None]:
    """The options to store, after checking a stored config against ``config``; reads only.

    Raises ``RunDirError`` when the directory holds a run with other settings,
    or a ``config.json`` that is not one.
    """
    config_path = run_dir / "config.json"
    options = dict(config.options)
    if not config_path.exists():
        return options
    try:
        stored = json.loads(config_path.read_text())
        if not isinstance(stored, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise RunDirError(
            f"{config_path} is not a run's config ({error}); fix or remove it, or use a new --run-dir"
        ) from None
    stored_settings, settings = _stored_settings(stored), config.settings()
    previous = stored_options(stored)
    changed = sorted(k for k in settings.keys() | stored_settings.keys() if stored_settings.get(k) != settings.get(k))
    changed += [f"options.{k}" for k in _conflicting_options(previous, options)]
    if stored_settings != settings or changed:
        raise RunDirError(f"{run_dir} holds a run with other settings ({', '.join(changed)}); use a new --run-dir")
    return {**previous, **options}  # the union: a later rerun is checked against every option used


def _write_config(config: BenchConfig, run_dir: Path, options: Mapping[str, str | None]) -> None:
    """``config.json``, written only once everything the run needs has been checked and started."""
    (run_dir / "config.json").write_text(json.dumps({**asdict(config), "options": dict(options)}, indent=1))


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
    return None if record is None else turn_tokens(record)


def _request(config: BenchConfig) -> ModelRequest:
    return ModelRequest.of(config, methods=tuple(config.method(m) for m in config.all_methods))


def _models(config: BenchConfig, models) -> ModelSet:
    """The caller's ``ModelSet`` (or (target, draft, tokenizer)), else the config's models, loaded.

    A caller's set gets the run's options and request if it has none, so a kind loading more finds them.
    """
    sampling = SamplingConfig(config.temperature, config.top_p)
    if models is None:
        return load_models(_request(config), sampling, record_cross_entropy=config.cross_entropy)
    if isinstance(models, tuple):
        target, draft, tokenizer = models
        models = ModelSet(target, draft, tokenizer, sampling, config.cross_entropy)
    models.options = models.options or dict(config.options)
    models.request = models.request or _request(config)
    return models


def _cost_curves(methods: list[Method], models: ModelSet, prompt: list[int]) -> dict:
    """Each kind's measured costs, once per run: ``cost_curve`` is the curve of whoever decodes target-only
    (the kind that loaded the models, else the target-only kind: the vanilla engine's), ``cost_curves`` the others'."""
    primary = registry.kinds()[models.loaded_by] if models.loaded_by else registry.kind_of(TARGET_ONLY)
    models.methods = tuple(method.spec for method in methods)
    found: dict = {}
    if primary.cost_curve is not None:
        found["cost_curve"] = _watched(primary.cost_curve, models, prompt)
    others = {m.kind.name: m.kind for m in methods if m.kind.name != primary.name and m.text != TARGET_ONLY}
    curves = {name: _watched(kind.cost_curve, models, prompt) for name, kind in others.items() if kind.cost_curve}
    if curves:
        found["cost_curves"] = curves
    return found


def _watched(measure, models: ModelSet, prompt: list[int]) -> dict:
    """A kind's curve with how busy the machine was meanwhile (``curve_warnings`` reads it).

    A curve the kind measured before (``ModelSet.shared``) keeps the record it got then.
    """
    with CpuWatch() as watch:
        curve = measure(models, prompt)
    return curve if "others_cpu" in curve else watch.annotate(curve)


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

    def __call__(self, question: Question, method: Method, reference: list[list[int]] | None) -> dict:
        """``reference``: the turns of the method's baseline on this question (None: the method is a baseline)."""
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
        return _record(question, method.text, prompts, results, reference)


def run_bench(config: BenchConfig, run_dir: Path, *, progress: bool = True, models=None) -> ResultLog:
    """Run (or resume) a benchmark; ``models`` (a ``ModelSet``, or (target, draft, tokenizer)) skips loading.

    The run directory is locked for the whole run (a second run on it stops at
    once: ``DirectoryBusy``), and nothing is written into it before the
    questions load, the models load, every prompt encodes and every method has
    run once: a start that fails leaves the directory as it was. The models'
    resources (a kind's server, draft, files) are closed when the run ends, by
    finishing, by an error or by Ctrl-C; the error propagates.
    """
    with DirectoryLock(run_dir, "svip bench run", remove_if_unused=True):
        options = _checked_options(config, run_dir)
        questions = per_category(load_questions(config.questions), config.per_category, shortest=config.shortest)
        log = ResultLog(run_dir / "results.jsonl")
        if log.duplicates:
            print(f"[bench] {log.path} holds {log.duplicates} repeated records; the first of each is used")
        methods = [config.method(m) for m in config.all_methods]
        todo = [
            (q, m)
            for i, q in enumerate(questions)
            for m in _question_order(methods, i)
            if (m.text, q.question_id) not in log
        ]
        if log.repaired:
            print(f"[bench] cut a torn last line ({log.repaired} bytes) from {log.path}; that generation is redone")
        started = _Start(config, run_dir, options, _environment())
        if not todo:
            started.write()
            return log
        with _models(config, models) as loaded:
            _run(config, log, questions, methods, todo, loaded, started, progress)
    return log


def _question_order(methods: list[Method], index: int) -> list[Method]:
    """The methods of the ``index``-th question: baselines first, in the run's order (a method's token-match needs
    its baseline's answer), then the others rotated by one place per question.

    In a fixed order the same method always ran right after the baselines, or after the same other method, and
    whatever one generation leaves behind (a torch engine's spinning threads, the caches) always fell on the same
    column; rotated, it falls on each in turn, as in ``llamacpp_builds``.
    """
    baselines = {registry.baseline_of(method) for method in methods}
    first = [method for method in methods if method.text in baselines]
    rest = [method for method in methods if method.text not in baselines]
    turn = index % len(rest) if rest else 0
    return first + rest[turn:] + rest[:turn]


@dataclass
class _Start:
    """What the run writes once it has started: the config and the environment (with the cost curves)."""

    config: BenchConfig
    run_dir: Path
    options: Mapping[str, str | None]
    environment: dict

    def write(self) -> None:
        _write_config(self.config, self.run_dir, self.options)
        _write_environment(self.run_dir, self.environment)
        curves = {"": self.environment.get("cost_curve"), **self.environment.get("cost_curves", {})}
        for kind, curve in curves.items():
            for warning in curve_warnings(curve, f"{kind} cost curve".strip()):
                print(f"[bench] WARNING: {warning}")


def _run(
    config: BenchConfig,
    log: ResultLog,
    questions: list[Question],
    methods: list[Method],
    todo: list[tuple[Question, Method]],
    models: ModelSet,
    started: _Start,
    progress: bool,
) -> None:
    """The run proper, on loaded models: checks, cost curves, warm-up, the start written, then every missing
    (question, method)."""
    needing = [m.text for m in methods if m.kind.needs == "draft"]
    if models.loaded_by is None and models.draft is None and needing:
        raise ValueError(f"{needing[0]} needs a draft model (--draft)")
    runner = MethodRunner.for_models(models)
    run_question = _QuestionRunner(runner, models.tokenizer, config, stop_token_ids(models.tokenizer, models.target))
    for question in questions:  # fail on a bad prompt (template, context) before any long run
        run_question.encode(question, 0, [])

    warm_prompt = run_question.encode(questions[0], 0, [])
    started.environment.update(_cost_curves(methods, models, warm_prompt))  # stored with the results; shared
    for method in methods:  # warm-up: allocator, kernels, caches, a kind's server; not recorded
        runner.run(method, warm_prompt, max_new_tokens=4, stop_tokens=run_question.stops, seed=config.seed)
    started.write()

    total = len(questions) * len(methods)
    bar = tqdm(total=total, initial=total - len(todo), desc="bench", unit="gen", disable=not progress)
    for question, method in todo:
        baseline = registry.baseline_of(method)
        reference = None if baseline == method.text else _reference_turns(log.get(baseline, question.question_id))
        bar.set_postfix_str(f"{question.group}/{question.question_id} {method.text}")
        log.append(run_question(question, method, reference))
        bar.update()
    bar.close()
