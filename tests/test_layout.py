"""The shape of the code base: layers, lazy imports, no private names across modules.

These read the source (with :mod:`ast`) or import the package in a fresh interpreter; they
hold the rules of the README's Development section.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "napari_flowinpaint"
HEAVY = ("torch", "cv2", "napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui")


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ".".join(parts)


def _imports(path: Path, module: str):
    """(imported module, names) of every ``import`` / ``from ... import`` in a file, with
    relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


@pytest.mark.parametrize("code", [
    "import napari_flowinpaint",
    "import napari_flowinpaint.tasks, napari_flowinpaint.engine, napari_flowinpaint.gui",
    "from napari_flowinpaint.engine import as_slice, cast_to, atomic_output",
    "from napari_flowinpaint.gui import make_sample_data; make_sample_data()",
    "from napari_flowinpaint.tasks.io import load_sample, read_stack; load_sample()",
    "from napari_flowinpaint.tasks.cli import main\n"
    "try:\n    main(['--help'])\nexcept SystemExit:\n    pass",
])
def test_light_entry_points_import_neither_torch_nor_opencv_nor_qt(code):
    check = (f"{code}\nimport sys\n"
             f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
             "print(bad)\nsys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_lazy_names_resolve():
    import napari_flowinpaint as nf
    from napari_flowinpaint import engine, tasks

    assert nf.FlowInpainter is engine.inpainter.FlowInpainter
    assert nf.repair_slice is tasks.repair.repair_slice
    assert nf.detect_damage is tasks.detection.detect_damage
    assert set(nf.__all__) >= {"FlowInpainter", "repair_slice", "detect_damage", "__version__"}
    for name in nf.__all__:
        assert getattr(nf, name) is not None
    with pytest.raises(AttributeError):
        nf.no_such_name  # noqa: B018


def test_layers_import_only_the_ones_before_them():
    rank = {"engine": 1, "tasks": 2, "gui": 3}
    for path, module in _modules():
        if module == "napari_flowinpaint.__main__":  # ``python -m``: runs the CLI
            continue
        layer = rank.get(module.split(".")[1] if "." in module else "", 0)
        for target, _ in _imports(path, module):
            parts = target.split(".")
            if parts[0] != "napari_flowinpaint" or len(parts) < 2:
                continue
            assert rank.get(parts[1], 0) <= layer, f"{module} imports {target}"
        if layer in (1, 2):
            for target, _ in _imports(path, module):
                assert target.split(".")[0] not in ("napari", "qtpy", "magicgui"), \
                    f"{module} imports {target}"


def test_no_private_name_is_imported_across_modules():
    for path, module in _modules():
        for target, names in _imports(path, module):
            if not target.startswith("napari_flowinpaint"):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{module} imports private {private} from {target}"


def test_no_source_file_is_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p, _ in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, long


def test_matplotlib_only_through_figure():
    """pyplot and matplotlib.use() change the whole napari process's state (its backend)."""
    for path, module in _modules():
        targets = {t for t, _ in _imports(path, module)}
        names = {n for t, ns in _imports(path, module) if t == "matplotlib" for n in ns}
        assert "matplotlib.pyplot" not in targets and "pyplot" not in names, module
        assert "matplotlib.use(" not in path.read_text(encoding="utf-8"), module
