"""Bag replay with rclpy: recorded 30 Hz timing, rate factor, start offset, loop, exact payloads.

ROS test: run through ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/bag``.
"""
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("spatial_vlm_interfaces.msg", reason="run under scripts/ros_env.sh (needs install/)")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from spatial_vlm_interfaces.msg import Detections2D, InstanceSegmentation  # noqa: E402
from spatial_vlm_ros.bag.player import BagPlayer  # noqa: E402
from spatial_vlm_ros.bag.writer import write_bag  # noqa: E402
from spatial_vlm_ros.core.errors import InputError  # noqa: E402
from spatial_vlm_ros.sim.dataset import Frame, SceneRecord  # noqa: E402

W, H, N = 320, 240, 30
PERIOD_MS = 1000.0 / 30.0
T0 = 1_700_000_000 * 10**9


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    rng = np.random.default_rng(0)
    info = {"width": W, "height": H, "k": [250.0, 0, 159.5, 0, 250.0, 119.5, 0, 0, 1], "d": [0.0] * 5,
            "distortion_model": "plumb_bob", "frame_id": "cam"}
    frames = [Frame(T0 + round(i * 1e9 / 30), rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
                    rng.integers(0, 5000, (H, W), dtype=np.uint16), np.zeros((H, W), np.uint16), [], [], info)
              for i in range(N)]
    path = write_bag([SceneRecord("s", frames)], tmp_path_factory.mktemp("bags") / "bag")
    return path, frames


class Listener:
    """A subscriber node in its own context, spinning in a thread; records arrival times."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("listener", context=self.context)
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.color: list[tuple[float, Image]] = []
        self.counts = {"depth": 0, "info": 0, "instances": 0, "detections": 0}
        self.node.create_subscription(Image, "/camera/color/image_raw",
                                      lambda m: self.color.append((time.monotonic(), m)), qos)
        self.node.create_subscription(Image, "/camera/aligned_depth_to_color/image_raw",
                                      lambda m: self._count("depth"), qos)
        self.node.create_subscription(CameraInfo, "/camera/color/camera_info", lambda m: self._count("info"), qos)
        self.node.create_subscription(InstanceSegmentation, "/camera/instances",
                                      lambda m: self._count("instances"), qos)
        self.node.create_subscription(Detections2D, "/camera/detections", lambda m: self._count("detections"),
                                      qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin)
        self.thread.start()

    def _count(self, key):
        self.counts[key] += 1

    def period_ms(self):
        """Mean inter-arrival time (ms) as the slope of arrival time against message index: the least-squares
        fit keeps one late delivery on a loaded machine from dominating, unlike first-to-last."""
        t = np.array([a for a, _ in self.color])
        return float(np.polyfit(np.arange(t.size), t, 1)[0] * 1000.0)

    def wait_for(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.color) < n and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self):
        self.executor.shutdown()
        self.thread.join()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def listener():
    li = Listener()
    yield li
    li.close()


def _play(player):
    assert player.run() == 0
    return player.stats


def test_replays_every_message_at_recorded_30hz(bag, listener):
    path, frames = bag
    stats = _play(BagPlayer(path, verbose=False))
    listener.wait_for(N)
    time.sleep(0.2)
    assert stats.published == {t: N for t in stats.published} and stats.failed == 0
    assert len(listener.color) == N and listener.counts == {"depth": N, "info": N, "instances": N,
                                                           "detections": N}
    assert listener.period_ms() == pytest.approx(PERIOD_MS, abs=2.5)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in listener.color]
    assert stamps == [f.stamp_ns for f in frames]                        # recorded header stamps, in order
    first = listener.color[0][1]
    assert bytes(first.data) == frames[0].rgb.tobytes() and first.encoding == "rgb8"


def test_rate_factor_and_start_offset(bag, listener):
    path, frames = bag
    _play(BagPlayer(path, rate=2.0, start_offset=0.5, verbose=False))
    listener.wait_for(N // 2)
    time.sleep(0.2)
    expected = [f.stamp_ns for f in frames if f.stamp_ns >= T0 + 500_000_000]
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in listener.color]
    assert stamps == expected
    assert listener.period_ms() == pytest.approx(PERIOD_MS / 2.0, abs=2.5)


def test_loop_until_stopped(bag, listener):
    path, _ = bag
    player = BagPlayer(path, loop=True, rate=4.0, verbose=False)
    thread = threading.Thread(target=player.run)
    thread.start()
    listener.wait_for(N + 10, timeout=10.0)
    player.stop()
    thread.join(timeout=5.0)
    assert not thread.is_alive()
    assert len(listener.color) >= N + 10 and player.stats.loops >= 1


def test_bad_arguments(bag):
    path, _ = bag
    with pytest.raises(InputError, match="rate"):
        BagPlayer(path, rate=0.0)
    with pytest.raises(InputError, match="no topic"):
        BagPlayer(path, topics=["/not/in/bag"])
    with pytest.raises(InputError, match="past the end"):
        BagPlayer(path, start_offset=60.0, verbose=False).run()


def test_hooks_can_pause_and_restart_the_schedule(bag, listener):
    path, frames = bag
    pause_at = frames[10].stamp_ns

    class Pausing(BagPlayer):
        published = 0

        def before_publish(self, message):
            if message.topic == "/camera/color/image_raw" and message.log_time_ns == pause_at:
                time.sleep(0.4)
                return True
            return False

        def after_publish(self, message):
            Pausing.published += 1

    _play(Pausing(path, verbose=False))
    listener.wait_for(N)
    time.sleep(0.2)
    assert len(listener.color) == N and Pausing.published == 5 * N
    t = np.array([a for a, _ in listener.color])
    gaps = np.diff(t) * 1000.0
    assert gaps[9] > 350.0                                         # the pause before frame 10
    assert np.median(np.r_[gaps[:9], gaps[10:]]) == pytest.approx(PERIOD_MS, abs=3.0)   # then 30 Hz again
