"""Append-only JSONL results that survive Ctrl-C and crashes.

One line per finished (method, question). Each line is written, flushed and
fsynced before the next generation starts, so an interrupted run loses only
the generation in flight. On reopening, a torn last line (a crash mid-write)
is detected and cut off, and the finished keys are skipped.

Method names are read in today's spelling (``hf-svip:...`` from an older
version reads as ``hf+svip:...``), so old runs resume and report as new ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

__all__ = ["ResultLog", "read_records"]


def read_records(path: Path | str) -> list[dict]:
    """Every complete record of a results file (a torn last line is ignored)."""
    path = Path(path)
    return list(_complete_lines(path))[0] if path.exists() else []


def _complete_lines(path: Path) -> tuple[list[dict], int]:
    """(records, byte length of the valid prefix); method names respelled."""
    from .methods import record_method

    spelled: dict[str, str] = {}
    records, valid = [], 0
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                break
            if record.get("method") is not None:
                name = record["method"]
                record["method"] = spelled.setdefault(name, record_method(name))
            records.append(record)
            valid += len(raw)
    return records, valid


class ResultLog:
    """``results.jsonl`` of one run directory, keyed by (method, question_id)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict] = []
        self.repaired = 0  # bytes cut from a torn tail
        if path.exists():
            self.records, valid = _complete_lines(path)
            size = path.stat().st_size
            if valid < size:
                self.repaired = size - valid
                with open(path, "r+b") as handle:
                    handle.truncate(valid)
        self.done = {(r["method"], r["question_id"]) for r in self.records}

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self.done

    def get(self, method: str, question_id: str) -> dict | None:
        for record in self.records:
            if record["method"] == method and record["question_id"] == question_id:
                return record
        return None

    def append(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.records.append(record)
        self.done.add((record["method"], record["question_id"]))

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records)
