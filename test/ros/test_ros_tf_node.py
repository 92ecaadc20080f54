"""The real node: ``target_frame`` set where tf2_ros is not installed fails configure with the reason (the
node stays unconfigured and alive)."""
import pytest
import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from spatial_vlm_ros.ros import tf_frames
from spatial_vlm_ros.ros.perception_node import SpatialPerceptionNode


@pytest.fixture(scope="module", autouse=True)
def ros():
    if not rclpy.ok():
        rclpy.init()
    yield


@pytest.mark.parametrize("gravity_mode", ["plane", "tf"])
def test_target_frame_without_tf2_fails_configure(gravity_mode):
    if tf_frames.tf2_ros is not None:
        pytest.skip("tf2_ros is installed here: this configuration is valid")
    overrides = {"autostart": False, "frame_worker": "thread", "target_frame": "base_link",
                 "gravity.mode": gravity_mode}
    node = SpatialPerceptionNode(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
                                 namespace=f"tf_{gravity_mode}")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "needs tf2_ros, which is not installed" in node.transition_error
        assert ("gravity.mode 'tf'" if gravity_mode == "tf" else "target_frame 'base_link'") in node.transition_error
        assert node.frames is None and node.queries is None
    finally:
        node.destroy_node()
