"""Diverse training text for a GliDe draft or an EAGLE head, from files pinned with this project: no download, no eval set.

Why: the first Qwen draft was distilled on the target's answers to 448
templated prompts only. It reached 67% top-1 agreement on held-out answers
to the same templates but 17% on GliDe's benchmark prompts: the text was too
narrow to learn a mapping from the target's cache to its next token that
holds elsewhere. The files here are the Python standard library and the
sources of pinned packages (``transformers``, ``torch``): code, docstrings
and documentation prose, the same on every machine with the same Python and
pins (the record lists every file and its hash), and in no evaluation set.

Each chunk becomes a chat exchange, as drafting sees the target: the user
asks to continue a text, quoting its first ``lead`` tokens, and the answer is
the rest of the chunk. Teacher-forced, the target's next-token predictions
over that answer are the labels (``train_draft``), so the text itself need
not be the target's own.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import itertools
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Chunk",
    "SOURCES",
    "candidate_files",
    "docstrings",
    "sample_chunks",
    "source_roots",
    "source_versions",
    "to_exchange",
]

SOURCES = ("stdlib", "transformers", "torch")
SUFFIXES = (".py", ".md", ".rst", ".txt")
SKIPPED_PARTS = {"__pycache__", "site-packages", "test", "tests", "testing", "_vendor", "third_party"}
MIN_BYTES, MAX_BYTES = 2_000, 2_000_000
REQUEST = "Continue this text:\n\n"
CHUNK_TOKENS = 320  # per chunk, at most
LEAD_TOKENS = 48  # of a chunk, quoted in the prompt


@dataclass(frozen=True)
class Chunk:
    source: str
    path: str  # relative to its source root
    sha256: str  # of the whole file, so the record pins what was read
    tokens: tuple[int, ...]


def source_roots(names: tuple[str, ...] = SOURCES) -> dict[str, Path]:
    """Where each source lives in this interpreter (a package that is not installed is an error, not a skip)."""
    roots = {}
    for name in names:
        if name == "stdlib":
            roots[name] = Path(sysconfig.get_paths()["stdlib"])
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"corpus source {name!r} is not an installed package")
        roots[name] = Path(list(spec.submodule_search_locations)[0])
    return roots


def source_versions(roots: dict[str, Path]) -> dict[str, str]:
    """The version of each source (Python's for the standard library): what pins the text, not where it lay."""
    import importlib.metadata
    import platform

    return {
        name: platform.python_version() if name == "stdlib" else importlib.metadata.version(name) for name in roots
    }


def candidate_files(root: Path) -> list[Path]:
    """Text files under ``root``, sorted: test suites, vendored and installed third-party trees left out."""
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.suffix not in SUFFIXES or SKIPPED_PARTS & set(relative.parts[:-1]) or not path.is_file():
            continue
        if MIN_BYTES <= path.stat().st_size <= MAX_BYTES:
            files.append(path)
    return sorted(files)


def docstrings(source: str) -> str:
    """The module's, classes' and functions' docstrings, in order, as paragraphs (empty if it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    nodes = [tree] + [
        n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    texts = [ast.get_docstring(node) for node in nodes]
    return "\n\n".join(text for text in texts if text and len(text) > 80)


def sample_chunks(
    tokenizer, roots: dict[str, Path], *, tokens: int, chunk_tokens: int = CHUNK_TOKENS, seed: int = 0
) -> list[Chunk]:
    """At most one chunk per file, the sources taken in turn (each in a seeded order), until ``tokens`` are gathered.

    Every other chunk of a Python file is its docstrings (prose), the rest
    its code. One chunk per file and sources in turn keep the text as varied as they
    allow (``transformers`` alone has thousands of near-identical model
    files); the chunk's start is a seeded line, so it is not always a header.
    """
    if tokens <= 0 or chunk_tokens < 16:
        raise ValueError("corpus needs tokens > 0 and chunk_tokens >= 16")
    rng = random.Random(seed)
    queues = []
    for name, root in roots.items():
        paths = candidate_files(root)
        rng.shuffle(paths)
        queues.append([(name, root, path) for path in paths])
    files = [entry for turn in itertools.zip_longest(*queues) for entry in turn if entry is not None]
    chunks, gathered = [], 0
    for name, root, path in files:
        if gathered >= tokens:
            break
        data = path.read_bytes()
        text = data.decode("utf-8", errors="ignore")
        if path.suffix == ".py" and len(chunks) % 2:
            text = docstrings(text)  # every other chunk: the file's prose, not its code
        lines = text.splitlines(keepends=True)
        start = rng.randrange(max(1, len(lines) - 40))
        ids = tokenizer("".join(lines[start:]), add_special_tokens=False)["input_ids"][:chunk_tokens]
        if len(ids) < chunk_tokens // 2:
            continue
        relative = str(path.relative_to(root))
        chunks.append(Chunk(name, relative, hashlib.sha256(data).hexdigest(), tuple(int(t) for t in ids)))
        gathered += len(ids)
    if gathered < tokens:
        raise ValueError(f"the sources hold only {gathered} tokens of usable chunks, asked for {tokens}")
    return chunks


def to_exchange(tokenizer, chunk: Chunk, lead: int = LEAD_TOKENS) -> dict[str, list[int]]:
    """``{"prompt", "answer"}`` ids: the user quotes the chunk's first ``lead`` tokens, the answer is the rest."""
    from svip.eval.prompts import encode_prompt

    quoted = tokenizer.decode(list(chunk.tokens[:lead]))
    return {"prompt": encode_prompt(tokenizer, REQUEST + quoted), "answer": list(chunk.tokens[lead:])}
