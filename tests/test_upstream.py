"""Pinned clones of upstream frameworks (EAGLE, GliDe): clone, check out the pin, apply our patch; clear errors.

Runs on a throwaway local repository, so it needs no network (CI cannot reach GitHub).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from svip.adapters.eagle.upstream import EAGLE
from svip.adapters.glide.upstream import GLIDE
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
