"""Answer files in the Spec-Bench / EAGLE ``model_answer`` format, from stored records.

One JSONL per method, one line per question::

    {"question_id", "category", "answer_id", "model_id",
     "choices": [{"index": 0, "turns": [text, ...], "new_tokens": [...],
                  "wall_time": [...], "decoding_steps": [...], "accept_lengths": [...]}]}

which Spec-Bench's ``evaluation/speed.py`` and EAGLE's speed scripts read
(``new_tokens``, ``wall_time``, ``accept_lengths``, ``decoding_steps``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["answer_record", "write_answer_files"]


def answer_record(record: dict, model_id: str, decode=None) -> dict:
    """One record as a Spec-Bench answer line; ``decode(tokens) -> str`` fills the text turns."""
    turn_tokens = record.get("turn_tokens") or [record["tokens"]]
    turns = [decode(tokens) if decode else "" for tokens in turn_tokens]
    return {
        "question_id": record["question_id"],
        "category": record["category"],
        "answer_id": f"{record['method']}/{record['question_id']}",
        "model_id": model_id,
        "choices": [
            {
                "index": 0,
                "turns": turns,
                "new_tokens": [len(tokens) for tokens in turn_tokens],
                "wall_time": record.get("turn_wall_times") or [record["wall_time"]],
                "decoding_steps": record.get("turn_decoding_steps") or [record["decoding_steps"]],
                "accept_lengths": record["accept_lengths"],
            }
        ],
    }


def _file_name(method: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", method) + ".jsonl"


def write_answer_files(records: list[dict], out_dir: Path, model_id: str, decode=None) -> list[Path]:
    """Write ``out_dir/<method>.jsonl`` for every method in ``records``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_method: dict[str, list[dict]] = {}
    for record in records:
        by_method.setdefault(record["method"], []).append(record)
    paths = []
    for method, rows in by_method.items():
        path = out_dir / _file_name(method)
        with path.open("w") as handle:
            for record in rows:
                handle.write(json.dumps(answer_record(record, f"{model_id}/{method}", decode)) + "\n")
        paths.append(path)
    return paths
