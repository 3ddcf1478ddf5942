"""Clone EAGLE at its pin and apply ``patches/eagle2-svip.patch`` (``make eagle-setup``).

``python -m svip.adapters.eagle.upstream [--repo URL] [--dest DIR]``. The pin
lives in ``third_party/EAGLE.pin``. Only the source tree is checked out
(sparse: ``eagle/``, requirements, setup, license, readme), not the
repository's multi-MB demo GIFs, which the code never reads. The cloning and
patching is ``svip.adapters.upstream``, shared with GliDe.
"""

from __future__ import annotations

from pathlib import Path

from ..upstream import ROOT, Upstream, UpstreamError, run_setup
from ..upstream import read_pin as _read_pin

__all__ = ["EAGLE", "UpstreamError", "read_pin"]

PIN = ROOT / "third_party" / "EAGLE.pin"
PATCH = ROOT / "patches" / "eagle2-svip.patch"
EAGLE = Upstream(
    name="eagle",
    project="SafeAILab/EAGLE",
    pin=PIN,
    patch=PATCH,
    sparse=("/eagle/", "/requirements.txt", "/setup.py", "/LICENSE", "/README.md"),
    repo_variable="EAGLE_REPO",
    make_target="eagle-setup",
)


def read_pin(path: Path = PIN) -> dict[str, str]:
    return _read_pin(path)


def main(argv: list[str] | None = None) -> int:
    return run_setup(EAGLE, ROOT / "third_party" / "EAGLE", argv)


if __name__ == "__main__":
    raise SystemExit(main())
