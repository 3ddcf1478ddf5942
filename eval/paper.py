"""The SVIP paper's published tables (arXiv 2411.18462, Tables 1-6), shipped as data.

Parsed from ``data/svip_paper_tables.md`` so ``svip report --paper`` can print
"paper vs yours" side by side. Values are speedups over target-only decoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PaperTable", "load_paper_tables", "format_paper_table", "matching_table"]

SOURCE = Path(__file__).resolve().parent / "data" / "svip_paper_tables.md"
_HEADING = re.compile(r"^## Table (\d+) — (.+)$")


@dataclass
class PaperTable:
    number: int
    title: str
    columns: list[str]  # value columns, e.g. MT-Bench ... Avg.
    rows: list[tuple[str, str, list[str]]]  # (model, method, cells as printed, e.g. "1.63 (+14.8%)")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def load_paper_tables(path: Path = SOURCE) -> dict[int, PaperTable]:
    tables: dict[int, PaperTable] = {}
    current: PaperTable | None = None
    model = ""
    for line in path.read_text().splitlines():
        heading = _HEADING.match(line)
        if heading:
            current = PaperTable(int(heading.group(1)), heading.group(2).strip(), [], [])
            tables[current.number] = current
            model = ""
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = _cells(line)
        if not current.columns:
            current.columns = cells[2:]
        elif set("".join(cells)) <= set("-: "):
            continue
        else:
            model = cells[0] or model  # blank model cell: same model as the row above
            current.rows.append((model, cells[1], cells[2:]))
    if not tables:
        raise ValueError(f"no tables found in {path}")
    return tables


def format_paper_table(table: PaperTable) -> str:
    width = max(len(f"{m} {meth}") for m, meth, _ in table.rows)
    lines = [
        f"Paper, Table {table.number}: {table.title}",
        f"{'':{width}} " + " ".join(f"{c:>9}" for c in table.columns),
    ]
    for model, method, values in table.rows:
        lines.append(f"{model + ' ' + method:{width}} " + " ".join(f"{v:>9}" for v in values))
    return "\n".join(lines)


def matching_table(questions: str, temperature: float) -> int | None:
    """The paper table a run's setting corresponds to (models aside), or None."""
    if questions in ("spec-bench", "svip-spec-bench"):
        return 1 if temperature == 0 else 5
    if questions == "eagle" or questions.startswith("eagle-"):
        return 4
    if questions == "glide":
        return 3
    return None
