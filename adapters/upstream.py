"""Clone an upstream framework at its pin and apply our patch to it; idempotent, with clear errors.

Every framework we patch (EAGLE, GliDe/CaPE) is an ``Upstream``: a pin file in
``third_party/`` (``repo = URL``, ``commit = SHA``), a unified diff in
``patches/``, the paths worth checking out (sparse: code, not demo media),
and the make variable that points the clone at a local mirror when the
repository is out of reach. Nothing cloned is ever committed:
``third_party/*`` is git-ignored except pins and README. Standard library +
git only, so it runs before a framework's own environment exists.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOT", "Upstream", "UpstreamError", "read_pin", "run_setup"]

ROOT = Path(os.environ.get("SVIP_REPO", Path.cwd()))  # the svip checkout (make runs from its root)


class UpstreamError(RuntimeError):
    """The pinned checkout cannot be made (network, wrong repository, local edits)."""


def read_pin(path: Path) -> dict[str, str]:
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


@dataclass(frozen=True)
class Upstream:
    """One pinned framework and the patch we keep against it."""

    name: str  # log prefix and what error messages call it, e.g. "eagle"
    project: str  # owner/name upstream, for messages
    pin: Path
    patch: Path
    sparse: tuple[str, ...]  # paths to check out (git sparse-checkout, no-cone patterns)
    repo_variable: str  # make/env variable naming a local clone or mirror, e.g. EAGLE_REPO
    make_target: str

    def _clone(self, repo: str, commit: str, dest: Path) -> None:
        print(f"[{self.name}] cloning {repo} into {dest}")
        cloned = _git("clone", "-q", "--no-checkout", repo, str(dest), check=False)
        if cloned.returncode != 0:
            raise UpstreamError(
                f"could not clone {repo}: {cloned.stderr.strip()}\n"
                f"Without network access to it, point {self.repo_variable} at a local clone or mirror of "
                f"{self.project} that holds the pinned commit "
                f"(make {self.make_target} {self.repo_variable}=/path/to/clone)."
            )
        _git("sparse-checkout", "set", "--no-cone", *self.sparse, cwd=dest)
        if _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=dest, check=False).returncode != 0:
            raise UpstreamError(f"{repo} has no commit {commit}: not {self.project}, or a copy older than the pin")
        _git("checkout", "-q", commit, cwd=dest)

    def _apply_patch(self, dest: Path) -> str:
        patch = str(self.patch)
        if _git("apply", "--check", patch, cwd=dest, check=False).returncode == 0:
            _git("apply", patch, cwd=dest)
            return "applied"
        if _git("apply", "--reverse", "--check", patch, cwd=dest, check=False).returncode == 0:
            return "already applied"
        detail = _git("apply", "--check", patch, cwd=dest, check=False).stderr.strip()
        raise UpstreamError(
            f"{self.patch.name} does not apply to {dest} (local edits?): {detail}\n"
            f"Reset it with: git -C {dest} checkout -- ."
        )

    def setup(self, dest: Path, repo: str | None = None) -> Path:
        """Make ``dest`` the pinned, patched checkout; safe to call again."""
        pin = read_pin(self.pin)
        repo = repo or pin["repo"]
        if not (dest / ".git").exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._clone(repo, pin["commit"], dest)
        head = _git("rev-parse", "HEAD", cwd=dest).stdout.strip()
        if head != pin["commit"]:
            raise UpstreamError(f"{dest} is at {head}, the pin is {pin['commit']}: remove {dest} or check out the pin")
        print(f"[{self.name}] {dest} at {head[:7]}; {self.patch.name}: {self._apply_patch(dest)}")
        return dest


def run_setup(upstream: Upstream, default_dest: Path, argv: list[str] | None = None) -> int:
    """The command line of ``make <name>-setup``: clone at the pin, apply the patch, one-line errors."""
    parser = argparse.ArgumentParser(description=f"Clone {upstream.project} at the pin and apply the SVIP patch.")
    parser.add_argument(
        "--repo",
        default=os.environ.get(upstream.repo_variable) or None,
        help=f"clone source (default: the pin's URL; env {upstream.repo_variable})",
    )
    parser.add_argument("--dest", type=Path, default=default_dest)
    args = parser.parse_args(argv)
    try:
        upstream.setup(args.dest, args.repo)
    except UpstreamError as error:
        print(f"[{upstream.name}] error: {error}", file=sys.stderr)
        return 1
    return 0
