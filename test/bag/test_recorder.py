"""Recording a live graph to a bag with rclpy + rosbags, and reading it back exactly.

ROS test: run through ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/bag``.
"""
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("spatial_vlm_interfaces.msg", reason="run under scripts/ros_env.sh (needs install/)")

from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from spatial_vlm_interfaces.msg import InstanceSegmentation  # noqa: E402
from spatial_vlm_ros.bag.reader import BagReader  # noqa: E402
from spatial_vlm_ros.bag.recorder import BagRecorder  # noqa: E402
from spatial_vlm_ros.core.errors import InputError  # noqa: E402

W, H, N = 160, 120, 10
COLOR, INSTANCES = "/camera/color/image_raw", "/camera/instances"


def _image(pixels: np.ndarray, stamp_ns: int) -> Image:
    msg = Image(height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.header.frame_id = "cam"
    msg.data = pixels.tobytes()
    return msg


def _instances(stamp_ns: int) -> InstanceSegmentation:
    msg = InstanceSegmentation()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.mask = Image(height=H, width=W, encoding="mono8", step=W, data=bytes(W * H))
    msg.ids, msg.labels, msg.scores = [1, 2], ["mug", "bowl"], [0.9, 0.8]
    return msg


def test_records_selected_topics_exactly(tmp_path):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(N)]
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("camera", context=context)
    try:
        pub_img = node.create_publisher(Image, COLOR, qos_profile_sensor_data)
        pub_inst = node.create_publisher(InstanceSegmentation, INSTANCES, 10)       # reliable
        node.create_publisher(Image, "/camera/not_recorded", 10)
        recorder = BagRecorder(tmp_path / "rec", [COLOR, INSTANCES], storage="sqlite3", max_messages=2 * N,
                               verbose=False)
        thread = threading.Thread(target=recorder.run)
        thread.start()
        assert recorder.wait_until_recording(10.0)
        deadline = time.monotonic() + 10.0
        while (pub_img.get_subscription_count() < 1 or pub_inst.get_subscription_count() < 1) \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        for i, pixels in enumerate(images):
            stamp = 5 * 10**9 + i * 50_000_000
            pub_img.publish(_image(pixels, stamp))
            pub_inst.publish(_instances(stamp))
            time.sleep(0.05)
        thread.join(timeout=10.0)
        if thread.is_alive():
            recorder.stop()
            thread.join()
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert recorder.counts == {COLOR: N, INSTANCES: N}
    with BagReader(tmp_path / "rec") as reader:
        assert set(reader.topics) == {COLOR, INSTANCES}
        frames = reader.frames()
    assert len(frames) == N
    for f, pixels in zip(frames, images):
        assert np.array_equal(f.rgb, pixels)
        assert f.labels == ["mug", "bowl"] and f.ids == [1, 2] and f.scores == pytest.approx([0.9, 0.8])


def test_missing_topic_and_bad_arguments(tmp_path):
    recorder = BagRecorder(tmp_path / "none", ["/nobody/publishes/this"], discovery_timeout_s=0.5, verbose=False)
    with pytest.raises(InputError, match="no publisher"):
        recorder.run()
    assert not (tmp_path / "none").exists()
    with pytest.raises(InputError, match="storage"):
        BagRecorder(tmp_path / "x", [COLOR], storage="bag1")
    with pytest.raises(InputError, match="at least one topic"):
        BagRecorder(tmp_path / "x", [])
