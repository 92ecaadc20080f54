"""Integration: the tabletop detector end to end, and the node started as a process from the parameter file
(``python -m spatial_vlm_ros.ros.run``) with a clean Ctrl-C shutdown (exit code 0)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from ros_harness import NodeHarness, default_scene, frame_messages, stop_process, wait_until

from spatial_vlm_interfaces.srv import Ask, ListObjects
from spatial_vlm_ros.ros.qos import sensor_qos

ROOT = Path(__file__).resolve().parents[2]
SCENE = default_scene()
COLORS = {"box": "red", "mug": "blue", "book": "green"}


@pytest.fixture(scope="module", autouse=True)
def ros():
    if not rclpy.ok():
        rclpy.init()
    yield


def test_tabletop_detector_finds_and_names_the_objects():
    overrides = {"detector": "tabletop", "memory.timeout_s": 600.0}
    with NodeHarness(overrides, namespace="tt", with_instances=False) as h:
        assert "instances" not in h.node.slots
        for k in range(2):
            assert h.publish_and_wait(frame_messages(SCENE, 10.0 + 0.1 * k))
        objects = h.call(ListObjects, "list_objects").objects
        assert sorted(o.label for o in objects) == ["blue object", "green object", "red object"]
        for truth in SCENE.objects:
            obj = next(o for o in objects if o.label == f"{COLORS[truth.label]} object")
            assert abs(obj.center.x - truth.center_c[0]) < 0.015 and abs(obj.center.z - truth.center_c[2]) < 0.02
        res = h.call(Ask, "ask", question="Is the red object to the left of the blue object?")
        assert res.success and res.kind == "yes_no" and res.yes


def _run(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "spatial_vlm_ros.ros.run", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_invalid_parameter_file_fails_before_ros_starts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    sync: {slop_s: 1}\n    detecter: tabletop\n")
    out = _run("--params", str(bad))
    assert out.returncode == 2
    assert "sync.slop_s: expected a float" in out.stderr and "detecter: unknown parameter" in out.stderr


def test_node_process_from_parameter_file_answers_and_exits_cleanly():
    proc = subprocess.Popen([sys.executable, "-m", "spatial_vlm_ros.ros.run", "--params",
                             "config/perception.yaml", "--namespace", "proc", "--detector", "tabletop"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tester = Node("run_tester")
    executor = SingleThreadedExecutor()
    executor.add_node(tester)
    try:
        client = tester.create_client(ListObjects, "/proc/spatial_perception/list_objects")
        assert client.wait_for_service(timeout_sec=20.0), "the node process did not come up"
        msgs = frame_messages(SCENE, 50.0)
        pubs = {slot: tester.create_publisher(type(msg), topic, sensor_qos(10)) for (slot, msg), topic in zip(
            msgs.items(), ["/camera/color/image_raw", "/camera/aligned_depth_to_color/image_raw",
                           "/camera/color/camera_info", "/camera/instances"]) if slot != "instances"}
        assert wait_until(lambda: all(p.get_subscription_count() >= 1 for p in pubs.values()), 10.0)

        def objects():
            future = client.call_async(ListObjects.Request())
            executor.spin_until_future_complete(future, timeout_sec=5.0)
            return future.result().objects

        for k in range(20):                                      # best effort: publish until seen
            msgs = frame_messages(SCENE, 50.0 + 0.1 * k)
            for slot, msg in msgs.items():
                if slot in pubs:
                    pubs[slot].publish(msg)
            time.sleep(0.2)
            if len(objects()) == 3:
                break
        assert sorted(o.label for o in objects()) == ["blue object", "green object", "red object"]
    finally:
        tester.destroy_node()
        executor.shutdown()
        _, err = stop_process(proc, signal.SIGINT, 15.0)
    assert proc.returncode == 0, err
    assert "terminate called" not in err and "Traceback" not in err


def test_entry_point_rejects_bad_parameters_with_exit_code_2():
    out = subprocess.run([sys.executable, "-m", "spatial_vlm_ros.ros.perception_node", "--ros-args", "-p",
                          "detector:=yolo"], cwd=ROOT, capture_output=True, text=True, timeout=30,
                         env=dict(os.environ))
    assert out.returncode == 2
    assert "'yolo' is not one of external, tabletop" in out.stderr + out.stdout


@pytest.mark.parametrize("worker", ["process", "thread"])
def test_objects_expire_when_the_camera_stops(worker):
    # the memory expires on its own timer: a diagnostics period far above the timeout does not delay it (the
    # harness waits for the first status, so the frame comes just after a diagnostics check)
    overrides = {"memory.timeout_s": 0.5, "diagnostics_period_s": 6.0, "frame_worker": worker}
    with NodeHarness(overrides, namespace=f"expiry_{worker}") as h:
        assert h.publish_and_wait(frame_messages(SCENE, 20.0))
        assert len(h.call(ListObjects, "list_objects").objects) == 3
        assert wait_until(lambda: not h.call(ListObjects, "list_objects").objects, 2.5)
        assert wait_until(lambda: h.objects and not h.objects[-1].objects, 2.0)   # the empty scene is published
