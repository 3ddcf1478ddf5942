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

__all__ = ["ResultLog", "ResultWriteError", "read_records", "turn_tokens", "unique_records"]


class ResultWriteError(OSError):
    """A record could not be written (disk full, read-only directory); the records before it are intact."""


def read_records(path: Path | str) -> list[dict]:
    """Every complete record of a results file (a torn last line is ignored), repeats included."""
    path = Path(path)
    return list(_complete_lines(path))[0] if path.exists() else []


def turn_tokens(record: dict) -> list[list[int]]:
    """A record's new tokens per turn (records from before multi-turn runs hold one list, ``tokens``)."""
    return record.get("turn_tokens") or [record["tokens"]]


def unique_records(records: list[dict]) -> tuple[list[dict], int]:
    """(the first record of each (method, question), how many repeats were dropped).

    A results file written by two runs at once (before the run-directory
    lock) holds some generations twice; averaging both would weigh those
    questions double. Lines that are not per-question records pass through.
    """
    seen: set[tuple[str, str]] = set()
    kept = []
    for record in records:
        key = (record.get("method"), record.get("question_id"))
        if None not in key:
            if key in seen:
                continue
            seen.add(key)
        kept.append(record)
    return kept, len(records) - len(kept)


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
        self.records, self.duplicates = unique_records(self.records)
        self.done = {(r["method"], r["question_id"]) for r in self.records}

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self.done

    def get(self, method: str, question_id: str) -> dict | None:
        for record in self.records:
            if record["method"] == method and record["question_id"] == question_id:
                return record
        return None

    def append(self, record: dict) -> None:
        """Write one record durably, or raise ``ResultWriteError`` with the file as it was before."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        size = self.path.stat().st_size if self.path.exists() else 0
        try:
            with open(self.path, "ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            _cut_back(self.path, size)
            raise ResultWriteError(
                f"cannot write a result to {self.path} ({error.strerror or error}); the {len(self.records)} records "
                "before it are kept; free space or fix permissions, then rerun the same command to resume"
            ) from error
        self.records.append(record)
        self.done.add((record["method"], record["question_id"]))

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records)


def _cut_back(path: Path, size: int) -> None:
    """Best effort: remove a partly written line (if it stays, the next open cuts it as a torn tail)."""
    try:
        if path.is_file() and path.stat().st_size > size:
            with open(path, "r+b") as handle:
                handle.truncate(size)
    except OSError:
        pass
