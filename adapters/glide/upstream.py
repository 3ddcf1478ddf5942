"""Clone GliDe/CaPE at its pin and apply ``patches/glide-svip.patch`` (``make glide-setup``).

``python -m svip.adapters.glide.upstream [--repo URL] [--dest DIR]``. The pin
lives in ``third_party/GliDe.pin``. Only the code and the evaluation prompts
are checked out (``glide/``, ``inference/``), not the training pipeline
(``dschat/``, DeepSpeed scripts). The repository has no license: it is cloned
at build time and never committed.
"""

from __future__ import annotations

from ..upstream import ROOT, Upstream, run_setup

__all__ = ["GLIDE", "GLIDE_DIR"]

GLIDE_DIR = ROOT / "third_party" / "GliDe"
GLIDE = Upstream(
    name="glide",
    project="NonvolatileMemory/GliDe_with_a_CaPE_ICML_24",
    pin=ROOT / "third_party" / "GliDe.pin",
    patch=ROOT / "patches" / "glide-svip.patch",
    sparse=("/glide/", "/inference/", "/README.md"),
    repo_variable="GLIDE_REPO",
    make_target="glide-setup",
)


def main(argv: list[str] | None = None) -> int:
    return run_setup(GLIDE, GLIDE_DIR, argv)


if __name__ == "__main__":
    raise SystemExit(main())
