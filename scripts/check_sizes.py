"""The house rules ruff cannot check: no module in flows/, tasks/, sandbox/ over 400 lines, no function over 60.

Usage: python scripts/check_sizes.py [paths...]  (default: flows tasks sandbox). Exit 1 listing every breach.
Complexity (<= 15) and statement counts are ruff's (C901, PLR0915, configured in pyproject.toml).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def breaches(path: Path) -> list[str]:
    text = path.read_text()
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{path}: {lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - start + 1
            if length > MAX_FUNCTION_LINES:
                found.append(
                    f"{path}:{node.lineno}: function {node.name} is {length} lines (at most {MAX_FUNCTION_LINES})"
                )
    return found


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path("flows"), Path("tasks"), Path("sandbox")]
    files = sorted(f for r in roots for f in ([r] if r.is_file() else r.rglob("*.py")))
    found = [b for f in files for b in breaches(f)]
    for b in found:
        print(b)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
