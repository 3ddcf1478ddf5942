"""``svip calibrate``: measure a model pair's cost curve on this machine and keep it.

A curve is stored per machine (CPU model + the ISA flags that change matmul
speed + torch threads, or the GPU names) and per model pair/dtype, under
``$SVIP_HOME/costs/`` (or where ``--out`` says). ``svip simulate`` reads it; every bench run measures
its own curve at start (absolute seconds are never carried across sessions)
and stores it with its results.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from pathlib import Path

from svip.runtime import cache_root

from .machine import machine_info

__all__ = ["curve_from_records", "curve_path", "load_curve", "store_curve"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "model"


def machine_key(machine: dict) -> str:
    """A short stable name for what changes speed on this machine."""
    fields = [machine.get(k) for k in ("cpu", "cpu_id", "cores", "isa", "torch_threads", "gpus")]
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    return f"{_slug(str(machine.get('cpu')))}-{machine.get('torch_threads')}t-{digest}"


def curve_path(
    target: str, draft: str | None, dtype: str, machine: dict | None = None, kernels: str = "default"
) -> Path:
    machine = machine or machine_info()
    pair = f"{_slug(target)}__{_slug(draft or 'none')}__{dtype}" + ("" if kernels == "default" else f"__{kernels}")
    return cache_root() / "costs" / machine_key(machine) / f"{pair}.json"


def store_curve(
    curve: dict, target: str, draft: str | None, dtype: str, path: Path | None = None, kernels: str = "default"
) -> Path:
    """Write the curve with its machine and models (``path``: else the per-machine, per-pair cache file)."""
    machine = machine_info()
    path = Path(path) if path is not None else curve_path(target, draft, dtype, machine, kernels)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"target": target, "draft": draft, "dtype": dtype, "kernels": kernels, "machine": machine, "cost_curve": curve}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def curve_from_records(records: list[dict]) -> dict | None:
    """The curve a run actually paid, from its per-round times (None: a run from before they were stored).

    Means (speedups are ratios of total times, so slow outliers count) over
    rounds that are not a question's first (the prefill):
    target-only steps give the step, rounds of k drafts give verify(k+1), and
    draft seconds per draft forward give the draft step -- overheads of the
    loop included, which a bare forward timing leaves out.
    """
    steps, verify, draft = [], {}, []
    for record in records:
        if "verify_times" not in record:
            return None
        forwards = record.get("draft_forwards") or record["drafted"]
        for index, (drafted, seconds) in enumerate(zip(record["drafted"], record["verify_times"])):
            if index == 0:
                continue
            if record["method"] == "target-only":
                steps.append(seconds)
            elif drafted:
                verify.setdefault(drafted + 1, []).append(seconds)
                if forwards[index]:
                    draft.append(record["draft_times"][index] / forwards[index])
    if not steps:
        return None
    step = statistics.fmean(steps)
    curve = {"target_step_s": step, "source": "rounds of the run"}
    curve["verify_over_step"] = {str(n): statistics.fmean(v) / step for n, v in sorted(verify.items()) if len(v) >= 3}
    if draft:
        curve["draft_over_step"] = statistics.fmean(draft) / step
    return curve


def load_curve(path_or_pair: str | Path) -> dict:
    """A stored curve: a calibrate file, a trace file's header, or a run directory (what its rounds paid)."""
    path = Path(path_or_pair)
    if path.is_dir():
        from .records import read_records

        results = path / "results.jsonl"
        curve = curve_from_records(read_records(results)) if results.exists() else None
        if curve:
            return curve
        path = path / "environment.json"
    if not path.exists():
        raise ValueError(f"no cost curve at {path}; measure one with: svip calibrate --target ... --draft ...")
    text = path.read_text()
    record = json.loads(text.splitlines()[0]) if path.suffix == ".jsonl" else json.loads(text)
    curve = record.get("cost_curve")
    if not curve:
        raise ValueError(f"{path} holds no cost_curve")
    return curve
