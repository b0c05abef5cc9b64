"""cdn/ imports point one way: purges -> tasks -> outbox -> backends (no circle, no lazy hop)."""

import ast
from pathlib import Path

CDN = Path(__file__).resolve().parents[2] / "cdn"


def _imports_of(path: Path) -> set[str]:
    """Every cdn.* module named by an import anywhere in the file (function bodies included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cdn":
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.split(".")[0] == "cdn")
    return names


def test_outbox_and_tasks_do_not_import_their_callers():
    outbox = _imports_of(CDN / "outbox.py")
    tasks = _imports_of(CDN / "tasks.py")
    assert not {name for name in outbox if name.startswith(("cdn.tasks", "cdn.purges"))}
    assert not {name for name in tasks if name.startswith("cdn.purges")}
    assert "cdn.outbox" in tasks  # `from cdn import outbox`
