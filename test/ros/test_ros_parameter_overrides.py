"""Overrides are checked on every start path: an override that names no parameter fails configure (and, with
autostart, the process exits 2 with one line naming it and the closest known name); a ``--params-file`` without
a section for the node's (remapped, namespaced) name is warned about; logs name the remapped topics.

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/ros/test_ros_parameter_overrides.py``.
"""
import os
import shutil
import signal
import subprocess
import time

import pytest

from spatial_vlm_ros.ros.overrides import params_file_arguments, section_matches, unknown_parameter

ROS = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
needs_ros = pytest.mark.skipif(not ROS, reason="ROS tests run through scripts/ros_env.sh")


@pytest.mark.parametrize("key,fq_name,matches", [
    ("/**", "/spatial_perception", True), ("/**", "/robot1/spatial_perception", True),
    ("/**/spatial_perception", "/robot1/a/spatial_perception", True),
    ("spatial_perception", "/spatial_perception", True),
    ("/*/spatial_perception", "/robot1/spatial_perception", True),
    ("/*/spatial_perception", "/spatial_perception", False),
    ("/robot1/spatial_perception", "/spatial_perception", False), ("/**/spatial_perception", "/cam_perception", False),
    ("robot1/*", "/robot1/spatial_vlm", True), ("other_node", "/spatial_perception", False),
])
def test_section_keys_match_like_rcl(key, fq_name, matches):
    assert section_matches(key, fq_name) is matches


def test_unknown_names_get_the_closest_known_one_and_files_are_read_from_ros_args():
    assert unknown_parameter("sync.slopp_s", ["sync.slop_s", "detector"]) == \
        "sync.slopp_s: unknown parameter (closest: sync.slop_s)"
    assert unknown_parameter("zzz", ["sync.slop_s"]) == "zzz: unknown parameter"
    argv = ["exe", "--params-file", "not_ros.yaml", "--ros-args", "-r", "a:=b", "--params-file", "a.yaml", "--",
            "--params-file", "app.yaml", "--ros-args", "--params-file", "b.yaml"]
    assert params_file_arguments(argv) == ["a.yaml", "b.yaml"]


@needs_ros
def test_nodes_refuse_unknown_overrides_and_keep_their_descriptors():
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from spatial_vlm_ros.ros.perception_node import SpatialPerceptionNode
    from spatial_vlm_ros.ros.vlm_node import SpatialVLMNode

    if not rclpy.ok():
        rclpy.init()
    node = SpatialPerceptionNode(namespace="overrides", parameter_overrides=[
        Parameter("autostart", value=False), Parameter("frame_worker", value="thread"),
        Parameter("sync.slop_s", value=0.05), Parameter("sync.slopp_s", value=0.05)])
    try:
        assert node.get_parameter("sync.slop_s").value == 0.05          # a known override still applies...
        assert node.describe_parameter("sync.slop_s").read_only          # ...declared with its descriptor
        assert not node.has_parameter("sync.slopp_s")
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE and node.frames is None
        assert "sync.slopp_s: unknown parameter (closest: sync.slop_s)" in node.transition_error
    finally:
        node.destroy_node()
    vlm = SpatialVLMNode(namespace="overrides", parameter_overrides=[
        Parameter("autostart", value=False), Parameter("max_new_token", value=3)])
    try:
        assert vlm.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "parameter max_new_token: unknown parameter (closest: max_new_tokens)" in vlm.transition_error
        assert vlm.worker is None
    finally:
        vlm.destroy_node()


@needs_ros
def test_perception_inputs_are_named_after_remapping():
    import rclpy
    from rclpy.parameter import Parameter

    from spatial_vlm_ros.ros.perception_node import SpatialPerceptionNode

    if not rclpy.ok():
        rclpy.init()
    node = SpatialPerceptionNode(namespace="remapped",
                                 cli_args=["--ros-args", "-r", "/camera/color/image_raw:=/cam/rgb"],
                                 parameter_overrides=[Parameter("frame_worker", value="thread")])
    try:
        subscribed = dict(zip(node.frames.slots, (s.topic_name for s in node.frames._subscriptions)))
        assert subscribed["color"] == "/cam/rgb" and subscribed["depth"] == "/camera/aligned_depth_to_color/image_raw"
        assert "/cam/rgb" in node.frames.status_values()["inputs_without_publisher"]
        assert "/camera/color/image_raw" not in node.frames.status_values()["inputs_without_publisher"]
    finally:
        node.destroy_node()


def _executable(name):
    path = shutil.which(name)
    if not ROS or path is None:
        pytest.skip(f"{name} is not on PATH (scripts/ros_env.sh after `make install`)")
    return path


def test_unknown_override_exits_2_with_one_line():
    exe = _executable("perception_node")
    proc = subprocess.run([exe, "--ros-args", "-p", "no_such_param:=1", "-p", "frame_worker:=thread"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "no_such_param: unknown parameter" in lines[0]


def test_params_file_for_another_node_name_is_warned_and_topics_are_resolved(tmp_path):
    exe = _executable("vlm_node")
    params = tmp_path / "vlm.yaml"
    params.write_text("/**/spatial_vlm:\n  ros__parameters:\n    max_objects: 4\n")
    proc = subprocess.Popen([exe, "--ros-args", "--params-file", str(params), "-r", "__node:=renamed_vlm",
                             "-r", "/camera/color/image_raw:=/cam/rgb"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not any("image /cam/rgb" in line for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    warning = [line for line in lines if "has no section" in line]
    assert warning and str(params) in warning[0] and "/renamed_vlm" in warning[0], lines
    assert any("image /cam/rgb" in line for line in lines), lines
