"""Which machine produced a number: CPU model and the ISA flags that change matmul speed, threads, GPU.

The same commands gave SVIP 0.82x on one 2-core machine and 1.22x on another
of the same kind, because the CPUs differ. Every run stores this beside its
results, ``svip report`` prints it, and a report over runs from different
machines says so.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

from svip.runtime import cpu_fields

__all__ = [
    "RELEVANT_FLAGS",
    "CpuWatch",
    "curve_warnings",
    "describe",
    "describe_curve",
    "machine_info",
    "same_machine",
]

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


def machine_info() -> dict:
    """CPU model (name, family/model/stepping), cores, relevant ISA flags, torch threads, GPU names."""
    import torch

    cpu = cpu_fields()
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
    """One line: the target step, verify(k)/step and the draft's step/target step; a second with its servers' checks."""
    verify = " ".join(f"{k}:{v:.2f}" for k, v in curve.get("verify_over_step", {}).items())
    draft = f"; draft step/target step {curve['draft_over_step']:.2f}" if "draft_over_step" in curve else ""
    for gguf, ratio in (curve.get("draft_over_step_by_gguf") or {}).items():
        draft += f", {gguf} draft {ratio:.2f}"
    text = f"{label}: target step {1000 * curve['target_step_s']:.1f} ms; verify(k)/step {verify}{draft}"
    if servers := curve.get("servers"):
        text += "\nits servers, ms a token with nothing drafted / the curve's: " + "; ".join(
            map(_describe_server, servers)
        )
    return text


def _describe_server(server: dict) -> str:
    """``target-only 66.1/66.4``, and every start's ms when a slow one was started again."""
    text = f"{server['server']} {server['token_ms'][-1]:.1f}/{server['expected_ms']:.1f}"
    if len(server["token_ms"]) > 1:
        text += f" (started {len(server['token_ms'])} times: {', '.join(f'{ms:.1f}' for ms in server['token_ms'])})"
    return text


# Above these a cost curve is not the machine's: other processes took CPU while it was measured, or its repeats disagree.
OTHERS_CPU_LIMIT = 0.15
SPREAD_LIMIT = 0.25


def _busy_cpu_seconds() -> tuple[float, int] | None:
    """(CPU seconds all processes have been busy since boot, CPUs counted), from /proc/stat."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    fields = [int(v) for v in lines[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    cpus = sum(1 for line in lines[1:] if line.startswith("cpu"))
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"), max(1, cpus)


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and its children, reaped (llama-bench) or running (a kind's llama-server)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + _running_children_cpu_seconds()


def _running_children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's children still running (Linux /proc; elsewhere 0)."""
    me, total = os.getpid(), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()  # after the command name, which may hold spaces
        except OSError:
            continue  # gone meanwhile
        if len(fields) > 12 and int(fields[1]) == me:  # fields: state, ppid, ... utime (12th), stime (13th)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK") if total else 0.0


class CpuWatch:
    """``with CpuWatch() as watch:`` -- the share of all CPUs other processes used during the block.

    Measured, not guessed from the load average: busy CPU time of the whole
    machine (/proc/stat) minus this process's own (and its finished
    children's), over wall time x CPUs. A cost curve measured beside a build
    reads 0.5 here; on an idle machine it reads a few hundredths.
    """

    others_cpu: float | None = None

    def __enter__(self) -> CpuWatch:
        self._start = (time.monotonic(), _busy_cpu_seconds(), _own_cpu_seconds())
        return self

    def __exit__(self, *exc) -> None:
        start, busy, own = self._start
        now = _busy_cpu_seconds()
        elapsed = time.monotonic() - start
        if busy is None or now is None or elapsed <= 0:
            return
        others = (now[0] - busy[0]) - (_own_cpu_seconds() - own)
        self.others_cpu = max(0.0, others / (elapsed * now[1]))

    def annotate(self, curve: dict) -> dict:
        """The curve with what the machine was doing meanwhile (``others_cpu``, ``loadavg``)."""
        extra: dict = {"loadavg": list(os.getloadavg())}
        if self.others_cpu is not None:
            extra["others_cpu"] = round(self.others_cpu, 3)
        return {**curve, **extra}


def curve_warnings(curve: dict | None, label: str = "cost curve") -> list[str]:
    """Why a stored curve (and every time of its run) should not be trusted; empty when it looks sane."""
    if not curve:
        return []
    found = []
    if (others := curve.get("others_cpu")) is not None and others > OTHERS_CPU_LIMIT:
        found.append(
            f"other processes used {others:.0%} of the CPUs while the {label} was measured "
            f"(load average {curve.get('loadavg', ['?'])[0]}): this run's times are unreliable"
        )
    if (spread := curve.get("spread")) is not None and spread > SPREAD_LIMIT:
        found.append(
            f"repeats of one forward differed by {spread:.0%} while the {label} was measured "
            f"(sane: under {SPREAD_LIMIT:.0%}): this run's times are unreliable"
        )
    for server in curve.get("servers") or []:
        if server.get("slow"):
            found.append(
                f"llama-server {server['server']} decoded {server['ratio']:.2f}x slower than the {label} predicts, "
                f"after {len(server['token_ms'])} starts: its methods' times are unreliable"
            )
    return found
