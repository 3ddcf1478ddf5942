"""``make glide-svip``: Table 3 (GliDe, +SVIP, GliDe+CaPE, +SVIP) with upstream's own benchmark scripts.

The patched checkout (``make glide-setup``) is driven as its authors drove it
(``inference/cape/cape.sh``): one process per method and dataset, upstream's
prompts and 128-token answers, greedy. Methods differ only in flags:
GliDe = ``benchmark_cape.py --bin 1 x12`` (no extra candidates), CaPE =
upstream's confidence bins (``8 8 8 6 6 6 4 4 2 2 2 2``), +SVIP =
``--svip_h 0.3 --svip_gamma 0.15`` (entropy stop, cap 40, in place of the
fixed 4 draft tokens); target-only = ``benchmark_llm_only.py``. Each run keeps
its own directory (``raw_data`` linked in, upstream's ``benchmark/`` output
beside it), so a rerun skips what finished. The table is speedup over
target-only per dataset and mean accepted tokens, the paper's Table 3 beside.

GliDe needs CUDA (``flash_attn`` kernels). Without a CUDA device this says so
in one line and exits 0: the patch is applied and tested (``tests/test_glide.py``)
but cannot run here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DATASETS", "METHODS", "Job", "collect", "jobs", "main", "table"]

DATASETS = {"mtbench": "MT-Bench", "code": "Code", "finance": "Finance", "gsm": "GSM", "spider": "Spider"}
CAPE_BINS = ["8", "8", "8", "6", "6", "6", "4", "4", "2", "2", "2", "2"]  # upstream's cape.sh
NO_CAPE = ["1"] * 12
METHODS = ("target-only", "glide", "glide+svip", "glide+cape", "glide+cape+svip")


@dataclass(frozen=True)
class Job:
    method: str
    dataset: str
    argv: list[str]
    cwd: Path

    def metrics(self) -> Path | None:
        """Upstream's metrics file of this run, once it finished (its name carries a clock time)."""
        found = sorted((self.cwd / "benchmark").glob("**/metrics_*.jsonl"))
        return found[-1] if found else None


def _flags(method: str, h: float, gamma: float, max_draft: int) -> list[str]:
    flags = ["--bin", *(CAPE_BINS if "cape" in method else NO_CAPE)]
    if method.endswith("+svip"):
        flags += ["--svip_h", str(h), "--svip_gamma", str(gamma), "--svip_max_draft", str(max_draft)]
    return flags


def jobs(
    checkout: Path,
    run_dir: Path,
    target: str,
    draft: str,
    *,
    python: str = sys.executable,
    datasets=tuple(DATASETS),
    h: float = 0.3,
    gamma: float = 0.15,
    max_draft: int = 40,
    device: int = 0,
) -> list[Job]:
    """Every (method, dataset) run, interleaved by dataset so drift on the GPU hits every method alike."""
    scripts = checkout / "inference" / "cape"
    out = []
    for dataset in datasets:
        for method in METHODS:
            common = ["--large_path", target, "--dataset", dataset, "--cuda", str(device)]
            if method == "target-only":
                argv = [python, str(scripts / "benchmark_llm_only.py"), *common]
            else:
                argv = [python, str(scripts / "benchmark_cape.py"), *common, "--small_path", draft]
                argv += _flags(method, h, gamma, max_draft)
            out.append(Job(method, dataset, argv, run_dir / method.replace("+", "-") / dataset))
    return out


def _run(job: Job, checkout: Path) -> None:
    job.cwd.mkdir(parents=True, exist_ok=True)
    raw = job.cwd / "raw_data"
    if not raw.exists():
        raw.symlink_to(checkout / "inference" / "cape" / "raw_data")
    scripts = checkout / "inference" / "cape"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(checkout), str(scripts), os.environ.get("PYTHONPATH", "")]),
    }
    print(f"[glide] {job.method} / {job.dataset}", flush=True)
    subprocess.run(job.argv, cwd=job.cwd, env=env, check=True)


def collect(all_jobs: list[Job]) -> dict[str, dict[str, dict]]:
    """method -> dataset -> upstream's metrics (``speed`` tokens/s, ``mean_accepted_tokens``...)."""
    results: dict[str, dict[str, dict]] = {}
    for job in all_jobs:
        path = job.metrics()
        if path is not None:
            results.setdefault(job.method, {})[job.dataset] = json.loads(path.read_text())
    return results


def table(results: dict[str, dict[str, dict]]) -> str:
    """Speedup over target-only per dataset (mean accepted tokens per round in brackets), Avg. over datasets."""
    base = results.get("target-only", {})
    columns = [d for d in DATASETS if d in base]
    head = f"{'method':18}" + "".join(f"{DATASETS[d]:>14}" for d in columns) + f"{'Avg.':>14}"
    lines = [head, "-" * len(head)]
    for method in METHODS[1:]:
        cells, speedups, taus = [], [], []
        for dataset in columns:
            run = results.get(method, {}).get(dataset)
            if run is None:
                cells.append(f"{'-':>14}")
                continue
            speedup, tau = run["speed"] / base[dataset]["speed"], run.get("mean_accepted_tokens", float("nan"))
            speedups.append(speedup)
            taus.append(tau)
            cells.append(f"{speedup:>7.2f} ({tau:.2f})")
        average = f"{statistics.mean(speedups):>7.2f} ({statistics.mean(taus):.2f})" if speedups else f"{'-':>14}"
        lines.append(f"{method:18}" + "".join(cells) + f"{average:>14}")
    return "\n".join(lines)


def cuda_available(python: str) -> bool:
    probe = subprocess.run(
        [python, "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"], capture_output=True
    )
    return probe.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", required=True, help="Vicuna target: directory or hub id (upstream: vicuna-7b-v1.5)"
    )
    parser.add_argument("--draft", required=True, help="a trained GliDe draft (smallLlamaForCausalLM checkpoint)")
    parser.add_argument("--glide-dir", type=Path, default=Path("third_party/GliDe"), help="the patched checkout")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/glide-vicuna-7b"))
    parser.add_argument("--python", default=sys.executable, help="interpreter with GliDe's requirements (CUDA)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--h", type=float, default=0.3)
    parser.add_argument("--gamma", type=float, default=0.15)
    parser.add_argument("--max-draft", type=int, default=40)
    parser.add_argument("--device", type=int, default=0, help="CUDA device index")
    args = parser.parse_args(argv)
    if not (args.glide_dir / "glide" / "utils" / "generation_utils.py").exists():
        print(f"[glide] error: no GliDe checkout at {args.glide_dir}: run `make glide-setup`", file=sys.stderr)
        return 1
    if not cuda_available(args.python):
        print(
            f"[glide] patch applied at {args.glide_dir}; not running: GliDe/CaPE needs a CUDA GPU (flash_attn kernels) "
            f"and {args.python} sees none"
        )
        return 0
    planned = jobs(
        args.glide_dir.resolve(),
        args.run_dir.resolve(),
        args.target,
        args.draft,
        python=args.python,
        datasets=args.datasets,
        h=args.h,
        gamma=args.gamma,
        max_draft=args.max_draft,
        device=args.device,
    )
    for job in planned:
        if job.metrics() is None:  # resumable: finished runs are kept
            _run(job, args.glide_dir.resolve())
    from ..paper import format_paper_table, load_paper_tables

    print(table(collect(planned)))
    print("\nfor comparison, the paper's Table 3:")
    print(format_paper_table(load_paper_tables()[3]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
