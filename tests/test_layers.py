"""The packages import each other only along the arrows of docs/design.md:

    svg_cli -> svg_bench -> svg_export -> svg_core -> svg_runtime

runtime is the base layer (imports nothing of ours), core sits on it, export on both, bench on all
three, and the CLI may import anything. Imports are read with `ast` from every .py file, lazy ones
inside functions included; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"svg_runtime": "runtime", "svg_core": "svg_core", "svg_export": "export", "svg_bench": "bench",
            "svg_cli": "cli"}  # import name -> directory
ALLOWED = {
    "svg_runtime": set(),
    "svg_core": {"svg_runtime"},
    "svg_export": {"svg_core", "svg_runtime"},
    "svg_bench": {"svg_core", "svg_export", "svg_runtime"},
    "svg_cli": {"svg_core", "svg_export", "svg_runtime", "svg_bench"},
}
NEVER_IN_RUNTIME = {"torch", "onnx", "onnxscript"}  # the base install has none of them


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in source (relative ones are skipped:
    they stay inside their own package)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def wrong_way_imports(package: str, source: str, where: str) -> list[str]:
    """The imports in one file of `package` that go against the arrows."""
    bad = []
    for line, module in imported_modules(source):
        top = module.split(".")[0]
        if top in PACKAGES and top != package and top not in ALLOWED[package]:
            bad.append(f"{where}:{line}: {package} imports {module}")
        if package == "svg_runtime" and top in NEVER_IN_RUNTIME:
            bad.append(f"{where}:{line}: the runtime imports {module}")
    return bad


def test_every_package_has_files() -> None:
    for package, folder in PACKAGES.items():
        assert list((ROOT / folder).rglob("*.py")), f"no .py files for {package} in {folder}/"


@pytest.mark.parametrize("package", list(PACKAGES))
def test_imports_follow_the_layers(package: str) -> None:
    bad = []
    for path in sorted((ROOT / PACKAGES[package]).rglob("*.py")):
        bad += wrong_way_imports(package, path.read_text(), str(path.relative_to(ROOT)))
    assert not bad, "imports against the layers of docs/design.md:\n" + "\n".join(bad)


def test_the_check_catches_wrong_way_imports() -> None:
    source = ("import svg_cli.app\nfrom svg_runtime.manifest import MANIFEST_NAME\n\n\ndef f():\n"
              "    from svg_export.bundle import export_bundle\n    import torch\n")
    assert [b.split(": ", 1)[1] for b in wrong_way_imports("svg_core", source, "x.py")] == [
        "svg_core imports svg_cli.app", "svg_core imports svg_export.bundle"]
    assert len(wrong_way_imports("svg_runtime", source, "x.py")) == 3  # svg_cli, svg_export and torch
    assert not wrong_way_imports("svg_cli", "import svg_bench.infer\nimport svg_export\n", "x.py")
