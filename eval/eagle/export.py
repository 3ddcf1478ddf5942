"""The EAGLE base-model export (``svip.adapters.eagle.export``) for zoo names, and its command line.

``python -m svip.eval.eagle.export ZOO_NAME`` prints the exported directory
(preparing and exporting on first use); ``... PREPARED_DIR OUT_DIR`` exports
one directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from svip.adapters.eagle.export import export_base, exported_base, safetensors_names

__all__ = ["eagle_base", "export_base", "safetensors_names"]


def eagle_base(name_or_path: str) -> str:
    """A zoo name -> its exported directory (prepared and exported on first use); else unchanged."""
    from svip.eval import models as zoo

    if name_or_path not in zoo.ZOO:
        return name_or_path
    return exported_base(name_or_path, str(zoo.prepare(name_or_path)))


if __name__ == "__main__":
    if len(sys.argv) == 2:
        print(eagle_base(sys.argv[1]))
    elif len(sys.argv) == 3:
        print(export_base(Path(sys.argv[1]), Path(sys.argv[2])))
    else:
        sys.exit("usage: python -m svip.eval.eagle.export ZOO_NAME | PREPARED_DIR OUT_DIR")
