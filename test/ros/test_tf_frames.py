"""TF support of the perception node (ros.tf_frames) without tf2: the settings check, TransformStamped
conversions, ``TfGravity`` inside the frame pipeline, and the gravity-frame broadcast fallbacks."""
import numpy as np
import pytest
from builtin_interfaces.msg import Time

from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Frame, Segmentation
from spatial_vlm_ros.core.transforms import RigidTransform
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig
from spatial_vlm_ros.ros import tf_frames
from spatial_vlm_ros.sim import analytic

SCENE = analytic.render([analytic.BoxObject("box", (-0.1, 0.0), (0.10, 0.10, 0.16), color=(210, 35, 35)),
                         analytic.BoxObject("book", (0.12, 0.1), (0.20, 0.14, 0.05), color=(35, 160, 50))],
                        camera=analytic.default_camera(320, 240))


def _frame(stamp):
    return Frame(rgb=SCENE.rgb, depth=encode_depth_mm(SCENE.depth), depth_encoding="16UC1", camera=SCENE.camera,
                 stamp=stamp, segmentation=Segmentation(SCENE.mask, SCENE.ids, SCENE.labels, [1.0] * len(SCENE.ids)))


def test_settings_check():
    tf_frames.check_tf_settings("", "plane", tf2_installed=False)
    tf_frames.check_tf_settings("base_link", "tf", tf2_installed=True)
    with pytest.raises(InputError, match="target_frame 'base_link' needs tf2_ros, which is not installed"):
        tf_frames.check_tf_settings("base_link", "plane", tf2_installed=False)
    with pytest.raises(InputError, match="gravity.mode 'tf' needs tf2_ros"):
        tf_frames.check_tf_settings("base_link", "tf", tf2_installed=False)
    with pytest.raises(InputError, match="set target_frame"):
        tf_frames.check_tf_settings("", "tf", tf2_installed=True)


def test_transform_stamped_round_trip():
    t = RigidTransform((0.1, -0.2, 0.3, 0.9), (1.0, 2.0, -0.5), "base_link", "camera_optical")
    msg = tf_frames.transform_to_msg(t, Time(sec=3, nanosec=5))
    assert (msg.header.frame_id, msg.child_frame_id, msg.header.stamp.sec) == ("base_link", "camera_optical", 3)
    back = tf_frames.transform_from_msg(msg)
    assert (back.frame_id, back.child_frame_id) == ("base_link", "camera_optical")
    np.testing.assert_allclose(back.matrix, t.matrix, atol=1e-12)


def test_tf_gravity_in_the_pipeline():
    pipeline = FramePipeline(PipelineConfig())
    gravity = pipeline.gravity = tf_frames.TfGravity("base_link")
    with pytest.raises(InputError, match="no transform to 'base_link'"):
        pipeline.process(_frame(1.0))
    assert pipeline.memory.snapshot().objects == () and gravity.current is None
    # base_link: z up (the scene's gravity frame rotated), so up comes out as the scene's true up
    gravity.set_transform(RigidTransform.from_matrix(SCENE.gravity.rotation, "base_link", "camera"))
    result = pipeline.process(_frame(2.0))
    assert (result.gravity.source, result.gravity.assumed) == ("tf", False)
    assert "base_link" in result.gravity.up_from and "base_link" in gravity.status
    np.testing.assert_allclose(result.gravity.up, SCENE.gravity.up, atol=1e-9)
    for obj in result.observations:
        truth = next(t for t in SCENE.objects if t.label == obj.label)
        assert np.allclose(obj.size, truth.size, atol=0.01), obj.label
    pipeline.reset()
    assert gravity.current is None


class _Node:
    """The node calls FrameTf makes without tf2 (publisher bookkeeping only)."""

    def __init__(self):
        self.publishers, self.destroyed = [], []

    def create_publisher(self, msg_type, topic, qos):
        self.publishers.append((msg_type, topic))
        return (msg_type, topic)

    def destroy_publisher(self, pub):
        self.destroyed.append(pub)


def test_frame_tf_without_a_target_frame_or_tf2():
    node, pipeline = _Node(), FramePipeline(PipelineConfig())
    frame_tf = tf_frames.FrameTf(node, pipeline, broadcast_gravity=True)
    assert frame_tf.before_frame(None) is None
    assert frame_tf.output_frame("cam_optical") == ("cam_optical", None)
    if tf_frames.tf2_ros is None and tf_frames.TFMessage is None:
        assert frame_tf.status_values()["gravity_frame_broadcast"] == tf_frames.NO_BROADCAST
        frame_tf.broadcast(SCENE.gravity, "cam_optical", Time())      # nothing to send with: no error
        assert node.publishers == []
    frame_tf.close()
    off = tf_frames.FrameTf(node, pipeline, broadcast_gravity=False)
    assert off.status_values() == {"target_frame": "(camera optical frame)",
                                   "gravity_frame_broadcast": "off (tf.broadcast_gravity)"}


def test_gravity_frame_on_tf_through_tf2_msgs(monkeypatch):
    sent = []

    class _Pub:
        publish = staticmethod(sent.append)

    class _TFMessage:
        def __init__(self, transforms):
            self.transforms = transforms

    node = _Node()
    node.create_publisher = lambda msg_type, topic, qos: node.publishers.append((msg_type, topic)) or _Pub()
    monkeypatch.setattr(tf_frames, "tf2_ros", None)
    monkeypatch.setattr(tf_frames, "TFMessage", _TFMessage)
    frame_tf = tf_frames.FrameTf(node, FramePipeline(PipelineConfig()))
    assert node.publishers == [(_TFMessage, "/tf")]
    frame_tf.broadcast(SCENE.gravity, "cam_optical", Time(sec=7))
    (msg,) = [t for m in sent for t in m.transforms]
    assert (msg.header.frame_id, msg.child_frame_id, msg.header.stamp.sec) == ("cam_optical", "cam_optical_gravity", 7)
    t = tf_frames.transform_from_msg(msg)
    pts_g = np.array([[0.0, 0.0, 1.0], [0.3, -0.2, 0.1]])
    np.testing.assert_allclose(t.apply(pts_g), SCENE.gravity.to_camera(pts_g), atol=1e-9)
    np.testing.assert_allclose(t.translation, 0.0)
