"""The ``svip`` command: generate, check losslessness, compare baselines, manage models."""

from __future__ import annotations

import argparse
import json
import sys

from svip.grammar import MethodSpecError
from svip.kernels import KERNELS
from svip.spec import PolicySpecError, policy_help

DEFAULT_MODEL = "smollm2-135m"


def _add_model_args(parser: argparse.ArgumentParser, *, draft: bool = True) -> None:
    group = parser.add_argument_group("models and placement")
    group.add_argument(
        "--target",
        default=DEFAULT_MODEL,
        help="zoo name, local path or HF id (default: %(default)s, bundled, offline)",
    )
    if draft:
        group.add_argument("--draft", default=None, help="draft model (zoo name, path or HF id); omit for target-only")
        group.add_argument(
            "--draft-layers", type=int, default=None, help="keep only the draft's first N layers (a cheap self-draft)"
        )
    group.add_argument("--device", default="cpu", help="torch device for single-device loading (default: %(default)s)")
    group.add_argument(
        "--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="weights dtype (default: %(default)s)"
    )
    group.add_argument(
        "--kernels",
        default="default",
        choices=KERNELS,
        help="matmul kernels of the linear layers: torch's default (MKL) or oneDNN with weights packed at load "
        "(fp32 on the CPU; on CPUs where MKL repacks weights per call, verifying k tokens gets much cheaper: "
        "check with `svip calibrate`) (default: %(default)s)",
    )
    group.add_argument(
        "--memory-first-gpu",
        type=float,
        default=None,
        metavar="GIB",
        help="target: GiB allowed on GPU 0 (accelerate device map)",
    )
    group.add_argument(
        "--memory-per-gpu", type=float, default=None, metavar="GIB", help="target: GiB allowed on each other GPU"
    )
    _add_kind_options(parser)


def _add_kind_options(parser: argparse.ArgumentParser) -> None:
    """One flag per option a registered kind declares (``--eagle-head``, ``--glide-draft``, ...), with its help."""
    from svip.adapters.registry import options

    found = options()
    if not found:
        return
    group = parser.add_argument_group("what the methods' kinds need")
    for option in found.values():
        group.add_argument(
            option.flag, dest=option.name, default=option.default, metavar=option.metavar, help=option.help
        )


def _options(args) -> dict[str, str | None]:
    """The kinds' options as given on the command line (``ModelRequest.options``, ``BenchConfig.options``)."""
    from svip.adapters.registry import options

    return {name: getattr(args, name, option.default) for name, option in options().items()}


def _add_prompt_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("prompt format")
    group.add_argument(
        "--raw", action="store_true", help="encode prompts as plain text, no chat template (the paper's vanilla runs)"
    )
    group.add_argument(
        "--template",
        default=None,
        metavar="NAME",
        help="an fschat conversation template (vicuna_v1.1, llama-2, ...) instead of the tokenizer's own chat template",
    )


def _load_models(args, sampling=None, methods=()):
    """The ``ModelSet`` for a command (the one loading path: every placement flag reaches the loader).

    ``methods``: what the models are for (a kind among them may bring its own); close the set when done.
    """
    from svip.eval.loading import ModelRequest, load_models

    return load_models(ModelRequest.of(args, options=_options(args), methods=tuple(methods)), sampling)


def _method(value: str) -> list:
    """A method string of any kind (or a grid of them), parsed once, before any model loads."""
    from svip.adapters.registry import expand

    try:
        return expand([value])
    except (PolicySpecError, MethodSpecError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _methods(args) -> list:
    """The command's methods, parsed (given ones were parsed by argparse; the default list is parsed here)."""
    from svip.adapters.registry import expand

    return expand(args.methods)


def _without_draft(methods, args, command: str) -> None:
    """Refuse methods of the run's draft model when there is none (before loading anything)."""
    needing = [m.text for m in methods if m.kind.needs == "draft"]
    if needing and not args.draft:
        raise ValueError(f"{command}: {needing[0]} needs a --draft model")


def _methods_help(default) -> str:
    from svip.adapters.registry import kinds

    lines = "; ".join(kind.help for kind in kinds().values() if kind.help)
    return (
        f"method strings (default: {' '.join(default)}). Kinds: {lines}. "
        "A grid such as 'svip:h=0.2|0.3,gamma=0.1|0.15' expands to every combination. "
        f"Policies: {policy_help()}"
    )


def cmd_generate(args) -> int:
    from svip.adapters import registry
    from svip.sampling import SamplingConfig

    sampling = SamplingConfig(args.temperature, args.top_p)
    # without --draft and --methods, generate decodes target-only
    methods = _methods(args) if args.draft or args.methods_given else [registry.parse(registry.TARGET_ONLY)]
    _without_draft(methods, args, "generate (without --draft it decodes target-only)")
    registry.check_run(methods, _options(args))
    if sampling.temperature > 0 and any(m.policy_name == "oracle" for m in methods):
        raise ValueError("the oracle policy is defined for greedy decoding only (--temperature 0)")
    with _load_models(args, sampling, methods) as models:
        _generate(args, models, methods)
    return 0


def _generate(args, models, methods) -> None:
    from svip.adapters import registry
    from svip.eval.methods import MethodRunner
    from svip.eval.prompts import encode_prompt, stop_token_ids

    runner = MethodRunner.for_models(models)
    prompt = encode_prompt(models.tokenizer, args.prompt, chat=not args.raw, template=args.template)
    stops = stop_token_ids(models.tokenizer, models.target)
    references: dict[str, list[int]] = {}
    for method in methods:
        reference = None
        if method.policy_name == "oracle":  # the oracle needs its baseline's own greedy output first
            baseline = registry.baseline_of(method)
            if baseline not in references:
                references[baseline] = runner.run(
                    baseline, prompt, max_new_tokens=args.max_new_tokens, stop_tokens=stops, seed=None
                ).tokens
            reference = references[baseline]
        result = runner.run(
            method, prompt, max_new_tokens=args.max_new_tokens, stop_tokens=stops, seed=args.seed, reference=reference
        )
        if args.json:
            print(json.dumps(result.to_dict()))
            continue
        print(models.tokenizer.decode(result.tokens, skip_special_tokens=True))
        print(
            f"\n--- {result.method}: {len(result.tokens)} tokens in {result.wall_time:.2f}s "
            f"({len(result.tokens) / result.wall_time:.1f} tok/s), {len(result.rounds)} target forwards, stopped by {result.stopped_by}"
        )
        if result.drafted:
            print(
                f"    drafted {result.drafted}, accepted {result.accepted} ({result.acceptance_rate:.1%}), "
                f"{result.mean_accepted_length:.2f} tokens per round; draft {result.draft_time:.2f}s, verify {result.verify_time:.2f}s"
            )
            if args.rounds:
                for i, r in enumerate(result.rounds):
                    entropies = " ".join(f"{h:.2f}" for h in r.entropies)
                    print(
                        f"    round {i:3d}: drafted {r.drafted:2d} accepted {r.accepted:2d} emitted {r.emitted:2d}  H=[{entropies}]"
                    )


def cmd_check_lossless(args) -> int:
    from svip.adapters import registry
    from svip.eval.datasets import load_questions, per_category
    from svip.eval.lossless import check_greedy_lossless, format_report
    from svip.eval.methods import MethodRunner
    from svip.eval.prompts import encode_prompt, stop_token_ids

    methods = _methods(args)
    _without_draft(methods, args, "check-lossless")
    registry.check_run(methods, _options(args))
    questions = per_category(load_questions(args.questions), args.per_category, shortest=args.shortest)
    with _load_models(args, None, methods) as models:
        tokenizer = models.tokenizer
        prompts = [
            (
                f"{q.group}/{q.question_id}",
                encode_prompt(tokenizer, q.turns[0], chat=not (q.raw or args.raw), template=args.template),
            )
            for q in questions
        ]
        rows = check_greedy_lossless(
            MethodRunner.for_models(models),
            prompts,
            methods,
            max_new_tokens=args.max_new_tokens,
            stop_tokens=stop_token_ids(tokenizer, models.target),
        )
    print(
        f"{len(prompts)} prompts ({args.questions}, {args.per_category} {'shortest ' if args.shortest else ''}per category), {args.max_new_tokens} new tokens, "
        f"{args.dtype}, target {args.target}, draft {args.draft}{f' (first {args.draft_layers} layers)' if args.draft_layers else ''}"
    )
    print(format_report(rows))
    exact = all(row.identical == row.prompts for row in rows)
    return 0 if exact or args.dtype != "fp32" else 1


def cmd_baseline(args) -> int:
    from svip.eval.baseline import compare_with_hf_generate
    from svip.eval.datasets import load_questions, per_category
    from svip.eval.prompts import encode_prompt

    with _load_models(args) as models:
        target, tokenizer = models.target, models.tokenizer
        questions = per_category(load_questions(args.questions), 1)
        prompts = [encode_prompt(tokenizer, q.turns[0], chat=not q.raw) for q in questions]
        result = compare_with_hf_generate(target, prompts, max_new_tokens=args.max_new_tokens, repeats=args.repeats)
    print(
        f"target-only: svip engine vs transformers generate(), {args.target} {args.dtype}, {len(prompts)} prompts x {args.repeats}, {args.max_new_tokens} tokens each"
    )
    print(f"  svip engine  median {sorted(result.ours_seconds)[len(result.ours_seconds) // 2]:.3f}s")
    print(f"  generate()   median {sorted(result.hf_seconds)[len(result.hf_seconds) // 2]:.3f}s")
    print(
        f"  median time ratio svip/generate = {result.median_ratio:.3f} (<1: ours faster); outputs identical: {result.outputs_identical}"
    )
    return 0


def cmd_bench(args) -> int:
    from pathlib import Path

    from svip.eval.records import read_records, unique_records
    from svip.eval.runner import BenchConfig, run_bench
    from svip.eval.tables import draft_table, speedup_table

    config = BenchConfig(
        target=args.target,
        draft=args.draft,
        draft_layers=args.draft_layers,
        dtype=args.dtype,
        device=args.device,
        kernels=args.kernels,
        memory_first_gpu=args.memory_first_gpu,
        memory_per_gpu=args.memory_per_gpu,
        questions=args.questions,
        per_category=args.per_category,
        shortest=args.shortest,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        raw=args.raw,
        template=args.template,
        multi_turn=args.multi_turn,
        options=_options(args),
        methods=args.methods,
    )
    log = run_bench(config, Path(args.run_dir))
    records = unique_records(read_records(log.path))[0]
    print(
        f"\n{args.run_dir}: {len(records)} records; {config.target} / {config.draft or '-'} {config.dtype}, {config.max_new_tokens} new tokens, T={config.temperature}"
    )
    print(speedup_table(records))
    print()
    print(draft_table(records))
    return 0


def cmd_calibrate(args) -> int:
    from svip.adapters.vanilla.costs import measure_cost_curve
    from svip.eval.calibrate import store_curve
    from svip.eval.datasets import load_questions, per_category
    from svip.eval.machine import describe, machine_info
    from svip.eval.prompts import encode_prompt

    with _load_models(args) as models:
        question = per_category(load_questions(args.questions), 1, shortest=True)[0]
        prompt = encode_prompt(models.tokenizer, question.turns[0], chat=not args.raw, template=args.template)
        curve = measure_cost_curve(models.engine(), prompt, repeats=args.repeats)
    path = store_curve(curve, args.target, args.draft, args.dtype, args.out, kernels=args.kernels)
    print(describe(machine_info(), curve))
    print(f"stored: {path}")
    return 0


def cmd_trace(args) -> int:
    from pathlib import Path

    from svip.eval.datasets import load_questions, per_category
    from svip.eval.prompts import encode_prompt, stop_token_ids
    from svip.eval.records import read_records
    from svip.eval.trace import write_trace

    if not args.draft:
        raise ValueError("trace needs a --draft model")
    questions = per_category(load_questions(args.questions), args.per_category, shortest=args.shortest)
    reference = None
    if args.run:
        records = read_records(Path(args.run) / "results.jsonl")
        reference = {r["question_id"]: r["tokens"] for r in records if r["method"] == "target-only"}
    settings = {
        "target": args.target,
        "draft": args.draft,
        "draft_layers": args.draft_layers,
        "dtype": args.dtype,
        "questions": args.questions,
        "per_category": args.per_category,
        "shortest": args.shortest,
        "max_new_tokens": args.max_new_tokens,
        "raw": args.raw,
        "template": args.template,
    }

    with _load_models(args) as models:

        def encode(question):
            return encode_prompt(
                models.tokenizer, question.turns[0], chat=not (args.raw or question.raw), template=args.template
            )

        stops = stop_token_ids(models.tokenizer, models.target)
        path = write_trace(
            Path(args.out), models, questions, encode, settings, reference=reference, stops=stops, branch=args.branch
        )
    print(f"trace: {path}")
    return 0


def cmd_simulate(args) -> int:
    from pathlib import Path

    from svip.eval.calibrate import load_curve
    from svip.eval.machine import describe
    from svip.eval.simulate import parse_costs
    from svip.eval.simulate_report import simulate_report
    from svip.eval.trace import read_trace

    header, rows = read_trace(Path(args.trace))
    base = load_curve(args.curve) if args.curve else header["cost_curve"]
    costs = parse_costs(args.costs or "", base)
    print(
        f"trace: {args.trace}, {len(rows)} questions; {header['settings']['target']} / {header['settings']['draft']}"
    )
    print(describe(header.get("machine"), costs.curve).splitlines()[-1] + ("" if costs.prefill else "; no prefill"))
    print(simulate_report(header, rows, [m.text for m in _methods(args)], costs, run_dir=args.run))
    return 0


def _stored_run(run_dir: str) -> tuple[list[dict], dict]:
    """(records, config) of a run directory; no models are loaded."""
    from pathlib import Path

    from svip.eval.records import read_records, unique_records

    path = Path(run_dir) / "results.jsonl"
    records, dropped = unique_records(read_records(path))
    if not records:
        raise ValueError(f"no results in {path}")
    if dropped:
        print(f"WARNING: {path} holds {dropped} repeated (method, question) records (written by two runs at once?); "
              "the first of each is kept, the repeats are left out of every table")  # fmt: skip
    config_path = Path(run_dir) / "config.json"
    return records, (json.loads(config_path.read_text()) if config_path.exists() else {})


def _describe_run(config: dict) -> str:
    from svip.adapters.registry import kinds
    from svip.eval.runner import stored_options

    layers = f" (first {config['draft_layers']} layers)" if config.get("draft_layers") else ""
    kernels = f" ({config['kernels']} kernels)" if config.get("kernels", "default") != "default" else ""
    options = stored_options(config)
    # a kind whose options name the drafter (an EAGLE head: which tree drafts) says so; else the draft model
    named = (kind.describe_draft(options) for kind in kinds().values() if kind.describe_draft is not None)
    draft = next((label for label in named if label), None) or config.get("draft") or "-"
    return (
        f"{config.get('target')} / {draft}{layers} {config.get('dtype')}{kernels} on {config.get('device')}, "
        f"{config.get('questions')}, {config.get('max_new_tokens')} new tokens, T={config.get('temperature')}"
    )


def cmd_report(args) -> int:
    from pathlib import Path

    from svip.eval.ablation import ablation_table
    from svip.eval.machine import curve_warnings, describe, describe_curve, same_machine
    from svip.eval.paper import format_paper_table, load_paper_tables, matching_table
    from svip.eval.tables import (
        acceptance_by_entropy_table,
        alone_table,
        cost_table,
        cross_entropy_summary,
        draft_table,
        eagle_table,
        engine_table,
        glide_table,
        length_table,
        speedup_table,
        time_table,
    )

    run_dirs = [*args.run_dirs, *args.run_dir]
    if not run_dirs:
        raise ValueError("report needs a run directory (svip report RUN_DIR ... or --run-dir RUN_DIR)")
    runs = [(run_dir, *_stored_run(run_dir)) for run_dir in run_dirs]
    machines: list[tuple[str, dict | None]] = []
    violations = 0
    for run_dir, records, config in runs:
        if len(runs) > 1:
            print(f"==> {run_dir}")
        if config:
            print(_describe_run(config))
        environment_path = Path(run_dir) / "environment.json"
        env = json.loads(environment_path.read_text()) if environment_path.exists() else {}
        machines.append((run_dir, env.get("machine")))
        print(describe(env.get("machine"), env.get("cost_curve")))
        for warning in curve_warnings(env.get("cost_curve")):
            print(f"WARNING: {warning}")
        for kind, curve in (env.get("cost_curves") or {}).items():  # other engines' own curves (llama.cpp's)
            print(describe_curve(curve, f"{kind} cost curve ({curve.get('tool', 'measured')}, {curve.get('gguf', '')})"))
            for warning in curve_warnings(curve, f"{kind} cost curve"):
                print(f"WARNING: {warning}")
        starts = Path(run_dir) / "environments.jsonl"
        if starts.exists():
            seen = [json.loads(line).get("machine") for line in starts.read_text().splitlines() if line.strip()]
            if any(not same_machine(seen[0], other) for other in seen[1:]):
                print(
                    f"WARNING: this run was started or resumed on {len(seen)} different machine setups: its times mix machines"
                )
        if env:
            refit = "available" if env.get("hf_confidence_threshold_refit") else "unavailable (no scikit-learn)"
            print(
                f"torch {env.get('torch')}, transformers {env.get('transformers')}, {env.get('cpu_threads')} threads; "
                f"transformers' confidence re-fit (hf+confidence:...,refit=1): {refit}"
            )
        print(speedup_table(records))
        for table in (engine_table(records), alone_table(records)):
            if table:
                print()
                print(table)
        print()
        print(draft_table(records))
        violations += _token_match_notes(records, config, near_ties=args.near_ties)
        print()
        print(time_table(records))
        figure2 = acceptance_by_entropy_table(records)
        if figure2:
            print()
            print(figure2)
        cost = cost_table(records, draft_cost=args.draft_cost)
        if cost:
            print()
            print(cost)
        for layout in (eagle_table(records), glide_table(records)):
            if layout:
                print()
                print(layout)
        summary = cross_entropy_summary(records)
        if summary:
            print(summary)
        ablation = ablation_table(records)
        if not ablation.startswith("no policy family"):
            print()
            print(ablation)
        if args.plots:
            from svip.eval.plots import plot_all

            for png in plot_all(records, Path(run_dir) / "plots"):
                print(f"wrote {png}")
        if args.answers:
            from svip.eval.answers import write_answer_files
            from svip.eval.loading import load_tokenizer

            tokenizer = load_tokenizer(config["target"]) if config.get("target") else None
            decode = (lambda tokens: tokenizer.decode(tokens, skip_special_tokens=True)) if tokenizer else None
            for path in write_answer_files(records, Path(run_dir) / "answers", config.get("target", "model"), decode):
                print(f"wrote {path}")
        number = matching_table(config.get("questions", ""), config.get("temperature", 0.0)) if config else None
        if number is not None and not args.no_paper:
            print(f"\nfor comparison, the paper's Table {number}:")
            print(format_paper_table(load_paper_tables()[number]))
        print()
    if len(runs) > 1 and any(not same_machine(machines[0][1], m) for _, m in machines[1:]):
        print(
            "WARNING: these runs come from different (or unrecorded) machines; compare ratios within a run, not across:"
        )
        for run_dir, machine in machines:
            print(f"  {run_dir}: {describe(machine).splitlines()[0]}")
    if len(runs) > 1:
        lengths = [(config.get("max_new_tokens", 0), records) for _, records, config in runs]
        if len({length for length, _ in lengths}) == len(lengths):
            print(length_table(lengths))
    if violations:
        print(f"svip: error: {violations} greedy full-precision output(s) differ from their baseline: a bug", file=sys.stderr)
        return 1
    return 0


def _token_match_notes(records: list[dict], config: dict, *, near_ties: bool) -> int:
    """Under the token-match column: what it measures, each first divergence; the count of lossless violations."""
    from svip.eval.divergence import (
        explanation,
        first_divergences,
        format_divergences,
        lossless_violations,
        measure_gaps,
        precision_of,
    )

    found = first_divergences(records) if config else []
    if not found:
        return 0
    bugs = lossless_violations(found, config)
    rounding = [d for d in found if d not in bugs]
    if near_ties:
        measure_gaps(found, config)
    decode = _decoder(config)
    if bugs:
        print("LOSSLESS VIOLATION: greedy outputs in fp32 must equal their baseline's token for token; these differ:")
        print(format_divergences(bugs, decode))
    if rounding:
        print(explanation(precision_of(rounding[0].method, config)))
        print(format_divergences(rounding, decode))
        if not near_ties:
            print("  (svip report --near-ties measures the target's logit gap at each of them)")
    return len(bugs)


def _decoder(config: dict):
    try:
        from svip.eval.loading import load_tokenizer

        tokenizer = load_tokenizer(config["target"])
    except Exception:  # a report never fails on a missing tokenizer: it shows token ids instead
        return None
    return lambda tokens: tokenizer.decode(tokens)


def cmd_models(args) -> int:
    from svip.eval import models

    return models.main([args.action, *args.names])


class _Given(argparse.Action):
    """Store the parsed methods (a grid gives several) and note that the user gave them (generate's default is target-only)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string and option_string != "--methods":
            import warnings

            warnings.warn(f"{option_string} is deprecated; use --methods", FutureWarning, stacklevel=2)
        setattr(namespace, self.dest, [method for grid in values for method in grid])
        namespace.methods_given = True


def _add_methods_arg(parser: argparse.ArgumentParser, default, *, old: str | None = None, extra: str = "") -> None:
    """The one method flag of every command (``--policy``/``--policies`` of older versions are aliases)."""
    flags = ["--methods"] + ([old] if old else [])
    parser.add_argument(
        *flags,
        dest="methods",
        nargs="+",
        type=_method,
        default=list(default),
        action=_Given,
        metavar="METHOD",
        help=extra + _methods_help(default),
    )
    parser.set_defaults(methods_given=False)


def _add_question_args(parser: argparse.ArgumentParser, *, per_category: int, max_new_tokens: int) -> None:
    group = parser.add_argument_group("questions")
    group.add_argument(
        "--questions", default="spec-bench", help="built-in set or question file (default: %(default)s)"
    )
    group.add_argument(
        "--per-category", type=int, default=per_category, help="questions per category (default: %(default)s)"
    )
    group.add_argument(
        "--shortest", action="store_true", help="take the shortest questions of each category (cheap prefills on CPU)"
    )
    group.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help="default: %(default)s")


def build_parser() -> argparse.ArgumentParser:
    from svip.eval.methods import DEFAULT_METHODS

    parser = argparse.ArgumentParser(
        prog="svip", description="SVIP: entropy-based dynamic draft length for speculative decoding."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser(
        "generate",
        help="decode one prompt, target-only or speculative",
        description="Decode one prompt and print the text and round statistics.",
    )
    _add_model_args(gen)
    gen.add_argument("--prompt", required=True, help="user message (chat template applied unless --raw)")
    _add_prompt_args(gen)
    _add_methods_arg(
        gen,
        ["svip:h=0.3,gamma=0.15"],
        old="--policy",
        extra="generate decodes the prompt with each in turn; without --draft it decodes target-only. ",
    )
    gen.add_argument("--max-new-tokens", type=int, default=128)
    gen.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="0 = greedy (default); >0 samples with lossless rejection sampling",
    )
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--rounds", action="store_true", help="print every round (drafted, accepted, draft entropies)")
    gen.add_argument("--json", action="store_true", help="print the full result as JSON")
    gen.set_defaults(func=cmd_generate)

    chk = sub.add_parser(
        "check-lossless",
        help="greedy outputs of every policy vs target-only",
        description="Token-by-token comparison of speculative greedy output with target-only greedy output.",
    )
    _add_model_args(chk)
    _add_question_args(chk, per_category=4, max_new_tokens=32)
    _add_prompt_args(chk)
    _add_methods_arg(chk, DEFAULT_METHODS, old="--policies")
    chk.set_defaults(func=cmd_check_lossless)

    base = sub.add_parser("baseline", help="target-only speed: our loop vs transformers generate()")
    _add_model_args(base, draft=False)
    base.add_argument("--questions", default="spec-bench")
    base.add_argument("--max-new-tokens", type=int, default=64)
    base.add_argument("--repeats", type=int, default=2)
    base.set_defaults(func=cmd_baseline)

    bench = sub.add_parser(
        "bench",
        help="run methods side by side over a question set (resumable)",
        description="Interleaved side-by-side runs; results are appended to RUN_DIR/results.jsonl as they finish and a rerun resumes.",
    )
    _add_model_args(bench)
    bench.set_defaults(draft=DEFAULT_MODEL)
    bench.add_argument("--run-dir", required=True, help="where results.jsonl and config.json live")
    _add_methods_arg(bench, DEFAULT_METHODS, extra="target-only always runs. ")
    _add_question_args(bench, per_category=2, max_new_tokens=128)
    bench.add_argument("--temperature", type=float, default=0.0)
    bench.add_argument("--top-p", type=float, default=1.0)
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument(
        "--multi-turn",
        action="store_true",
        help="run every turn of multi-turn questions (MT-Bench: 2), each after the method's own answer",
    )
    _add_prompt_args(bench)
    bench.set_defaults(func=cmd_bench)

    report = sub.add_parser(
        "report",
        help="tables from stored runs (no models loaded)",
        description="Table 1 (speedup per category), Figure 5 numbers, Figure 3 numbers, ablation grids, and the paper's "
        "matching table, from RUN_DIR/results.jsonl alone. Several run directories that differ only in --max-new-tokens "
        "also give the Table 2/6 layout (speedup by generation length).",
    )
    report.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories (svip bench --run-dir)")
    report.add_argument(
        "--run-dir",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="a run directory, as bench spells it (repeatable)",
    )
    report.add_argument(
        "--plots", action="store_true", help="also write PNG plots to RUN_DIR/plots (needs matplotlib)"
    )
    report.add_argument(
        "--answers",
        action="store_true",
        help="also write Spec-Bench/EAGLE-style answer files to RUN_DIR/answers (loads the tokenizer)",
    )
    report.add_argument("--no-paper", action="store_true", help="do not print the paper's matching table")
    report.add_argument(
        "--near-ties",
        action="store_true",
        help="at each method's first divergence from its baseline, measure the target's logit gap between the two "
        "tokens (loads the target, in the run's precision and in fp32): near-ties in bf16, or a bug in fp32",
    )
    report.add_argument(
        "--draft-cost",
        type=float,
        default=None,
        metavar="C",
        help="CS Drafting cost table: cost of one draft forward in target forwards (default: measured in the run)",
    )
    report.set_defaults(func=cmd_report)

    cal = sub.add_parser(
        "calibrate",
        help="measure this machine's cost curve for a model pair and store it",
        description="Seconds of a target step, verify(n)/step and draft step/step on this machine, stored per machine "
        "and model pair under $SVIP_HOME/costs (svip simulate --curve reads it).",
    )
    _add_model_args(cal)
    cal.add_argument("--questions", default="spec-bench", help="the shortest question's prompt fills the KV cache")
    cal.add_argument(
        "--repeats", type=int, default=7, help="timings per size; the median is kept (default: %(default)s)"
    )
    cal.add_argument("--out", default=None, help="where to store it (default: $SVIP_HOME/costs/<machine>/<pair>.json)")
    _add_prompt_args(cal)
    cal.set_defaults(func=cmd_calibrate)

    tr = sub.add_parser(
        "trace",
        help="record the draft's top token, top-1 probability and entropy along the target's greedy output",
        description="Teacher-forced draft predictions at every position of the target's greedy output (plus rollouts "
        "past each mismatch), one JSON line per question, resumable; svip simulate replays policies over it.",
    )
    _add_model_args(tr)
    _add_question_args(tr, per_category=2, max_new_tokens=64)
    _add_prompt_args(tr)
    tr.add_argument("--out", required=True, help="trace file (JSON lines; appended, a rerun resumes)")
    tr.add_argument(
        "--run-dir",
        "--run",
        dest="run",
        default=None,
        metavar="RUN_DIR",
        help="reuse the target-only outputs of this bench run",
    )
    tr.add_argument(
        "--branch", type=int, default=8, help="draft tokens rolled out past a mismatch (default: %(default)s)"
    )
    tr.set_defaults(func=cmd_trace)

    sim = sub.add_parser(
        "simulate",
        help="replay policies over a trace under a cost curve (measured, stored or by hand)",
        description="Exact greedy replay of vanilla-loop policies over a trace: speedup per category, acceptance, "
        "tokens per round and the share of the oracle's gain. --run compares with a real run's measured speedups.",
    )
    sim.add_argument("trace", help="a file written by svip trace")
    _add_methods_arg(sim, ["constant:k=5", "svip", "svip-adaptive", "oracle"], extra="target-only always runs. ")
    sim.add_argument(
        "--curve", default=None, help="a calibrate file or a run directory (default: the trace's own curve)"
    )
    sim.add_argument(
        "--costs",
        default=None,
        metavar="SPEC",
        help="override parts of the curve: draft=0.1,verify=flat (GPU-like), verify=slope:0.05, verify=2:1.1/8:1.6, prefill=0",
    )
    sim.add_argument(
        "--run-dir",
        "--run",
        dest="run",
        default=None,
        metavar="RUN_DIR",
        help="print the run's measured speedups beside (same questions)",
    )
    sim.set_defaults(func=cmd_simulate)

    mod = sub.add_parser("models", help="list or prepare the offline model zoo")
    mod.add_argument("action", choices=["list", "prepare"])
    mod.add_argument("names", nargs="*")
    mod.set_defaults(func=cmd_models)
    return parser


def _stop_cleanly_on_sigterm() -> None:
    """``kill PID`` (SIGTERM) unwinds like Ctrl-C, so ``finally`` blocks stop a run's servers and engines."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> int:
    from svip.eval.datasets import DatasetError
    from svip.eval.loading import ModelLoadError
    from svip.eval.locks import DirectoryBusy, DirectoryNotWritable
    from svip.eval.models import ModelIntegrityError
    from svip.eval.prompts import PromptError
    from svip.eval.records import ResultWriteError
    from svip.eval.runner import RunDirError
    from svip.method import InputError

    args = build_parser().parse_args(argv)
    _stop_cleanly_on_sigterm()
    try:
        return args.func(args)
    except (
        InputError,
        ModelLoadError,
        ModelIntegrityError,
        PromptError,
        DatasetError,
        PolicySpecError,
        MethodSpecError,
        RunDirError,
        DirectoryBusy,
        DirectoryNotWritable,
        ResultWriteError,
        ValueError,
    ) as error:
        print(f"svip: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("svip: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `svip report ... | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
