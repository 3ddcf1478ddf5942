"""Clone an upstream framework at its pin and apply our patch to it; idempotent, with clear errors.

Every framework we patch (EAGLE, GliDe/CaPE, llama.cpp) is an ``Upstream``: a
pin file in ``third_party/`` (``repo = URL``, ``commit = SHA``), a unified
diff in ``patches/``, the paths worth checking out (sparse: code, not demo
media), and the make variable that points the clone at a local mirror when
the repository is out of reach. Nothing cloned is ever committed:
``third_party/*`` is git-ignored except pins and README. Standard library +
git only, so it runs before a framework's own environment exists.

A pin may name a source distribution instead of a repository
(``source = pypi:NAME==VERSION``, ``sha256 = ...``, optional ``subdir = ...``):
pip downloads it into ``$SVIP_HOME/downloads/<name>/`` (or the make variable
names a local copy of the tarball), its sha256 is checked, ``subdir`` is
unpacked into the destination and committed there as one pristine commit, so
the patch is applied and recognised (``git apply --check`` /
``--reverse --check``) exactly as on a clone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOT", "Upstream", "UpstreamError", "read_pin", "run_setup"]

ROOT = Path(os.environ.get("SVIP_REPO", Path.cwd()))  # the svip checkout (make runs from its root)


class UpstreamError(RuntimeError):
    """The pinned checkout cannot be made (network, wrong repository, local edits)."""


def read_pin(path: Path) -> dict[str, str]:
    """``key = value`` lines of a pin file (``repo``, ``commit``, or ``source``, ``sha256``); ``#`` starts a comment."""
    pin = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            pin[key.strip()] = value.strip()
    if not ({"repo", "commit"} <= pin.keys() or {"source", "sha256"} <= pin.keys()):
        raise UpstreamError(
            f"{path}: needs 'repo = ...' and 'commit = ...' lines "
            "(or 'source = pypi:NAME==VERSION' and 'sha256 = ...' for a source distribution)"
        )
    if "source" in pin and not (pin["source"].startswith("pypi:") and "==" in pin["source"]):
        raise UpstreamError(f"{path}: source must read 'pypi:NAME==VERSION', not {pin['source']!r}")
    return pin


def downloads_dir() -> Path:
    """``$SVIP_HOME/downloads`` (default ``~/.cache/svip/downloads``), where models' wheels wait too."""
    return Path(os.environ.get("SVIP_HOME", Path.home() / ".cache" / "svip")).expanduser() / "downloads"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pristine_message(pin: dict[str, str]) -> str:
    """The subject of the one commit an unpacked sdist gets; setup() recognises its tree by it."""
    return f"{pin['source']} sha256={pin['sha256']} subdir={pin.get('subdir', '.')}"


# A fixed identity and date: the same tarball always gives the same commit (and build-info hash).
_PRISTINE_ENV = {
    "GIT_AUTHOR_NAME": "svip",
    "GIT_AUTHOR_EMAIL": "svip@localhost",
    "GIT_COMMITTER_NAME": "svip",
    "GIT_COMMITTER_EMAIL": "svip@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}


def _git(
    *args: str, cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **env} if env else None
    )
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
    sparse: tuple[str, ...]  # paths to check out (git sparse-checkout, no-cone patterns; unused for an sdist)
    repo_variable: str  # make/env variable naming a local clone or mirror (an sdist: the tarball), e.g. EAGLE_REPO
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

    # -- a source distribution instead of a repository -----------------------
    def _sdist(self, pin: dict[str, str], local: str | None) -> Path:
        """The pinned tarball: ``local`` if given, else a cached download, else ``pip download``; sha256 checked."""
        expected = pin["sha256"].lower()
        if local:
            tarball = Path(local).expanduser()
            if not tarball.is_file():
                raise UpstreamError(f"{self.repo_variable}={local}: no such file (the pinned sdist, {pin['source']})")
        else:
            cache = downloads_dir() / self.name
            tarball = next((p for p in sorted(cache.glob("*.tar.gz")) if sha256_of(p) == expected), None)
            if tarball is None:
                tarball = self._pip_download(pin["source"].removeprefix("pypi:"), cache, expected)
        actual = sha256_of(tarball)
        if actual != expected:
            raise UpstreamError(f"{tarball} has sha256 {actual}, the pin says {expected}: not the pinned sdist")
        return tarball

    def _pip_download(self, requirement: str, cache: Path, expected: str) -> Path:
        # Only the sdist (--no-binary for this package alone, so pip never builds it; its build
        # requirements come as wheels into pip's isolated environment, used only to read its metadata).
        name = requirement.split("==", 1)[0]
        cache.mkdir(parents=True, exist_ok=True)
        print(f"[{self.name}] pip download {requirement} (sdist) into {cache}")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", name, requirement, "-d"]
        result = subprocess.run([*command, str(cache)], capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            raise UpstreamError(
                f"pip could not download {requirement}:\n{tail}\n"
                f"Without access to PyPI, point {self.repo_variable} at a copy of the sdist "
                f"(make {self.make_target} {self.repo_variable}=/path/to/{name.replace('-', '_')}-....tar.gz)."
            )
        found = next((p for p in sorted(cache.glob("*.tar.gz")) if sha256_of(p) == expected), None)
        if found is None:
            raise UpstreamError(f"pip downloaded {requirement} into {cache}, but no file there has sha256 {expected}")
        return found

    def _unpack(self, pin: dict[str, str], tarball: Path, dest: Path) -> None:
        """``subdir`` of the tarball's top folder into ``dest``, committed as the pristine tree."""
        subdir = pin.get("subdir", ".").strip("/")
        print(f"[{self.name}] unpacking {tarball.name}:{subdir} into {dest}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp,
            tarfile.open(tarball) as tar,
        ):
            members = tar.getmembers()
            top = members[0].name.split("/", 1)[0] if members else ""
            prefix = top if subdir in ("", ".") else f"{top}/{subdir}"
            chosen = [m for m in members if m.name == prefix or m.name.startswith(prefix + "/")]
            if not any(m.isfile() for m in chosen):
                raise UpstreamError(f"{tarball.name} has no files under {prefix}/ (subdir = {subdir})")
            tar.extractall(tmp, members=chosen, filter="data")
            shutil.move(str(Path(tmp) / prefix), dest)
        _git("init", "-q", cwd=dest)
        _git("add", "-A", "-f", ".", cwd=dest)
        _git(
            "-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", _pristine_message(pin),
            cwd=dest, env=_PRISTINE_ENV,
        )  # fmt: skip

    def _setup_sdist(self, pin: dict[str, str], dest: Path, local: str | None, patched: bool) -> Path:
        if not (dest / ".git").exists():
            if dest.exists() and any(dest.iterdir()):
                raise UpstreamError(f"{dest} exists but is no unpacked {pin['source']} (no .git): remove it")
            self._unpack(pin, self._sdist(pin, local), dest)
        subject = _git("log", "-1", "--format=%s", cwd=dest, check=False).stdout.strip()
        if subject != _pristine_message(pin):
            raise UpstreamError(
                f"{dest} was not unpacked from the pin ({pin['source']}, sha256 {pin['sha256'][:12]}...): remove {dest}"
            )
        if patched:
            state = self._apply_patch(dest)
        elif _git("diff", "--quiet", "HEAD", cwd=dest, check=False).returncode != 0:
            raise UpstreamError(f"{dest} should be pristine but has local edits: git -C {dest} checkout -- .")
        else:
            state = "not applied (pristine copy)"
        print(f"[{self.name}] {dest}: {pin['source']}; {self.patch.name}: {state}")
        return dest

    def setup(self, dest: Path, repo: str | None = None, patched: bool = True) -> Path:
        """Make ``dest`` the pinned, patched checkout (``patched=False``: pristine; sdist pins only); safe to call again."""
        pin = read_pin(self.pin)
        if "source" in pin:
            return self._setup_sdist(pin, dest, repo, patched)
        if not patched:
            raise UpstreamError(f"{self.name}: a pristine copy is only made for an sdist pin")
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
