"""Real-time benchmark of the spatial_perception node: a camera stream and planners' queries at once.

Starts the node as its own process (``python -m spatial_vlm_ros.ros.run --params config/perception.yaml``,
external masks or ``--detector tabletop``; ``--node-root`` runs another checkout's node), a camera process that
publishes an analytic tabletop (N objects, 640x480 or 1280x720; rgb8, 16UC1 mm depth, camera info, instance
masks) at ``--rate`` Hz over DDS with wall-clock capture stamps, and K planner client processes (each its own
rclpy context) that call get_relation / measure / list_objects back to back. Phases, ``--seconds`` each:

- ``frames``: frames only, no queries;
- ``idle Kc``: K clients, no frames (service round trips of an idle node);
- ``load Kc``: frames and K clients at once;
- ``soak`` (``--minutes M``): frames and the largest K for M minutes, node RSS every ~10 s.

Measured: frames published; processed % (frames whose capture stamp comes back on ``~/objects``, which the
node publishes after each processed frame with that frame's stamp when ``publish_rate_hz`` is 0) and
dropped % (the rest); frame latency (capture stamp -> ``~/objects`` message received here); service round
trips p50/p99 and their ratio to the same clients' idle p99; queries/s; scene age at answer (answer received
-> newest ``last_seen`` in the list_objects answer); CPU % (100 = one core) and RSS of the node's process
tree (children included), of the clients and of the camera; the machine's CPU busy %. Targets (issue 8):
frames processed >= 99 %, service p99 <= 5 ms and <= 2x idle, >= 1000 queries/s from 4 clients, scene age
p95 <= 2 frame periods, RSS growth after warm-up < 5 MB. Details: docs/realtime.md.

    SVR_ISOLATE=1 scripts/ros_env.sh python benchmarks/bench_realtime.py [--rate 30] [--objects 10]
        [--clients 1 4] [--resolution 640x480] [--seconds 10] [--minutes 0] [--node-root DIR] [--json FILE]
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NODE_NAMESPACE = "bench_rt"
NS = f"/{NODE_NAMESPACE}/spatial_perception"
CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
QUERY_MIX = ("get_relation", "measure", "get_relation", "measure", "list_objects")   # one cycle
CALL_TIMEOUT_S = 5.0
GRACE_S = 1.5             # after a phase: frames in flight land, the node's 1 s diagnostics catch up
SETTLE_S = 1.0            # frames before the clients start in a loaded phase
TARGETS = {"processed_pct": 99.0, "service_p99_ms": 5.0, "p99_vs_idle": 2.0, "queries_per_s": 1000.0,
           "scene_age_periods": 2.0, "soak_growth_mb": 5.0}


# ------------------------------------------------------------------------------------------ machine, /proc
def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model or platform.processor(), "python": platform.python_version(),
            "kernel": platform.release()}


def _proc_stat(pid: int):
    """(ppid, cpu seconds incl. reaped children, rss bytes) of one process, None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    ppid = int(fields[1])
    cpu = sum(int(x) for x in fields[11:15]) * CLOCK_TICK_S        # utime stime cutime cstime
    return ppid, cpu, int(fields[21]) * PAGE_BYTES


def _pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def tree_usage(pid: int, pss: bool = False) -> dict:
    """CPU seconds, RSS (and PSS) bytes summed over ``pid``'s process tree; ``processes``: how many."""
    cpu = rss = pss_total = 0
    tree = process_tree(pid)
    for p in tree:
        st = _proc_stat(p)
        if st is not None:
            cpu += st[1]
            rss += st[2]
            if pss:
                pss_total += _pss_bytes(p)
    return {"cpu_s": cpu, "rss": rss, "pss": pss_total, "processes": len(tree)}


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])
    return total - values[3] - values[4], total


class RssSampler:
    """Samples the node tree's RSS every ``period_s`` in a thread (peak per window, series for a soak)."""

    def __init__(self, pid: int, period_s: float = 1.0):
        self.pid, self.period_s = pid, period_s
        self.samples: list[tuple[float, int, int]] = []      # (monotonic, rss, pss)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            u = tree_usage(self.pid, pss=True)
            self.samples.append((time.monotonic(), u["rss"], u["pss"]))
            self._stop.wait(self.period_s)

    def window(self, t0: float, t1: float) -> list[tuple[float, int, int]]:
        return [s for s in self.samples if t0 <= s[0] <= t1]

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------------------------- child processes
def _stamp_msg(ns: int):
    from builtin_interfaces.msg import Time
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _scene(n_objects: int, width: int, height: int):
    from spatial_vlm_ros.sim import analytic
    objects = analytic.random_tabletop(n_objects, seed=3)
    objects = [type(o)(**{**o.__dict__, "label": f"object{k}"}) for k, o in enumerate(objects)]
    return analytic.render(objects, pose=analytic.CameraPose(height=0.7, pitch_deg=45.0, distance=0.8),
                           camera=analytic.default_camera(width, height))


def camera_main(conn, n_objects: int, width: int, height: int, with_masks: bool = True) -> None:
    """The camera process: publishes the scene (instance masks too with ``with_masks``) at the commanded rate,
    capture stamps = wall clock at publish.

    Commands on ``conn``: ("start", rate_hz) ... ("stop",) -> ("stopped", [stamp ns], late_frames); ("quit",).
    """
    import rclpy
    from bench_services import TOPICS, scene_messages
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image

    from spatial_vlm_interfaces.msg import InstanceSegmentation
    from spatial_vlm_ros.ros.qos import sensor_qos

    rclpy.init()
    node = Node("bench_camera")
    try:
        scene = _scene(n_objects, width, height)
        msgs = scene_messages(scene, 0.0)
        types = {"color": Image, "depth": Image, "camera_info": CameraInfo, "instances": InstanceSegmentation}
        slots = [k for k in TOPICS if with_masks or k != "instances"]
        msgs = {k: msgs[k] for k in slots}
        pubs = {k: node.create_publisher(types[k], TOPICS[k], sensor_qos(10)) for k in slots}
        order = [k for k in ["camera_info", "depth", "instances", "color"] if k in slots]
        deadline = time.monotonic() + 60.0
        while not all(p.get_subscription_count() for p in pubs.values()):
            if time.monotonic() > deadline:
                conn.send(("error", "the node's input subscriptions never matched the camera's publishers"))
                return
            time.sleep(0.05)
        conn.send(("ready", {"instances": len(scene.ids), "labels": sorted(scene.labels)}))
        while True:
            cmd = conn.recv()
            if cmd[0] == "quit":
                break
            period = 1.0 / float(cmd[1])
            stamps, late = [], 0
            next_t = time.monotonic()
            while True:
                if conn.poll(max(0.0, next_t - time.monotonic())):
                    conn.recv()                                                  # "stop"
                    break
                ns = time.time_ns()
                stamp = _stamp_msg(ns)
                for key in order:
                    msgs[key].header.stamp = stamp
                    pubs[key].publish(msgs[key])
                stamps.append(ns)
                next_t += period
                if time.monotonic() - next_t > period:       # a driver that cannot keep up skips frames
                    late += 1
                    next_t = time.monotonic()
            conn.send(("stopped", stamps, late))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _record_answer(name: str, res, failures: collections.Counter, ages: list[float]) -> None:
    """Count a failed answer under its message; a list_objects answer adds the scene age (ms)."""
    if not res.success:
        failures[f"{name}: {res.message[:160]}"] += 1
    if name == "list_objects" and res.objects:
        newest = max(o.last_seen.sec * 1_000_000_000 + o.last_seen.nanosec for o in res.objects)
        ages.append((time.time_ns() - newest) / 1e6)


def client_main(conn, index: int, labels: list[str], executor_kind: str) -> None:
    """A planner process: on ("run", start_wall_s, seconds) calls the query mix back to back, then sends
    ("result", {service: [round trip ms]}, Counter of failure messages, {service: timeouts}, [scene age ms]);
    ("quit",) ends it.
    A call unanswered after CALL_TIMEOUT_S counts as a timeout."""
    import rclpy
    from bench_services import requests
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from spatial_vlm_interfaces.srv import GetRelation, ListObjects, Measure

    rclpy.init()
    node = Node(f"bench_planner_{index}")
    if executor_kind == "events":
        from rclpy.experimental import EventsExecutor
        executor = EventsExecutor()
    else:
        executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        clients = {name: node.create_client(srv, f"{NS}/{name}") for name, srv in
                   [("get_relation", GetRelation), ("measure", Measure), ("list_objects", ListObjects)]}
        for c in clients.values():
            if not c.wait_for_service(timeout_sec=60.0):
                conn.send(("error", f"client {index}: service {c.srv_name} not available"))
                return
        gens = requests(labels)
        gens["list_objects"] = itertools.repeat(ListObjects.Request())
        rotation = itertools.cycle(QUERY_MIX[index % len(QUERY_MIX):] + QUERY_MIX[:index % len(QUERY_MIX)])
        conn.send(("ready", os.getpid()))
        while True:
            cmd = conn.recv()
            if cmd[0] == "quit":
                break
            _, start_wall, seconds = cmd
            time.sleep(max(0.0, start_wall - time.time()))
            lat = {name: [] for name in clients}
            ages, failures, timeouts = [], collections.Counter(), {name: 0 for name in clients}
            end = start_wall + seconds
            while time.time() < end:
                name = next(rotation)
                request = next(gens[name])
                t0 = time.perf_counter()
                future = clients[name].call_async(request)
                executor.spin_until_future_complete(future, timeout_sec=CALL_TIMEOUT_S)
                if not future.done():
                    timeouts[name] += 1
                    clients[name].remove_pending_request(future)
                    continue
                lat[name].append((time.perf_counter() - t0) * 1e3)
                _record_answer(name, future.result(), failures, ages)
            conn.send(("result", lat, failures, timeouts, ages))
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


# ------------------------------------------------------------------------------------ this process: monitor
class Monitor:
    """Subscribes ``~/objects`` (receive wall time, header stamp) and ``/diagnostics`` (the node's latest
    values); a list_objects client for populating the memory. Spun by an executor in a thread."""

    def __init__(self):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        from spatial_vlm_interfaces.msg import SpatialObjectArray
        from spatial_vlm_interfaces.srv import ListObjects
        from spatial_vlm_ros.ros.qos import diagnostics_qos, output_qos

        self.node = Node("bench_monitor")
        self.objects: list[tuple[int, int, int]] = []       # (receive ns, header stamp ns, objects)
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_t = 0.0
        self.node.create_subscription(SpatialObjectArray, f"{NS}/objects", self._on_objects, output_qos(100))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, diagnostics_qos())
        self.list_client = self.node.create_client(ListObjects, f"{NS}/list_objects")
        self._list_request = ListObjects.Request
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, name="monitor", daemon=False)
        self.thread.start()

    def _on_objects(self, msg) -> None:
        self.objects.append((time.time_ns(), msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec,
                             len(msg.objects)))

    def _on_diagnostics(self, msg) -> None:
        values = {}
        for status in msg.status:                       # every status of the node, merged
            if "spatial_perception" in status.name or "spatial_perception" in status.hardware_id:
                values.update({kv.key: kv.value for kv in status.values})
        if values:
            self.diagnostics = values
            self.diagnostics_t = time.monotonic()

    def list_objects(self):
        future = self.list_client.call_async(self._list_request())
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(CALL_TIMEOUT_S):
            self.list_client.remove_pending_request(future)
            return None
        return future.result().objects

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join()
        self.node.destroy_node()


# ------------------------------------------------------------------------------------------------ phases
def _pct(values, q) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _diag_delta(before: dict, after: dict, key: str) -> int | None:
    try:
        return int(after[key]) - int(before.get(key, 0))
    except (KeyError, ValueError):
        return None


class Bench:
    def __init__(self, args, node_pid: int, monitor: Monitor, camera, clients: list, rss: RssSampler):
        self.args, self.node_pid, self.monitor, self.camera, self.clients, self.rss = \
            args, node_pid, monitor, camera, clients, rss
        self.period_s = 1.0 / args.rate

    def _usage(self) -> dict:
        others = {"camera": self.camera["proc"].pid, **{f"client{i}": c["pid"] for i, c in enumerate(self.clients)},
                  "bench": os.getpid()}
        cpu = {name: (_proc_stat(pid) or (0, 0.0, 0))[1] for name, pid in others.items()}
        busy, total = machine_cpu()
        return {"t": time.monotonic(), "node": tree_usage(self.node_pid), "cpu": cpu, "machine": (busy, total)}

    def run(self, name: str, frames: bool, k: int, seconds: float) -> dict:
        diag0 = dict(self.monitor.diagnostics)
        n_objects_msgs = len(self.monitor.objects)
        u0 = self._usage()
        if frames:
            self.camera["conn"].send(("start", self.args.rate))
            time.sleep(SETTLE_S if k else 0.0)
        results = []
        if k:
            start_wall = time.time() + 0.2
            for c in self.clients[:k]:
                c["conn"].send(("run", start_wall, seconds))
            for c in self.clients[:k]:
                if not c["conn"].poll(seconds + 2 * CALL_TIMEOUT_S + 30.0):
                    raise RuntimeError(f"{name}: a client process did not report back")
                results.append(c["conn"].recv())
        else:
            time.sleep(seconds)
        stamps, late = [], 0
        if frames:
            self.camera["conn"].send(("stop",))
            _, stamps, late = self.camera["conn"].recv()
        u1 = self._usage()
        time.sleep(GRACE_S)
        diag1 = dict(self.monitor.diagnostics)
        return self._summarise(name, frames, k, seconds, stamps, late, results, u0, u1, diag0, diag1,
                               self.monitor.objects[n_objects_msgs:])

    def _summarise(self, name, frames, k, seconds, stamps, late, results, u0, u1, diag0, diag1, outputs) -> dict:
        wall = u1["t"] - u0["t"]
        row = {"phase": name, "frames": frames, "clients": k, "seconds": seconds, "wall_s": wall}
        published = set(stamps)
        lat = [(recv - stamp) / 1e6 for recv, stamp, _ in outputs if stamp in published]
        processed = len({stamp for _, stamp, _ in outputs if stamp in published})
        row.update(frames_published=len(stamps), camera_late_frames=late,
                   publish_rate_hz=(len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9) if len(stamps) > 1 else None,
                   objects_messages=len(outputs), frames_processed=processed,
                   processed_pct=100.0 * processed / len(stamps) if stamps else None,
                   dropped_pct=100.0 * (len(stamps) - processed) / len(stamps) if stamps else None,
                   frame_latency_ms={"p50": _pct(lat, 50), "p95": _pct(lat, 95), "max": max(lat) if lat else None})
        row["node_diagnostics_delta"] = {key: _diag_delta(diag0, diag1, key) for key in
                                         ("frames_processed", "frames_rejected", "dropped_stale_frames",
                                          "dropped_unmatched_messages", "matched_sets")}
        row["node_diagnostics_last"] = {key: diag1.get(key) for key in ("latency_p50_ms", "latency_p95_ms",
                                                                        "last_error", "last_warning")}
        node_cpu = u1["node"]["cpu_s"] - u0["node"]["cpu_s"]
        row["node_cpu_pct"] = 100.0 * node_cpu / wall
        window = self.rss.window(u0["t"], u1["t"])
        row["node_rss_mb"] = (window[-1][1] if window else u1["node"]["rss"]) / 2**20
        row["node_rss_peak_mb"] = max([s[1] for s in window] + [u1["node"]["rss"]]) / 2**20
        row["node_pss_mb"] = window[-1][2] / 2**20 if window else None
        row["node_processes"] = u1["node"]["processes"]
        busy = u1["machine"][0] - u0["machine"][0]
        total = u1["machine"][1] - u0["machine"][1]
        row["machine_busy_pct"] = 100.0 * busy / total if total else None
        cpu = {key: 100.0 * (u1["cpu"][key] - u0["cpu"][key]) / wall for key in u0["cpu"]}
        row["camera_cpu_pct"] = cpu["camera"]
        row["bench_cpu_pct"] = cpu["bench"]
        row["client_cpu_pct"] = [cpu[f"client{i}"] for i in range(k)]
        ours = row["node_cpu_pct"] + sum(cpu.values())
        row["other_cpu_pct"] = (row["machine_busy_pct"] * (os.cpu_count() or 1) - ours
                                if row["machine_busy_pct"] is not None else None)
        if k:
            per_service = {s: [x for r in results for x in r[1][s]] for s in results[0][1]}
            all_lat = [x for v in per_service.values() for x in v]
            ages = [x for r in results for x in r[4]]
            queries = len(all_lat)
            row.update(queries=queries, queries_per_s=queries / seconds,
                       failures=sum(sum(r[2].values()) for r in results),
                       failure_messages=dict(sum((r[2] for r in results), collections.Counter()).most_common(3)),
                       timeouts=sum(sum(r[3].values()) for r in results),
                       timeouts_by_service={s: sum(r[3][s] for r in results) for s in results[0][3]},
                       service_ms={"p50": _pct(all_lat, 50), "p99": _pct(all_lat, 99),
                                   "max": max(all_lat) if all_lat else None},
                       service_ms_by_service={s: {"p50": _pct(v, 50), "p99": _pct(v, 99), "n": len(v)}
                                              for s, v in per_service.items()},
                       scene_age_ms={"p50": _pct(ages, 50), "p95": _pct(ages, 95)} if frames else None)
            client_cpu_s = sum(row["client_cpu_pct"]) / 100.0 * wall
            row["client_cpu_ms_per_query"] = 1e3 * client_cpu_s / queries if queries else None
            row["node_cpu_ms_per_query"] = 1e3 * node_cpu / queries if queries and not frames else None
        return row

    def soak(self, minutes: float, k: int, warmup_s: float) -> dict:
        """Frames and ``k`` clients for ``minutes``; the node tree's RSS every ~10 s."""
        seconds = minutes * 60.0
        series: list[tuple[float, float]] = []
        t_start = time.monotonic()
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(10.0):
                u = tree_usage(self.node_pid)
                series.append((time.monotonic() - t_start, u["rss"] / 2**20))
                print(f"  soak {series[-1][0]:6.0f} s: node RSS {series[-1][1]:.1f} MB", flush=True)

        sampler = threading.Thread(target=sample, name="soak-sampler", daemon=True)
        sampler.start()
        try:
            row = self.run("soak", True, k, seconds)
        finally:
            stop.set()
            sampler.join()
        after = [mb for t, mb in series if t >= warmup_s]
        row["soak_rss_series_mb"] = series
        row["soak_warmup_s"] = warmup_s
        if len(after) >= 2:
            n = min(3, len(after) // 2)                  # median of the first / last few samples after warm-up
            head, tail = np.median(after[:n]), np.median(after[-n:])
            row["soak_growth_mb"] = float(tail - head)
            t = np.array([t for t, _ in series if t >= warmup_s])
            row["soak_slope_mb_per_min"] = float(np.polyfit(t / 60.0, after, 1)[0]) if len(after) >= 3 else None
        else:
            row["soak_growth_mb"] = None
        return row


# ------------------------------------------------------------------------------------------------ output
def _f(value, fmt=".1f", width=7) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}{fmt}}"


def print_table(report: dict) -> None:
    m, a = report["machine"], report["args"]
    print(f"\nmachine: {m['nproc']} CPU(s), {m['cpu_model']}; load average {report['load_start']} at start, "
          f"{report['load_end']} at end")
    print(f"node: {report['node_root']} ({report['node_commit']}), detector {a.get('detector', 'external')}, "
          f"{a['resolution']}, "
          f"{a['objects']} objects, camera at {a['rate']:g} Hz, clients in own processes ({a['client_executor']} "
          f"executor), query mix {'/'.join(QUERY_MIX)}")
    head = (f"{'phase':<10}{'frames':>7}{'proc%':>7}{'drop%':>7}{'lat50':>7}{'lat95':>7}{'svc50':>7}"
            f"{'svc99':>7}{'x idle':>7}{'q/s':>7}{'age50':>7}{'age95':>7}{'nodeCPU':>8}{'RSS MB':>8}{'PSS MB':>8}"
            f"{'mach%':>7}{'other':>7}")
    print("\n" + head)
    print(f"{'':<10}{'pub':>7}{'':>14}{'ms':>7}{'ms':>7}{'ms':>7}{'ms':>7}{'':>7}{'':>7}{'ms':>7}{'ms':>7}"
          f"{'%core':>8}{'tree':>8}{'tree':>8}{'busy':>7}{'%core':>7}")
    for r in report["phases"]:
        svc = r.get("service_ms") or {}
        age = r.get("scene_age_ms") or {}
        print(f"{r['phase']:<10}{r['frames_published']:7d}{_f(r['processed_pct'])}{_f(r['dropped_pct'])}"
              f"{_f(r['frame_latency_ms']['p50'])}{_f(r['frame_latency_ms']['p95'])}"
              f"{_f(svc.get('p50'), '.2f')}{_f(svc.get('p99'), '.2f')}{_f(r.get('p99_vs_idle'), '.2f')}"
              f"{_f(r.get('queries_per_s'), '.0f')}{_f(age.get('p50'))}{_f(age.get('p95'))}"
              f"{_f(r['node_cpu_pct'], '.0f', 8)}{_f(r['node_rss_mb'], '.1f', 8)}{_f(r['node_pss_mb'], '.1f', 8)}"
              f"{_f(r['machine_busy_pct'], '.0f')}{_f(r['other_cpu_pct'], '.0f')}")
    print("\nproc%: frames whose capture stamp came back on ~/objects; drop%: the rest; lat: capture stamp -> "
          "~/objects received; svc: round trip; x idle: svc99 / same clients' idle svc99; age: list_objects "
          "answer received - newest last_seen;\nnodeCPU: node process tree, 100 = one core; RSS: summed over the tree "
          "(shared pages counted per process), PSS: proportional share; mach%: all CPUs busy; other: CPU of "
          "processes outside this benchmark")
    for r in report["phases"]:
        d = r["node_diagnostics_delta"]
        parts = [f"{k} {'+' if v is not None and v >= 0 else ''}{v}" for k, v in d.items() if v is not None]
        extra = ""
        if r["clients"]:
            lost = ", ".join(f"{k} {v}" for k, v in r["timeouts_by_service"].items() if v)
            extra = (f"; {r['queries']} queries, {r['failures']} failed, {r['timeouts']} unanswered after "
                     f"{CALL_TIMEOUT_S:g} s{' (' + lost + ')' if lost else ''}; clients CPU "
                     f"{'/'.join(f'{c:.0f}' for c in r['client_cpu_pct'])} %core, "
                     f"{_f(r.get('client_cpu_ms_per_query'), '.2f', 0)} ms CPU/query")
            if r.get("failure_messages"):
                extra += "; failures: " + "; ".join(f"{n}x {m}" for m, n in r["failure_messages"].items())
            if r.get("node_cpu_ms_per_query") is not None:
                extra += f"; node {r['node_cpu_ms_per_query']:.2f} ms CPU/query"
        print(f"  {r['phase']}: node diagnostics {', '.join(parts) or 'n/a'}; camera CPU {r['camera_cpu_pct']:.0f} "
              f"%core, {r['camera_late_frames']} late; node tree {r['node_processes']} process(es){extra}")
    if any(r["frames_published"] and r["objects_messages"] and not r["frames_processed"] for r in report["phases"]):
        print("WARNING: ~/objects messages arrived but none carried a published capture stamp: the node no longer "
              "stamps ~/objects with the processed frame's stamp (publish_rate_hz > 0?), so proc%/drop%/lat are void")
    print("\nclient side: " + report["client_verdict"])
    print(f"\ntargets (issue 8){'':<38}{'value':>10}{'target':>10}{'ratio':>8}  pass")
    for t in report["targets"]:
        bound = ('>= ' if t["at_least"] else '<= ') + format(t["target"], "g")
        print(f"  {t['name']:<53}{_f(t['value'], '.2f', 10)}{bound:>10}{_f(t['ratio'], '.2f', 8)}  "
              f"{'-' if t['pass'] is None else ('yes' if t['pass'] else 'NO')}")
    soak = next((r for r in report["phases"] if r["phase"] == "soak"), None)
    if soak is not None:
        print(f"\nsoak: {soak['seconds'] / 60:g} min, RSS growth after {soak['soak_warmup_s']:g} s warm-up "
              f"{_f(soak.get('soak_growth_mb'), '.2f', 0)} MB (slope {_f(soak.get('soak_slope_mb_per_min'), '.3f', 0)} "
              f"MB/min), series " + ", ".join(f"{t:.0f}s:{mb:.1f}" for t, mb in soak["soak_rss_series_mb"]))
    print(f"node process exit code after SIGINT: {report['node_exit_code']}")


def client_verdict(phases: list[dict]) -> str:
    """Whether the clients (not the node) limit queries/s, from the CPU each side spent per query in the idle
    phase with the most clients (the node's CPU there is all for queries)."""
    rows = [r for r in phases if r["clients"] and not r["frames"]]
    if not rows:
        return "no idle client phase"
    top = max(rows, key=lambda r: r["clients"])
    clients, node = top["client_cpu_ms_per_query"], top.get("node_cpu_ms_per_query")
    nproc = os.cpu_count() or 1
    text = (f"in '{top['phase']}' ({top['queries_per_s']:.0f} q/s) the {top['clients']} client process(es) spent "
            f"{_f(clients, '.2f', 0)} ms CPU per query, the node {_f(node, '.2f', 0)} ms (node at "
            f"{top['node_cpu_pct']:.0f} %core); the {nproc} CPU(s) were {_f(top['machine_busy_pct'], '.0f', 0)} % "
            f"busy, {_f(top['other_cpu_pct'], '.0f', 0)} %core of it by processes outside this benchmark. ")
    if not clients or not node:
        return text
    text += (f"Client and node together need {clients + node:.2f} ms CPU per query: at most ~"
             f"{1e3 * nproc / (clients + node):.0f} q/s on {nproc} otherwise idle CPU(s); the node alone "
             f"~{1e3 / node:.0f} q/s per core. ")
    other = top["other_cpu_pct"] or 0.0
    if other > 25.0 * nproc:
        text += (f"Other processes took {other:.0f} %core of the {100 * nproc} available: the rate is limited by "
                 f"the machine's other load as much as by this benchmark; of the benchmark's CPU per query the "
                 f"clients used {100 * clients / (clients + node):.0f} %.")
    elif top["machine_busy_pct"] is not None and top["machine_busy_pct"] < 85.0:
        text += "The CPUs were not saturated: round-trip latency, not CPU, limited the rate."
    elif clients > node:
        text += (f"The CPUs were saturated and the clients used {100 * clients / (clients + node):.0f} % of the "
                 f"benchmark's CPU per query: the client side is the bottleneck here (the figure measures the "
                 f"clients as much as the node).")
    else:
        text += (f"The CPUs were saturated and the node used {100 * node / (clients + node):.0f} % of the "
                 f"benchmark's CPU per query: the node is the bottleneck, not the clients.")
    return text


def targets(phases: list[dict], period_s: float) -> list[dict]:
    by = {r["phase"]: r for r in phases}
    loads = [r for r in phases if r["frames"] and r["clients"] and r["phase"] != "soak"]
    top = max(loads, key=lambda r: r["clients"]) if loads else None
    four = next((r for r in loads if r["clients"] == 4), top)
    out = [{"name": "frames processed, frames only (%)", "value": by.get("frames", {}).get("processed_pct"),
            "target": TARGETS["processed_pct"], "at_least": True}]
    for r in loads:
        c = r["clients"]
        out += [
            {"name": f"frames processed, {c} client(s) querying (%)", "value": r["processed_pct"],
             "target": TARGETS["processed_pct"], "at_least": True},
            {"name": f"service p99 under load, {c} client(s) (ms)", "value": r["service_ms"]["p99"],
             "target": TARGETS["service_p99_ms"], "at_least": False},
            {"name": f"service p99 under load / idle, {c} client(s)", "value": r.get("p99_vs_idle"),
             "target": TARGETS["p99_vs_idle"], "at_least": False},
            {"name": f"scene age p95 in frame periods, {c} client(s)",
             "value": None if r["scene_age_ms"]["p95"] is None else r["scene_age_ms"]["p95"] / (period_s * 1e3),
             "target": TARGETS["scene_age_periods"], "at_least": False}]
    if four is not None:
        out.append({"name": f"queries/s under load, {four['clients']} client(s)", "value": four["queries_per_s"],
                    "target": TARGETS["queries_per_s"], "at_least": True})
        idle = by.get(f"idle {four['clients']}c")
        if idle is not None:
            out.append({"name": f"queries/s idle, {idle['clients']} client(s)", "value": idle["queries_per_s"],
                        "target": TARGETS["queries_per_s"], "at_least": True})
    if "soak" in by:
        out.append({"name": "soak RSS growth after warm-up (MB)", "value": by["soak"].get("soak_growth_mb"),
                    "target": TARGETS["soak_growth_mb"], "at_least": False})
    for t in out:
        t["ratio"] = None if t["value"] is None else t["value"] / t["target"]
        t["pass"] = None if t["ratio"] is None else bool(t["ratio"] >= 1.0 if t["at_least"] else t["ratio"] <= 1.0)
    return out


# ---------------------------------------------------------------------------------------------------- main
def node_command(args, node_root: Path) -> tuple[list[str], dict]:
    env = dict(os.environ)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT]
    env["PYTHONPATH"] = os.pathsep.join([str(node_root)] + rest)
    cmd = [sys.executable, "-m", "spatial_vlm_ros.ros.run", "--params", str(node_root / "config/perception.yaml"),
           "--namespace", NODE_NAMESPACE, "--detector", args.detector, "--ros-args",
           "-p", "memory.timeout_s:=3600.0", "--log-level", args.node_log_level]
    return cmd, env


def check_node_root(node_root: Path, env: dict) -> str:
    """The package directory ``python -m`` will import from ``node_root``; raises if it is not node_root's."""
    out = subprocess.run([sys.executable, "-c", "import spatial_vlm_ros, os; "
                          "print(os.path.dirname(os.path.realpath(spatial_vlm_ros.__file__)))"],
                         cwd=node_root, env=env, capture_output=True, text=True, timeout=120)
    path = Path(out.stdout.strip() or "/nonexistent")
    if out.returncode != 0 or path != (node_root / "spatial_vlm_ros").resolve():
        raise SystemExit(f"--node-root {node_root}: python imports spatial_vlm_ros from '{path}' "
                         f"({out.stderr.strip()[-300:]})")
    return str(path)


def git_commit(root: Path) -> str:
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "not a git checkout"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz")
    p.add_argument("--objects", type=int, default=10, help="objects on the table")
    p.add_argument("--detector", choices=["external", "tabletop"], default="external",
                   help="external: the camera's instance masks; tabletop: the node finds the objects itself")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4], help="planner client counts, one idle and "
                   "one loaded phase each")
    p.add_argument("--resolution", choices=["640x480", "1280x720"], default="640x480")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each phase, s")
    p.add_argument("--minutes", type=float, default=0.0, help="soak: frames and the largest client count for "
                   "this long after the phases (0 = no soak)")
    p.add_argument("--warmup-s", type=float, default=60.0, help="soak warm-up before RSS growth is counted, s")
    p.add_argument("--node-root", type=Path, default=ROOT, help="checkout whose node runs (cwd of the node)")
    p.add_argument("--client-executor", choices=["events", "single"], default="events",
                   help="rclpy executor of the clients: events (rclpy.experimental.EventsExecutor, about half "
                   "the client CPU per call) or single (SingleThreadedExecutor)")
    p.add_argument("--node-log-level", default="warn")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.objects < 1 or min(args.clients) < 1:
        p.error("--rate, --seconds, --objects and --clients must be positive")
    return args


def _camera_process(ctx, args, width: int, height: int) -> dict:
    """The camera process (not started) and the parent's end of its pipe."""
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=camera_main, args=(child, args.objects, width, height, args.detector == "external"),
                       name="bench-camera")
    return {"proc": proc, "conn": parent}


def _wait_until_up(camera: dict, monitor: Monitor) -> dict:
    """Until the node serves ``list_objects`` and the camera reports ready; returns the camera's scene info."""
    if not monitor.list_client.wait_for_service(timeout_sec=90.0):
        raise RuntimeError("the node did not come up (no list_objects service)")
    if not camera["conn"].poll(120.0):
        raise RuntimeError("the camera process did not start")
    status, info = camera["conn"].recv()
    if status != "ready":
        raise RuntimeError(info)
    return info


def _populate_memory(camera: dict, monitor: Monitor, args, info: dict) -> list:
    """Stream frames until the node's memory holds every instance (and the node is warm); returns the names
    the clients ask about: labels (external: the scene's unique labels) or ids (tabletop names objects by
    color, which may repeat)."""
    camera["conn"].send(("start", args.rate))
    deadline, known = time.monotonic() + 30.0, []
    # tabletop finds the objects itself (touching objects of one color are one): any object will do
    needed = info["instances"] if args.detector == "external" else 1
    while time.monotonic() < deadline:
        time.sleep(0.5)
        known = monitor.list_objects() or []
        if len(known) >= needed:
            break
    time.sleep(1.0)
    camera["conn"].send(("stop",))
    camera["conn"].recv()
    if len(known) < needed:
        raise RuntimeError(f"the node's memory holds {len(known)} of {info['instances']} objects after 30 s "
                           f"of frames (diagnostics: {monitor.diagnostics})")
    return sorted(o.label if args.detector == "external" else o.id for o in known)


def _start_clients(ctx, args, labels: list, clients: list) -> None:
    """Start ``max(args.clients)`` client processes (appended to ``clients`` as they start) and wait until
    each is ready."""
    for i in range(max(args.clients)):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=client_main, args=(child, i, labels, args.client_executor),
                           name=f"bench-client-{i}")
        proc.start()
        clients.append({"proc": proc, "conn": parent})
    for c in clients:
        if not c["conn"].poll(180.0):
            raise RuntimeError("a client process did not start")
        status, value = c["conn"].recv()
        if status != "ready":
            raise RuntimeError(value)
        c["pid"] = value


def _run_phases(bench: Bench, args, report: dict) -> None:
    """``frames``, then ``idle Kc`` and ``load Kc`` per client count, then the soak if asked for."""
    plan = [("frames", True, 0)]
    for k in args.clients:
        plan += [(f"idle {k}c", False, k), (f"load {k}c", True, k)]
    for name, frames, k in plan:
        print(f"phase '{name}' ({args.seconds:g} s) ...", flush=True)
        report["phases"].append(bench.run(name, frames, k, args.seconds))
    if args.minutes > 0:
        warmup = min(args.warmup_s, args.minutes * 60.0 / 3)
        print(f"soak: {args.minutes:g} min, {max(args.clients)} client(s) ...", flush=True)
        report["phases"].append(bench.soak(args.minutes, max(args.clients), warmup))


def _stop_processes(clients: list, camera: dict | None) -> None:
    """Ask the clients and the camera to quit; terminate whichever has not exited after 20 s."""
    for c in clients:
        with contextlib.suppress(OSError, BrokenPipeError):
            c["conn"].send(("quit",))
    if camera is not None:
        with contextlib.suppress(OSError, BrokenPipeError):
            camera["conn"].send(("quit",))
    for proc in [c["proc"] for c in clients] + ([camera["proc"]] if camera else []):
        proc.join(20.0)
        if proc.is_alive():
            proc.terminate()
            proc.join(5.0)


def _finish_report(report: dict, args, node_rc) -> int:
    """Ratios to idle, verdicts and targets; print the table, write the JSON; the exit code."""
    idle = {r["clients"]: r for r in report["phases"] if not r["frames"]}
    for r in report["phases"]:
        base = idle.get(r["clients"])
        if r["frames"] and r["clients"] and base is not None and base["service_ms"]["p99"]:
            r["p99_vs_idle"] = r["service_ms"]["p99"] / base["service_ms"]["p99"]
    report["client_verdict"] = client_verdict(report["phases"])
    report["targets"] = targets(report["phases"], 1.0 / args.rate)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        print(f"results written to {args.json}")
    failed = any(r.get("failures") or r.get("timeouts") for r in report["phases"])
    return 0 if node_rc == 0 and not failed else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    width, height = (int(x) for x in args.resolution.split("x"))
    node_root = args.node_root.resolve()
    if not os.environ.get("SVR_IN_NAMESPACE"):
        print("note: not in a private network namespace (run with SVR_ISOLATE=1 scripts/ros_env.sh)",
              file=sys.stderr)
    cmd, env = node_command(args, node_root)
    package_dir = check_node_root(node_root, env)
    report = {"machine": machine_info(), "args": {k: (str(v) if isinstance(v, Path) else v)
                                                  for k, v in vars(args).items()},
              "node_root": str(node_root), "node_package": package_dir, "node_commit": git_commit(node_root),
              "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()), "phases": []}

    import rclpy
    ctx = mp.get_context("spawn")
    node = subprocess.Popen(cmd, cwd=node_root, env=env)
    rclpy.init()
    monitor = Monitor()
    camera, clients, rss, node_rc = None, [], None, None
    try:
        camera = _camera_process(ctx, args, width, height)
        camera["proc"].start()
        info = _wait_until_up(camera, monitor)
        rss = RssSampler(node.pid).start()
        labels = _populate_memory(camera, monitor, args, info)
        print(f"memory holds {len(labels)} objects ({args.resolution}, {info['instances']} instances); "
              f"starting {max(args.clients)} client process(es)", flush=True)
        _start_clients(ctx, args, labels, clients)
        time.sleep(GRACE_S)
        _run_phases(Bench(args, node.pid, monitor, camera, clients, rss), args, report)
    except Exception as err:  # noqa: BLE001 - still stop every process and report the node's exit code
        report["error"] = f"{type(err).__name__}: {err}"
    finally:
        _stop_processes(clients, camera)
        if rss is not None:
            rss.stop()
        monitor.close()
        rclpy.try_shutdown()
        from bench_services import interrupt
        node_rc = interrupt(node, 30.0)
        report["node_exit_code"] = node_rc
        report["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if "error" in report:
        print(f"benchmark failed: {report['error']}; node process exit code {node_rc}", file=sys.stderr)
        return 1
    return _finish_report(report, args, node_rc)


if __name__ == "__main__":
    raise SystemExit(main())
