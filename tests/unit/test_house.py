"""Rules of the house that no linter checks: the size of a function.

A function longer than a screenful holds more than one idea; the limit is the one `docs/architecture.md`
states. Lines run from ``def`` to the function's last line, docstring included; a click command's option
decorators sit above ``def`` and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import colsplade

MAX_FUNCTION_LINES = 100
PACKAGE = Path(colsplade.__file__).parent


def _long_functions(root: Path, limit: int) -> list[str]:
    """``path:line name (n lines)`` of every function or method under ``root`` longer than ``limit``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n_lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if n_lines > limit:
                    found.append(
                        f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({n_lines} lines)"
                    )
    return found


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    assert _long_functions(tmp_path, MAX_FUNCTION_LINES) == [
        f"{tmp_path.name}/long.py:1 long ({MAX_FUNCTION_LINES + 1} lines)"
    ]


def test_no_function_over_the_limit() -> None:
    long = _long_functions(PACKAGE, MAX_FUNCTION_LINES)
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines; split them into named steps:\n" + "\n".join(
        long
    )
