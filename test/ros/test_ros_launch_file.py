"""launch/perception.launch.py cannot run here (no `launch` wheels): check, by parsing it, that its
``detector`` and ``depth_source`` choices are the node's, and that the CLI offers the same detectors."""
import ast
from pathlib import Path

from spatial_vlm_ros import pipeline
from spatial_vlm_ros.cli import build_parser
from spatial_vlm_ros.ros.parameters import SPECS

LAUNCH = Path(__file__).resolve().parents[2] / "launch" / "perception.launch.py"


def _constants() -> dict:
    tree = ast.parse(LAUNCH.read_text())
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Tuple)}


def test_launch_choices_are_the_nodes():
    consts = _constants()
    assert consts["DETECTORS"] == pipeline.DETECTORS == SPECS["detector"].choices
    assert {"boxes", "open_vocab"} <= set(consts["DETECTORS"])
    assert consts["DEPTH_SOURCES"][0] == "sensor" and "model" in consts["DEPTH_SOURCES"]
    if "depth_source" in SPECS:
        assert consts["DEPTH_SOURCES"] == SPECS["depth_source"].choices
    text = LAUNCH.read_text()
    assert 'DeclareLaunchArgument("depth_source"' in text and 'DeclareLaunchArgument("detector"' in text


def test_cli_run_offers_every_detector():
    parser = build_parser()
    args = parser.parse_args(["run", "--detector", "boxes"])
    assert args.detector == "boxes"
    run = next(a for a in parser._subparsers._group_actions[0].choices["run"]._actions
               if a.dest == "detector")
    assert tuple(run.choices) == pipeline.DETECTORS
