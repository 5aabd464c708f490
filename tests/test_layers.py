"""Dependencies run one way: ``app/voice`` -> ``app/speech`` -> ``cdn``; ``precompute`` beside; nothing
in the product imports ``simulator`` (or the ``stack`` dev tool). Read from the source (every import statement, also inside
functions), so a lazy import cannot hide an upward arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports_of(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """module path -> every module it imports (absolute names; relative imports resolved)."""
    out: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = module.split(".")[: -node.level]
                    base = ".".join([*parent, base] if base else parent)
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
        out[str(path.relative_to(root))] = names
    return out


def offenders(package: str, forbidden: tuple[str, ...], root: Path = ROOT) -> dict[str, list[str]]:
    found = {}
    for path, names in imports_of(package, root).items():
        bad = sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))
        if bad:
            found[path] = bad
    return found


@pytest.mark.parametrize(("package", "forbidden"), [
    ("cdn", ("app.speech", "app.voice", "app.admin", "precompute", "simulator", "stack")),
    ("precompute", ("simulator", "stack", "app.admin", "app.voice")),
    ("app", ("simulator", "stack")),
    ("app/speech", ("app.voice", "app.admin")),
])
def test_no_upward_imports(package: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(package, forbidden) == {}


def test_the_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """An import inside a function (as ``simulator.corpus`` once hid in precompute) or a relative one is seen."""
    pkg = tmp_path / "pkg" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("def f():\n    from simulator.corpus import load\n    return load\n")
    (pkg / "b.py").write_text("from ..speech import keys\nimport os\n")
    assert offenders("pkg", ("simulator", "pkg.speech"), root=tmp_path) == {
        "pkg/sub/a.py": ["simulator.corpus", "simulator.corpus.load"],
        "pkg/sub/b.py": ["pkg.speech", "pkg.speech.keys"],
    }
