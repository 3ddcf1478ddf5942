"""Clone EAGLE at its pin and apply ``patches/eagle2-svip.patch``; idempotent, with clear errors.

``python -m svip.adapters.eagle.upstream [--repo URL] [--dest DIR]`` (``make eagle-setup``).
The pin lives in ``third_party/EAGLE.pin``. Only the source tree is checked
out (sparse: ``eagle/``, requirements, setup, license, readme), not the
repository's multi-MB demo GIFs, which the code never reads. Nothing here is
ever committed: ``third_party/*`` is git-ignored except pins and README.
Standard library + git only, so it runs before EAGLE's environment exists.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["UpstreamError", "read_pin", "setup_eagle"]

ROOT = Path(os.environ.get("SVIP_REPO", Path.cwd()))  # the svip checkout (make runs from its root)
PIN = ROOT / "third_party" / "EAGLE.pin"
PATCH = ROOT / "patches" / "eagle2-svip.patch"
SPARSE = ["/eagle/", "/requirements.txt", "/setup.py", "/LICENSE", "/README.md"]


class UpstreamError(RuntimeError):
    """The pinned checkout cannot be made (network, wrong repository, local edits)."""


def read_pin(path: Path = PIN) -> dict[str, str]:
    """``key = value`` lines of a pin file (``repo``, ``commit``); ``#`` starts a comment."""
    pin = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            pin[key.strip()] = value.strip()
    if not {"repo", "commit"} <= pin.keys():
        raise UpstreamError(f"{path}: needs 'repo = ...' and 'commit = ...' lines")
    return pin


def _git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise UpstreamError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def _clone(repo: str, commit: str, dest: Path) -> None:
    print(f"[eagle] cloning {repo} into {dest}")
    cloned = _git("clone", "-q", "--no-checkout", repo, str(dest), check=False)
    if cloned.returncode != 0:
        raise UpstreamError(
            f"could not clone {repo}: {cloned.stderr.strip()}\n"
            "Without network access to it, point EAGLE_REPO at a local clone or mirror of SafeAILab/EAGLE "
            "that holds the pinned commit (make eagle-setup EAGLE_REPO=/path/to/EAGLE)."
        )
    _git("sparse-checkout", "set", "--no-cone", *SPARSE, cwd=dest)
    if _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=dest, check=False).returncode != 0:
        raise UpstreamError(f"{repo} has no commit {commit}: not SafeAILab/EAGLE, or a copy older than the pin")
    _git("checkout", "-q", commit, cwd=dest)


def _apply_patch(dest: Path, patch: Path) -> str:
    if _git("apply", "--check", str(patch), cwd=dest, check=False).returncode == 0:
        _git("apply", str(patch), cwd=dest)
        return "applied"
    if _git("apply", "--reverse", "--check", str(patch), cwd=dest, check=False).returncode == 0:
        return "already applied"
    detail = _git("apply", "--check", str(patch), cwd=dest, check=False).stderr.strip()
    raise UpstreamError(
        f"{patch.name} does not apply to {dest} (local edits?): {detail}\nReset it with: git -C {dest} checkout -- ."
    )


def setup_eagle(dest: Path, repo: str | None = None, patch: Path = PATCH) -> Path:
    """Make ``dest`` the pinned, patched EAGLE checkout; safe to call again."""
    pin = read_pin()
    repo = repo or pin["repo"]
    if not (dest / ".git").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        _clone(repo, pin["commit"], dest)
    head = _git("rev-parse", "HEAD", cwd=dest).stdout.strip()
    if head != pin["commit"]:
        raise UpstreamError(f"{dest} is at {head}, the pin is {pin['commit']}: remove {dest} or check out the pin")
    print(f"[eagle] {dest} at {head[:7]}; {patch.name}: {_apply_patch(dest, patch)}")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Clone EAGLE at the pin and apply the SVIP patch.")
    parser.add_argument(
        "--repo",
        default=os.environ.get("EAGLE_REPO") or None,
        help="clone source (default: the pin's URL; env EAGLE_REPO)",
    )
    parser.add_argument("--dest", type=Path, default=ROOT / "third_party" / "EAGLE")
    args = parser.parse_args(argv)
    try:
        setup_eagle(args.dest, args.repo)
    except UpstreamError as error:
        print(f"[eagle] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
