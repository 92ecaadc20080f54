"""Parameter table, parameter-file loading (our reader vs rcl's), declaration with descriptors."""
import ast
from pathlib import Path

import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.ros import parameters as P
from spatial_vlm_ros.ros.run import (
    SENSOR_PROFILES,
    check_parameter_file,
    node_arguments,
    parameter_arguments,
    parameter_files,
    ros_arguments,
    run_nodes,
    sensor_profile_file,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "perception.yaml"


def test_every_default_is_valid_and_described():
    for spec in P.PARAMETERS:
        assert P.check_value(spec, spec.default) is None, spec.name
        assert spec.description, spec.name
    assert len(P.SPECS) == len(P.PARAMETERS)                     # no duplicate names


def test_shipped_config_lists_every_parameter_with_valid_values():
    overrides = P.load_parameter_file(str(CONFIG))
    assert set(overrides) == set(P.SPECS)
    values = P.validate_values(overrides)
    config = P.pipeline_config(values)
    assert config.detector == values["detector"]
    assert config.lifting.noise == config.noise                   # one noise model for lifting and queries
    assert config.gravity.static_support_height is None           # 0.0 means "unknown"


@pytest.mark.parametrize("overrides,needle", [
    ({"sync.slop_s": 1}, r"expected a float, got 1 \(integer\) \(write 1.0, not 1\)"),
    ({"sync.slop_s": 5.0}, r"5.0 is outside \[0.0, 1.0\]"),
    ({"detector": "yolo"}, "'yolo' is not one of external, tabletop"),
    ({"gravity.mode": "imu"}, "'imu' is not one of plane, static, camera"),
    ({"gravity.static_orientation_xyzw": [0.0, 0.0, 1.0]}, "expected 4 values, got 3"),
    ({"lifting.min_pixels": 3.5}, "expected a integer"),
    ({"sync.slopp_s": 0.1}, "sync.slopp_s: unknown parameter"),
])
def test_invalid_values_are_named(overrides, needle):
    with pytest.raises(InputError, match=needle):
        P.validate_values(overrides)


def test_file_keys_precedence_and_errors(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters:\n    detector: tabletop\n    sync: {slop_s: 0.05}\n"
                 "/**/spatial_perception:\n  ros__parameters:\n    sync: {slop_s: 0.03}\n"
                 "/robot/spatial_perception:\n  ros__parameters:\n    sync: {queue_size: 3}\n"
                 "other_node:\n  ros__parameters:\n    detector: external\n")
    assert P.load_parameter_file(str(f)) == {"detector": "tabletop", "sync.slop_s": 0.03}
    assert P.load_parameter_file(str(f), namespace="robot") == {"detector": "tabletop", "sync.slop_s": 0.03,
                                                                "sync.queue_size": 3}
    (tmp_path / "none.yaml").write_text("other_node:\n  ros__parameters: {a: 1}\n")
    with pytest.raises(InputError, match="no 'ros__parameters' for node 'spatial_perception'"):
        P.load_parameter_file(str(tmp_path / "none.yaml"))
    with pytest.raises(InputError, match="cannot read parameter file"):
        P.load_parameter_file(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("/**:\n  ros__parameters:\n    memory: {timeout_s: 3}\n")
    with pytest.raises(InputError, match="memory.timeout_s: expected a float"):
        check_parameter_file(str(tmp_path / "bad.yaml"))


def test_rcl_reads_the_shipped_file_like_we_do():
    """rcl itself parses config/perception.yaml (wildcard key, namespace) to the values our reader gives."""
    context = Context()
    rclpy.init(args=["x"] + ros_arguments(str(CONFIG), namespace="robot1", detector="tabletop"), context=context)
    try:
        node = Node("spatial_perception", context=context, automatically_declare_parameters_from_overrides=True)
        assert node.get_fully_qualified_name() == "/robot1/spatial_perception"
        from_rcl = {name: p.value for name, p in node.get_parameters_by_prefix("").items()
                    if name not in ("use_sim_time", "start_type_description_service")}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    ours = P.load_parameter_file(str(CONFIG), namespace="robot1")
    ours["detector"] = "tabletop"                                   # -p overrides the file
    assert {k: list(v) if isinstance(v, (list, tuple)) or hasattr(v, "typecode") else v
            for k, v in from_rcl.items()} == ours


def test_declare_parameters_with_descriptors_and_overrides():
    context = Context()
    rclpy.init(args=[], context=context)
    try:
        node = Node("spatial_perception", context=context, parameter_overrides=[
            Parameter("detector", value="tabletop"), Parameter("memory.timeout_s", value=12.5),
            Parameter("gravity.static_orientation_xyzw", value=[0.0, 0.0, 0.0, 1.0])])
        values = P.declare_parameters(node)
        assert values["detector"] == "tabletop" and values["memory.timeout_s"] == 12.5
        assert values["gravity.static_orientation_xyzw"] == [0.0, 0.0, 0.0, 1.0]
        d = node.describe_parameter("sync.slop_s")
        assert d.read_only and "stamp" in d.description
        assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (0.0, 1.0)
        assert node.describe_parameter("sync.queue_size").integer_range[0].to_value == 100
        assert "one of: external, tabletop" in node.describe_parameter("detector").additional_constraints
        node.destroy_node()

        bad = Node("spatial_perception", context=context, parameter_overrides=[
            Parameter("sync.slop_s", value=3.0), Parameter("detector", value="yolo")])
        with pytest.raises(InputError) as err:
            P.declare_parameters(bad)
        assert "sync.slop_s" in str(err.value) and "'yolo' is not one of" in str(err.value)
        bad.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_launch_file_parses_and_declares_its_arguments():
    source = (ROOT / "launch" / "perception.launch.py").read_text()
    tree = ast.parse(source)
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names
    declared = {c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
                and getattr(c.func, "id", "") == "DeclareLaunchArgument"}
    assert declared == {"params_file", "namespace", "detector", "depth_source", "sensor_profile", "autostart",
                        "with_vlm", "vlm_params_file"}
    profiles = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                    and getattr(n.targets[0], "id", "") == "SENSOR_PROFILES")
    assert ast.literal_eval(profiles) == SENSOR_PROFILES                 # the launch file and run agree
    assert "executable=\"perception_node\"" in source and "name=\"spatial_perception\"" in source
    assert "executable=\"vlm_node\"" in source and "name=\"spatial_vlm\"" in source


def test_run_picks_parameter_files_per_node(tmp_path):
    perception, vlm = str(CONFIG), str(ROOT / "config" / "vlm.yaml")
    assert parameter_files(["perception"], None) == [perception]
    assert parameter_files(["perception", "vlm"], perception) == [perception, vlm]   # vlm: its default file
    both = tmp_path / "both.yaml"
    both.write_text("/**:\n  ros__parameters: {}\n")
    assert parameter_files(["perception", "vlm"], str(both)) == [str(both)]
    assert ros_arguments([perception, vlm], "/robot1/", "tabletop") == [
        "--ros-args", "--params-file", perception, "--params-file", vlm, "-r", "__ns:=/robot1", "-p",
        "detector:=tabletop"]


def test_sensor_profiles_overlay_the_perception_file(tmp_path):
    base = P.load_parameter_file(str(CONFIG))
    for name in SENSOR_PROFILES:
        path = sensor_profile_file(name)
        assert path == str(ROOT / "config" / "sensors" / f"{name}.yaml")
        overlay = P.load_parameter_file(path, namespace="robot1")
        assert overlay and all(key.startswith("uncertainty.") for key in overlay)
        values = check_parameter_file([str(CONFIG), path], namespace="robot1")     # a later file wins
        assert all(values[key] == overlay[key] for key in overlay)
        assert values["detector"] == base["detector"]
    assert sensor_profile_file(str(CONFIG)) == str(CONFIG)                   # a file's path is taken as is
    with pytest.raises(InputError, match="'lidar' is neither one of gaussian, stereo, tof nor an existing file"):
        sensor_profile_file("lidar")
    bad = tmp_path / "bad_profile.yaml"
    bad.write_text("/**/spatial_perception:\n  ros__parameters:\n    uncertainty: {center_ray_m: -1.0}\n")
    with pytest.raises(InputError, match="uncertainty.center_ray_m"):
        check_parameter_file([str(CONFIG), str(bad)])


def test_rcl_applies_the_profile_after_the_file():
    """The order ``run`` passes the files in is the order rcl applies them: the profile's values win."""
    stereo = sensor_profile_file("stereo")
    context = Context()
    rclpy.init(args=["x"] + ros_arguments([str(CONFIG), stereo]), context=context)
    try:
        node = Node("spatial_perception", context=context, automatically_declare_parameters_from_overrides=True)
        value = node.get_parameter("uncertainty.quantity_sigma_scale.height").value
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert value == P.load_parameter_file(stereo)["uncertainty.quantity_sigma_scale.height"]
    assert value != P.load_parameter_file(str(CONFIG))["uncertainty.quantity_sigma_scale.height"]


def test_user_parameter_arguments_win_over_the_node_files():
    """``run ... --ros-args -p memory.timeout_s:=3600.0``: the node's own files would otherwise override the
    context's ``-p`` (rclpy applies node arguments last); ``run`` repeats them after the files."""
    user = ["-r", "/camera/color/image_raw:=/cam/rgb", "-p", "memory.timeout_s:=3600.0", "--log-level", "warn"]
    assert parameter_arguments(user) == ["-p", "memory.timeout_s:=3600.0"]
    assert parameter_arguments(["--params-file", "a.yaml", "-p"]) == ["--params-file", "a.yaml"]
    stereo = sensor_profile_file("stereo")
    context = Context()
    rclpy.init(args=["x"] + ros_arguments([], "", None, user), context=context)
    try:
        node = Node("spatial_perception", context=context, automatically_declare_parameters_from_overrides=True,
                    cli_args=node_arguments("perception", [str(CONFIG), stereo], "tabletop", user))
        values = {name: node.get_parameter(name).value
                  for name in ("memory.timeout_s", "detector", "uncertainty.quantity_sigma_scale.height")}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert values["memory.timeout_s"] == 3600.0 != P.load_parameter_file(str(CONFIG))["memory.timeout_s"]
    assert values["detector"] == "tabletop"
    assert values["uncertainty.quantity_sigma_scale.height"] == \
        P.load_parameter_file(stereo)["uncertainty.quantity_sigma_scale.height"]


def test_run_refuses_a_bad_sensor_profile_before_ros_starts(capsys):
    assert run_nodes(["perception"], sensor_profile="lidar", prog="run") == 2
    assert "run: sensor profile 'lidar' is neither one of" in capsys.readouterr().err
    assert run_nodes(["vlm"], sensor_profile="stereo", prog="run") == 2
    assert "sets the perception node's parameters" in capsys.readouterr().err


def test_executor_threads_follow_the_nodes_in_the_process():
    """The perception node alone spins 2 threads (one may wait for the VLM, MAX_WAITING); with vlm_node, whose
    callbacks wait for inference, the process spins that node's 4."""
    from spatial_vlm_ros.ros import spin
    from spatial_vlm_ros.ros.perception_node import SpatialPerceptionNode
    from spatial_vlm_ros.ros.vlm_forwarding import MAX_WAITING
    from spatial_vlm_ros.ros.vlm_node import SpatialVLMNode

    perception, vlm = object.__new__(SpatialPerceptionNode), object.__new__(SpatialVLMNode)
    assert spin.executor_threads([perception]) == 2 == MAX_WAITING + 1
    assert spin.executor_threads([perception, vlm]) == spin.executor_threads([vlm]) == spin.DEFAULT_THREADS == 4
