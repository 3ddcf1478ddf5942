"""Question sets: FastChat-style ``turns`` files and the SVIP repo's flat ``prompt`` files.

Shipped copies live in ``eval/data`` (sources and licenses in its README);
any file of either format works, e.g. an Alpaca set a user brings:

- FastChat / Spec-Bench / EAGLE: ``{"question_id", "category", "turns": [...]}``
- SVIP repo ``spec-bench.jsonl``: ``{"question_id", "category", "prompt"}`` (raw text, no chat template)
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DATA_DIR",
    "BUILTIN_SETS",
    "COMPOSITE_SETS",
    "EAGLE_SETS",
    "Question",
    "DatasetError",
    "load_questions",
    "per_category",
    "resolve_question_file",
]

DATA_DIR = Path(__file__).resolve().parent / "data"

BUILTIN_SETS = {
    "spec-bench": DATA_DIR / "spec_bench" / "question.jsonl",
    "svip-spec-bench": DATA_DIR / "svip_specbench" / "spec-bench.jsonl",
    "heldout": DATA_DIR / "heldout" / "question.jsonl",  # never trained or tuned on: data/README.md
    **{
        f"eagle-{name}": DATA_DIR / "eagle_bench" / name / "question.jsonl"
        for name in ("mt_bench", "gsm8k", "humaneval", "qa", "sum")
    },
}

# EAGLE's question sets shipped here, as one run with one column each: the paper's Table 4 columns except
# Alpaca, whose question file is not among the shipped copies (eval/data/README.md). set -> reporting group.
EAGLE_SETS = {"mt_bench": "mt-bench", "humaneval": "h-eval", "gsm8k": "gsm8k", "sum": "cnn/dm", "qa": "qa"}
COMPOSITE_SETS = {"eagle": tuple(f"eagle-{name}" for name in EAGLE_SETS)}

# GliDe/CaPE's evaluation prompts (the paper's Table 3 columns), read from the upstream checkout
# (make glide-setup): upstream has no license, so they are not shipped. file -> reporting group.
GLIDE_SETS = {
    "mt_bench_test.jsonl": "mt-bench",
    "code_search_net_test.json": "code",
    "gbharti_finance-alpaca_eval.json": "finance",
    "gsm8k_test.json": "gsm",
    "spider_validation.json": "spider",
}

MT_BENCH_CATEGORIES = frozenset(
    {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"}
)
MT_BENCH_GROUP = "mt-bench"


class DatasetError(ValueError):
    """A question file that is missing, empty or not in a known format."""


@dataclass(frozen=True)
class Question:
    question_id: str
    category: str  # as in the file
    group: str  # the reporting column (the 8 MT-Bench categories share "mt-bench")
    turns: tuple[str, ...]
    raw: bool  # True for flat prompt files: encode without a chat template


def resolve_question_file(name_or_path: str) -> Path:
    """A built-in set name (``spec-bench``, ``eagle-gsm8k`` ...) or a path."""
    path = BUILTIN_SETS.get(name_or_path, Path(name_or_path))
    if not path.is_file():
        raise DatasetError(
            f"no question file {name_or_path!r}; built-in sets: {', '.join([*BUILTIN_SETS, *COMPOSITE_SETS, 'glide'])}"
        )
    return path


def _parse(line: str, number: int, path: Path) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}:{number}: not valid JSON ({error.msg})") from None
    if not isinstance(record, dict) or "question_id" not in record:
        raise DatasetError(f"{path}:{number}: expected an object with a question_id")
    if "turns" not in record and "prompt" not in record:
        raise DatasetError(f"{path}:{number}: expected 'turns' (FastChat format) or 'prompt' (SVIP format)")
    return record


def glide_data_dir() -> Path:
    """Where the GliDe checkout keeps its prompts (``third_party/GliDe/inference/cape/raw_data``)."""
    from svip.adapters.glide.upstream import GLIDE_DIR

    return GLIDE_DIR / "inference" / "cape" / "raw_data"


def _glide_questions() -> list[Question]:
    directory = glide_data_dir()
    if not directory.is_dir():
        raise DatasetError(
            f"the glide question set is read from the GliDe checkout ({directory}), which is missing: "
            "make glide-setup [GLIDE_REPO=<local clone>]"
        )
    return [
        Question(f"{group}/{q.question_id}", q.category, group, q.turns, q.raw)
        for name, group in GLIDE_SETS.items()
        for q in load_questions(str(directory / name))
    ]


def _conversation_records(path: Path) -> list[dict]:
    """A JSON array of ``{"id", "conversation": [{"role", "content"}, ...]}`` (GliDe's raw_data): the user turns."""
    try:
        items = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not valid JSON ({error.msg})") from None
    records = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or "conversation" not in item:
            raise DatasetError(f"{path}: item {number}: expected an object with a 'conversation' list")
        turns = [t.get("content") for t in item["conversation"] if isinstance(t, dict) and t.get("role") == "user"]
        records.append({"question_id": item.get("id", number), "category": path.stem, "turns": turns})
    return records


def load_questions(name_or_path: str) -> list[Question]:
    """All questions of a file, in file order; ``eagle`` = EAGLE's five sets, ``glide`` = GliDe's five, one group each.

    Formats: FastChat/Spec-Bench jsonl (``turns``), the SVIP repo's jsonl
    (``prompt``), and a JSON array of conversations (GliDe's ``raw_data``).
    """
    if name_or_path == "glide":
        return _glide_questions()
    if name_or_path in COMPOSITE_SETS:
        return [
            Question(
                f"{part[len('eagle-') :]}/{q.question_id}",
                q.category,
                EAGLE_SETS[part[len("eagle-") :]],
                q.turns,
                q.raw,
            )
            for part in COMPOSITE_SETS[name_or_path]
            for q in load_questions(part)
        ]
    path = resolve_question_file(name_or_path)
    if path.read_text().lstrip().startswith("["):
        records = _conversation_records(path)
    else:
        records = [_parse(line, i, path) for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    if not records:
        raise DatasetError(f"{path}: no questions")
    categories = {str(r.get("category", "default")) for r in records}
    group_mt_bench = len(categories & MT_BENCH_CATEGORIES) >= 2
    questions = []
    for record in records:
        category = str(record.get("category", "default"))
        group = MT_BENCH_GROUP if group_mt_bench and category in MT_BENCH_CATEGORIES else category
        raw = "turns" not in record
        turns = (record["prompt"],) if raw else tuple(record["turns"])
        if not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise DatasetError(f"{path}: question {record['question_id']} has an empty turn")
        questions.append(Question(str(record["question_id"]), category, group, turns, raw))
    return questions


def per_category(questions: list[Question], count: int | None, *, shortest: bool = False) -> list[Question]:
    """The first ``count`` questions of every group, groups in first-seen order.

    ``shortest`` takes the ``count`` shortest first turns instead (cheap
    prefills for CPU-sized checks; say so when reporting).
    """
    if count is None:
        return list(questions)
    if count < 1:
        raise DatasetError(f"per-category count must be >= 1, got {count}")
    groups: OrderedDict[str, list[Question]] = OrderedDict()
    for question in questions:
        groups.setdefault(question.group, []).append(question)
    if shortest:
        groups = OrderedDict(
            (group, sorted(members, key=lambda q: len(q.turns[0]))) for group, members in groups.items()
        )
    return [q for members in groups.values() for q in members[:count]]
