"""``spatial_vlm bag record`` stopped by SIGTERM / SIGHUP (docker stop, systemd, a closed terminal, a launch
shutdown) closes its bag as Ctrl-C does: a readable MCAP with metadata, every message in it, exit code 0.

A real recording subprocess is started and killed. ROS test: run through
``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/bag/test_recorder_signals.py``.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("spatial_vlm_interfaces.msg", reason="run under scripts/ros_env.sh (needs install/)")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from std_msgs.msg import String  # noqa: E402

TOPIC, N = "/recorder_signal_test", 20


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_signal_closes_the_bag(tmp_path, signum):
    bag = tmp_path / "rec"
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("signal_test_talker", context=context)
    proc = None
    try:
        pub = node.create_publisher(String, TOPIC, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        proc = subprocess.Popen([sys.executable, "-m", "spatial_vlm_ros.cli", "bag", "record", str(bag),
                                 "--topics", TOPIC, "--storage", "mcap"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert _wait(lambda: pub.get_subscription_count() >= 1 or proc.poll() is not None, 60.0), \
            "the recorder never subscribed"
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.5)                                       # the recorder's subscription matches ours
        for i in range(N):
            pub.publish(String(data=f"message {i}"))
            time.sleep(0.02)
        time.sleep(1.0)                                       # delivered before the signal
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=30.0)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert proc.returncode == 0, out
    assert f"wrote {N} messages" in out, out
    assert (bag / "metadata.yaml").is_file()
    with AnyReader([bag]) as reader:
        assert [c.topic for c in reader.connections] == [TOPIC]
        assert reader.message_count == N
        texts = [reader.deserialize(raw, conn.msgtype).data for conn, _, raw in reader.messages()]
    assert texts == [f"message {i}" for i in range(N)]
