"""Service round-trip latency of the spatial_perception node (p50/p95/p99 over 1000 calls per service).

Starts the node as its own process from config/perception.yaml (``python -m spatial_vlm_ros.ros.run``),
fills its memory with a 640x480 analytic tabletop of 10 objects published over DDS (external masks), then
times ``get_relation``, ``measure`` and ``ask`` round trips from an rclpy client in this process:
- idle: no frames arriving;
- loaded: frames published at each of --rates Hz the whole time, so the node processes frames while
  answering (the calls are back to back: a worst case for a 2-core machine).
The target is a p99 under 10 ms.

    SVR_ISOLATE=1 scripts/ros_env.sh python benchmarks/bench_services.py [--calls 1000] [--rates 5 15]
"""
from __future__ import annotations

import argparse
import itertools
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from spatial_vlm_interfaces.msg import InstanceSegmentation, SpatialObjectArray
from spatial_vlm_interfaces.srv import Ask, GetRelation, ListObjects, Measure
from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.ros import conversions as conv
from spatial_vlm_ros.ros.qos import output_qos, sensor_qos
from spatial_vlm_ros.sim import analytic

ROOT = Path(__file__).resolve().parents[1]
NS = "/bench/spatial_perception"
TARGET_P99_MS = 10.0
TOPICS = {"color": "/camera/color/image_raw", "depth": "/camera/aligned_depth_to_color/image_raw",
          "camera_info": "/camera/color/camera_info", "instances": "/camera/instances"}
RELATIONS = ["left_of", "right_of", "in_front_of", "behind", "closer_to_camera", "above", "on_top_of",
             "higher_than", "taller_than", "bigger_than", "wider_than", "next_to"]
QUANTITIES = ["distance", "gap", "horizontal_distance", "vertical_distance"]
UNARY = ["width", "height", "depth", "distance_to_camera"]


def scene_messages(scene: analytic.AnalyticFrame, stamp_s: float) -> dict:
    stamp = conv.seconds_to_stamp(stamp_s)
    info = conv.camera_info_from_model(scene.camera, stamp)
    return {"color": conv.array_to_image(scene.rgb, "rgb8", stamp, scene.camera.frame_id),
            "depth": conv.array_to_image(encode_depth_mm(scene.depth), "16UC1", stamp, scene.camera.frame_id),
            "camera_info": info,
            "instances": conv.segmentation_to_msg(scene.mask, scene.ids, scene.labels, None, stamp,
                                                  scene.camera.frame_id)}


class Client:
    """Publishers, an objects subscription and service clients, spun by an executor in a thread."""

    def __init__(self):
        self.node = Node("bench_client")
        types = {"color": Image, "depth": Image, "camera_info": CameraInfo, "instances": InstanceSegmentation}
        self.pubs = {k: self.node.create_publisher(types[k], t, sensor_qos(10)) for k, t in TOPICS.items()}
        self.objects_msgs = 0
        self.node.create_subscription(SpatialObjectArray, f"{NS}/objects", self._on_objects, output_qos())
        self.clients = {name: self.node.create_client(srv, f"{NS}/{name}") for name, srv in
                        [("get_relation", GetRelation), ("measure", Measure), ("ask", Ask),
                         ("list_objects", ListObjects)]}
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=False)
        self.thread.start()

    def _on_objects(self, _msg) -> None:
        self.objects_msgs += 1

    def call(self, name: str, request, timeout: float = 5.0):
        future = self.clients[name].call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f"{name}: no answer within {timeout} s")
        return future.result()

    def publish(self, msgs: dict) -> None:
        for key, msg in msgs.items():
            self.pubs[key].publish(msg)

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join()
        self.node.destroy_node()


def requests(labels: list[str]):
    """Endless round-robin of varied, valid requests per service."""
    pairs = [(a, b) for a, b in itertools.permutations(labels, 2)]
    rel = (GetRelation.Request(subject=a, relation=r, reference=b)
           for (a, b), r in zip(itertools.cycle(pairs), itertools.cycle(RELATIONS)))
    mea = (Measure.Request(quantity=q, subject=a, reference=b if q in QUANTITIES else "")
           for (a, b), q in zip(itertools.cycle(pairs), itertools.cycle(QUANTITIES + UNARY)))
    templates = ["Is the {a} to the left of the {b}?", "How far apart are the {a} and the {b}?",
                 "Which is taller, the {a} or the {b}?", "How tall is the {a}?",
                 "Is the {a} closer to the camera than the {b}?"]
    ask = (Ask.Request(question=t.format(a=a, b=b))
           for (a, b), t in zip(itertools.cycle(pairs), itertools.cycle(templates)))
    return {"get_relation": rel, "measure": mea, "ask": ask}


def time_calls(client: Client, name: str, gen, n: int) -> tuple[np.ndarray, int]:
    lat, failures = np.empty(n), 0
    for i in range(n):
        req = next(gen)
        t0 = time.perf_counter()
        res = client.call(name, req)
        lat[i] = (time.perf_counter() - t0) * 1e3
        failures += not res.success
    return lat, failures


class FrameLoad:
    """Publishes the scene at ``rate_hz`` from a thread (messages built once, only stamps change)."""

    def __init__(self, client: Client, scene, rate_hz: float, stamp: float):
        self.client, self.rate_hz, self.stamp = client, rate_hz, stamp
        self.template = scene_messages(scene, stamp)
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=False)

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic()
        while not self._stop.is_set():
            stamp = conv.seconds_to_stamp(self.stamp)
            for msg in self.template.values():
                msg.header.stamp = stamp
            self.client.publish(self.template)
            self.stamp += period
            self.published += 1
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def __enter__(self) -> FrameLoad:
        self._thread.start()
        time.sleep(1.0)                                    # let the node reach its steady state
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def populate(client: Client, scene, stamp: float) -> list[str]:
    """Publish frames until the node's memory holds every instance; returns the object labels."""
    known = []
    for k in range(50):
        client.publish(scene_messages(scene, stamp + 0.1 * k))
        time.sleep(0.1)
        known = client.call("list_objects", ListObjects.Request()).objects
        if len(known) == len(scene.ids):
            break
    return sorted(o.label for o in known)


def print_table(rows, calls: int) -> None:
    print(f"\nservice round trips, {calls} calls each (rclpy client -> node process), ms")
    print(f"{'service':<14}{'condition':<26}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'fail':>6}{'p99/10ms':>10}")
    for name, condition, lat, fails in rows:
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        print(f"{name:<14}{condition:<26}{p50:8.2f}{p95:8.2f}{p99:8.2f}{lat.max():8.2f}{fails:6d}"
              f"{p99 / TARGET_P99_MS:10.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per service and condition")
    parser.add_argument("--rates", type=float, nargs="*", default=[15.0],
                        help="frame rates of the loaded phases, Hz")
    parser.add_argument("--objects", type=int, default=10)
    args = parser.parse_args()

    objects = analytic.random_tabletop(args.objects, seed=3)
    objects = [type(o)(**{**o.__dict__, "label": f"object{k}"}) for k, o in enumerate(objects)]
    scene = analytic.render(objects, pose=analytic.CameraPose(height=0.7, pitch_deg=45.0, distance=0.8))

    node = subprocess.Popen(
        [sys.executable, "-m", "spatial_vlm_ros.ros.run", "--params", "config/perception.yaml", "--namespace",
         "bench", "--detector", "external", "--ros-args", "-p", "memory.timeout_s:=3600.0", "--log-level",
         "warn"], cwd=ROOT)
    rclpy.init()
    client = Client()
    rows, notes = [], []
    try:
        for c in client.clients.values():
            if not c.wait_for_service(timeout_sec=30.0):
                raise RuntimeError("the node did not come up")
        while not all(p.get_subscription_count() for p in client.pubs.values()):
            time.sleep(0.05)
        labels = populate(client, scene, 1000.0)
        print(f"memory holds {len(labels)} objects (640x480 frame, {len(scene.ids)} instances)")
        gens = requests(labels)
        for name, gen in gens.items():
            time_calls(client, name, gen, 50)                                  # warm-up
        for name, gen in gens.items():
            rows.append((name, "idle", *time_calls(client, name, gen, args.calls)))
        stamp = 2000.0
        for rate in args.rates:
            with FrameLoad(client, scene, rate, stamp) as load:
                t0, outputs = time.monotonic(), client.objects_msgs
                for name, gen in gens.items():
                    rows.append((name, f"frames at {rate:g} Hz", *time_calls(client, name, gen, args.calls)))
                processed = (client.objects_msgs - outputs) / (time.monotonic() - t0)
            stamp = load.stamp + 10.0
            notes.append(f"at {rate:g} Hz the node processed {processed:.1f} frames/s while answering "
                         f"(newer frames replace stale ones)")
        print_table(rows, args.calls)
        print("\n".join(notes))
    finally:
        client.close()
        rclpy.try_shutdown()
        node_rc = interrupt(node, 15.0)
        print(f"node process exit code {node_rc}")
    return 1 if any(fails for *_, fails in rows) or node_rc != 0 else 0


def interrupt(proc: subprocess.Popen, timeout_s: float):
    """Ctrl-C ``proc`` and wait for it: its exit code, or a sentence when it had to be killed."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return f"killed after {timeout_s:g} s without exiting ({proc.wait()})"


if __name__ == "__main__":
    raise SystemExit(main())
