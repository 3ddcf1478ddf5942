"""Which machine produced a number: CPU model and the ISA flags that change matmul speed, threads, GPU.

The same commands gave SVIP 0.82x on one 2-core machine and 1.22x on another
of the same kind, because the CPUs differ. Every run stores this beside its
results, ``svip report`` prints it, and a report over runs from different
machines says so.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["RELEVANT_FLAGS", "describe", "describe_curve", "machine_info", "same_machine"]

RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def _cpuinfo() -> dict[str, str]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return {}
    fields: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # the first processor is enough
            continue
        fields.setdefault(key.strip(), value.strip())
    return fields


def machine_info() -> dict:
    """CPU model (name, family/model/stepping), cores, relevant ISA flags, torch threads, GPU names."""
    import torch

    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "cpu": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu_id": "/".join(cpu.get(k, "?") for k in ("cpu family", "model", "stepping")),
        "cores": os.cpu_count(),
        "isa": [flag for flag in RELEVANT_FLAGS if flag in flags],
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
    }


def same_machine(a: dict | None, b: dict | None) -> bool:
    """Equal in everything that changes speed (None: unknown, never equal)."""
    keys = ("cpu", "cpu_id", "cores", "isa", "torch_threads", "gpus")
    return bool(a and b) and all(a.get(k) == b.get(k) for k in keys)


def describe(machine: dict | None, curve: dict | None = None) -> str:
    if not machine:
        return "machine: not recorded (a run from before machine records)"
    text = (f"machine: {machine.get('cpu')} ({machine.get('cpu_id')}), {machine.get('cores')} cores, "
            f"{machine.get('torch_threads')} torch threads, ISA {' '.join(machine.get('isa') or []) or '-'}"
            + (f", GPU {', '.join(machine['gpus'])}" if machine.get("gpus") else ""))  # fmt: skip
    if curve:
        text += "\n" + describe_curve(curve)
    return text


def describe_curve(curve: dict, label: str = "cost curve") -> str:
    """One line: the target step, verify(k)/step and the draft's step/target step."""
    verify = " ".join(f"{k}:{v:.2f}" for k, v in curve.get("verify_over_step", {}).items())
    draft = f"; draft step/target step {curve['draft_over_step']:.2f}" if "draft_over_step" in curve else ""
    return f"{label}: target step {1000 * curve['target_step_s']:.1f} ms; verify(k)/step {verify}{draft}"
