"""The package's layers import downwards only: ``core`` imports no other subpackage of spatial_vlm_ros, and
no ROS-free layer imports the ROS layer (``ros``) or ``rclpy``.

Checked on the import statements of every module (lazy imports inside functions included), parsed with ``ast``.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spatial_vlm_ros"

#: layer -> the subpackages of spatial_vlm_ros (and top-level modules) it may import
ALLOWED = {
    "core": {"core"},
    "perception": {"core", "perception", "runtime"},
    "sim": {"core", "sim", "perception"},
    "synthesis": {"core", "perception", "pipeline", "sim", "bag", "evaluation", "vlm", "synthesis"},
}
ROS_FREE = ("core", "perception", "pipeline.py", "sim", "synthesis", "training", "vlm", "runtime")


def imports(path: Path, root: Path = PACKAGE.parent) -> set[str]:
    """Absolute module names imported by one file under ``root`` (relative imports resolved)."""
    names = set()
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[:-node.level]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module or "")
    return names


def internal_layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "spatial_vlm_ros" and len(parts) > 1 else None


def _files(layer: str):
    target = PACKAGE / layer
    return [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_below_them(layer):
    wrong = {f"{path.relative_to(PACKAGE)}: {name}"
             for path in _files(layer) for name in imports(path)
             if internal_layer(name) not in (None, *ALLOWED[layer])}
    assert wrong == set()


@pytest.mark.parametrize("layer", ROS_FREE)
def test_ros_free_layers_do_not_import_ros(layer):
    wrong = {f"{path.relative_to(PACKAGE)}: {name}" for path in _files(layer) for name in imports(path)
             if name.split(".")[0] == "rclpy" or internal_layer(name) == "ros"}
    assert wrong == set()


def test_the_check_sees_lazy_and_relative_upward_imports(tmp_path):
    bad = tmp_path / "spatial_vlm_ros" / "core" / "probe.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from ..perception.base import Instance\n    import rclpy.node\n", encoding="utf-8")
    found = imports(bad, root=tmp_path)
    assert found == {"spatial_vlm_ros.perception.base", "rclpy.node"}
    assert internal_layer("spatial_vlm_ros.perception.base") not in ALLOWED["core"]
