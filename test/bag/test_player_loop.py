"""``bag play --loop`` shifts the header stamps of each pass forwards (span + one frame period), so a looped
bag's time runs forwards; the CDR patching itself is checked without ROS.

ROS test (the replay part): run through ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/bag``.
"""
import threading
import time

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from spatial_vlm_ros.bag.loop_stamps import PassRestamper, header_first, read_stamp_ns, shift_stamp
from spatial_vlm_ros.bag.reader import RawMessage

STORE = get_typestore(Stores.ROS2_KILTED)
N, PERIOD_NS = 12, round(1e9 / 30)
T0 = 1_700_000_000 * 10**9 + 999_000_000            # near a second boundary: shifts carry into sec


def _info_cdr(stamp_ns: int, little=True) -> bytes:
    T = STORE.types
    sec, nsec = divmod(stamp_ns, 10**9)
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                                      frame_id="cam")
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    msg = T["sensor_msgs/msg/CameraInfo"](header=header, height=48, width=64, distortion_model="plumb_bob",
                                          d=np.zeros(5), k=np.eye(3).ravel(), r=np.eye(3).ravel(),
                                          p=np.zeros(12), binning_x=0, binning_y=0, roi=roi)
    if little:
        return bytes(STORE.serialize_cdr(msg, "sensor_msgs/msg/CameraInfo"))
    return bytes(STORE.serialize_cdr(msg, "sensor_msgs/msg/CameraInfo", little_endian=False))


@pytest.mark.parametrize("little", [True, False])
def test_shift_stamp_patches_only_the_header_stamp(little):
    data = _info_cdr(T0, little)
    shifted = shift_stamp(data, 5 * PERIOD_NS)
    msg = STORE.deserialize_cdr(shifted, "sensor_msgs/msg/CameraInfo")
    assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == T0 + 5 * PERIOD_NS
    assert msg.header.frame_id == "cam" and msg.width == 64 and msg.height == 48
    assert read_stamp_ns(shifted) == T0 + 5 * PERIOD_NS and read_stamp_ns(data) == T0
    assert len(shifted) == len(data) and shifted[12:] == data[12:]
    assert shift_stamp(data, 0) == data and shift_stamp(b"\x00\x01", 7) == b"\x00\x01"


def test_header_first_types():
    assert header_first(STORE, "sensor_msgs/msg/Image") and header_first(STORE, "sensor_msgs/msg/CameraInfo")
    assert not header_first(STORE, "std_msgs/msg/String")
    assert not header_first(STORE, "no_such_pkg/msg/Thing")


def test_passes_follow_each_other_by_one_frame_period():
    topics = {"/info": "sensor_msgs/msg/CameraInfo", "/chatter": "std_msgs/msg/String"}
    restamp = PassRestamper(topics, STORE)
    chatter = RawMessage("/chatter", "std_msgs/msg/String", 0, b"\x00\x01\x00\x00abcdefgh")
    published = []
    for _ in range(3):
        for i in range(N):
            info = _info_cdr(T0 + i * PERIOD_NS)
            m = restamp.apply(RawMessage("/info", "sensor_msgs/msg/CameraInfo", T0 + i, info))
            published.append(read_stamp_ns(m.data))
            assert restamp.apply(chatter) is chatter                 # no header: unchanged
        restamp.next_pass()
    published = np.array(published)
    assert np.all(np.diff(published) == PERIOD_NS)                   # one 30 Hz clock across 3 passes
    assert restamp.step_ns == N * PERIOD_NS


def test_looped_replay_runs_forwards(tmp_path):
    rclpy = pytest.importorskip("rclpy")
    pytest.importorskip("spatial_vlm_interfaces.msg", reason="run under scripts/ros_env.sh (needs install/)")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from spatial_vlm_ros.bag.player import BagPlayer
    from spatial_vlm_ros.bag.writer import write_bag
    from spatial_vlm_ros.sim.dataset import Frame, SceneRecord

    W, H = 64, 48
    rng = np.random.default_rng(0)
    info = {"width": W, "height": H, "k": [60.0, 0, 31.5, 0, 60.0, 23.5, 0, 0, 1], "d": [0.0] * 5,
            "distortion_model": "plumb_bob", "frame_id": "cam"}
    stamps = [T0 + i * PERIOD_NS for i in range(N)]
    frames = [Frame(s, rng.integers(0, 256, (H, W, 3), dtype=np.uint8), rng.integers(0, 5000, (H, W), np.uint16),
                    np.zeros((H, W), np.uint16), [], [], info) for s in stamps]
    path = write_bag([SceneRecord("s", frames)], tmp_path / "bag")

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("loop_listener", context=context)
    received = {"color": [], "info": []}
    lock = threading.Lock()

    def keep(key):
        def cb(msg):
            with lock:
                received[key].append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
        return cb
    qos = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, "/camera/color/image_raw", keep("color"), qos)
    node.create_subscription(CameraInfo, "/camera/color/camera_info", keep("info"), qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin)
    spin.start()
    player = BagPlayer(path, loop=True, rate=4.0, verbose=False, wait_timeout_s=10.0)
    thread = threading.Thread(target=player.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            with lock:
                if len(received["color"]) >= 3 * N and len(received["info"]) >= 3 * N:
                    break
            time.sleep(0.05)
    finally:
        player.stop()
        thread.join(timeout=10.0)
        executor.shutdown()
        spin.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert not thread.is_alive()
    for key in ("color", "info"):
        got = np.array(received[key][:3 * N])
        assert got.size == 3 * N, (key, got.size)
        assert np.all(np.diff(got) > 0), key                        # time runs forwards across passes
        step = (stamps[-1] - stamps[0]) + PERIOD_NS
        expected = np.array([s + k * step for k in range(3) for s in stamps])
        np.testing.assert_array_equal(got, expected)
