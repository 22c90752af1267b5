"""No function over 50 lines in ``tools/``, ``data/``, ``models/``, ``fileio/`` and ``experiments/``: each step
stays short enough to read at once. Lines are counted from ``def`` to the function's last line, docstring included
(nested functions count inside their parent too). Extend :data:`CHECKED` to cover more of the tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 50
CHECKED = ("tools", "data", "models", "fileio", "experiments")  # folders (searched recursively) and files


def long_functions(source: str, max_lines: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """``(qualified name, first line, length)`` of every function in ``source`` longer than ``max_lines``."""
    out: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                if length > max_lines:
                    out.append((prefix + child.name, child.lineno, length))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(ast.parse(source), "")
    return out


def _files() -> list[Path]:
    paths = [ROOT / c for c in CHECKED]
    return sorted(f for p in paths for f in (p.rglob("*.py") if p.is_dir() else [p]))


def test_the_counter_by_hand():
    src = (
        "def short():\n    return 1\n\n\n"  # 2 lines
        "class A:\n    def long(self):\n" + "".join(f"        x{i} = {i}\n" for i in range(6))  # 7 lines, at 6
    )
    assert long_functions(src, max_lines=6) == [("A.long", 6, 7)]
    assert long_functions(src, max_lines=7) == []
    assert long_functions(src, max_lines=1) == [("short", 1, 2), ("A.long", 6, 7)]
    nested = "def outer():\n    def inner():\n        a = 1\n        return a\n    return inner\n"
    assert long_functions(nested, max_lines=2) == [("outer", 1, 5), ("outer.inner", 2, 3)]


def test_no_function_over_50_lines():
    files = _files()
    assert len(files) > 100  # the paths still exist
    found = [f"{f.relative_to(ROOT)}:{line} {name} ({n} lines)" for f in files
             for name, line, n in long_functions(f.read_text(encoding="utf-8"))]  # fmt: skip
    assert not found, f"functions over {MAX_LINES} lines (split them):\n" + "\n".join(found)
