"""Where the perception node's frames are processed: input subscriptions, stamp matching, the frame pipeline
and its scene memory, in a worker process (``frame_worker: process``, the default) or in the node's own
process (``frame_worker: thread``).

Why a process: rclpy's executor machinery and the frame pipeline share one GIL, so in one process every
service call waits behind message deserialisation and numpy work (docs/realtime.md has the measurements).
The worker process has its own rclpy context and a hidden node (``_<node name>_frames``) that subscribes
to the inputs itself, so the images never pass through the node's process; after every frame it sends the
new scene snapshot (a few kB) back over a pipe, and the node answers every service from the newest snapshot.

- ``FrameProcessor``: the inputs -> frames -> pipeline -> ``~/objects``/``~/markers`` part, in whichever
  process it runs. Subscription callbacks only file messages into the ``ApproximateTimeSynchronizer`` and
  hand complete sets to one frame thread (``handoff``: always the newest set, stale ones dropped). It
  publishes the scene outputs itself and reports to the node through ``FrameEvents``. Each set carries the
  reset generation it was matched in: a set matched (or a frame converted) before a ``reset`` is dropped
  when its turn comes, so it never lands in the fresh memory or seeds the new gravity estimate.
- ``WorkerProcess``: the node's handle on a worker process running a ``FrameProcessor``: start (pipeline
  built, models loaded, or the reason it failed), activate/deactivate (subscriptions), reset, set_classes,
  close. Its receiver thread turns the worker's messages back into ``FrameEvents`` calls.
- ``SceneMirror``: the newest scene, what the services read (``SpatialQueries`` takes it as its memory).

The worker ignores SIGINT/SIGTERM (the node stops it in order) and exits when its pipe closes, so it never
outlives the node. Nothing raised in a callback escapes: it becomes a rejected frame or a warning event.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from spatial_vlm_interfaces.msg import Detections2D, InstanceSegmentation, SpatialObjectArray
from spatial_vlm_ros.core.errors import InputError, SpatialError
from spatial_vlm_ros.core.frame import Frame
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.scene import Scene
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig
from spatial_vlm_ros.ros import conversions as conv
from spatial_vlm_ros.ros.diagnostics import UP_ASSUMED, UP_SOURCE
from spatial_vlm_ros.ros.handoff import FrameWorker, LatestOnlyQueue
from spatial_vlm_ros.ros.markers import scene_markers
from spatial_vlm_ros.ros.parameters import DETECTIONS_MSG_TYPES, NodeSettings
from spatial_vlm_ros.ros.qos import output_qos, sensor_qos
from spatial_vlm_ros.ros.scene_outputs import ObjectBox, OptionalOutputs, check_outputs
from spatial_vlm_ros.ros.sync import ApproximateTimeSynchronizer
from spatial_vlm_ros.ros.tf_frames import FrameTf, check_tf_settings

REQUEST_TIMEOUT_S = 30.0          # longest wait for the worker to answer a command (reset waits for a frame)
STOP_TIMEOUT_S = 10.0
EXPIRY_CHECK_MIN_S = 0.05         # the memory's expiry timer: a tenth of memory.timeout_s, within these bounds
EXPIRY_CHECK_MAX_S = 1.0


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a ``FrameProcessor`` needs; picklable, it crosses into the worker process."""

    settings: NodeSettings
    config: PipelineConfig
    topics: dict                       # slot -> fully resolved topic name (the node's remappings applied);
                                       # also "objects" and "markers", the node's ~/objects and ~/markers
    node_name: str                     # the worker process's own (hidden) node
    namespace: str = "/"
    log_level: int = 20                # rclpy.logging.LoggingSeverity value
    use_sim_time: bool = False         # the node's, for the stamps of outputs not tied to a frame


@dataclass
class FrameReport:
    """One processed frame: the memory's scene after it, and what the diagnostics need."""

    scene: Scene
    latency_s: float                   # conversion + pipeline, seconds
    warnings: list[str] = field(default_factory=list)


class FrameEvents:
    """What a ``FrameProcessor`` reports; the node implements it (directly, or through ``WorkerProcess``)."""

    def frame(self, report: FrameReport) -> None: ...
    def rejected(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def scene(self, scene: Scene, reason: str) -> None: ...   # memory changed without a frame: "expired" | "reset"
    def status(self, values: dict) -> None: ...        # diagnostics key/values of the processor


class SceneMirror:
    """The newest ``Scene`` (immutable), swapped atomically; ``snapshot()`` as ``SceneMemory`` has it."""

    def __init__(self):
        self._scene = Scene()

    def snapshot(self) -> Scene:
        return self._scene

    def update(self, scene: Scene) -> None:
        self._scene = scene

    def clear(self) -> None:
        self._scene = Scene()


def detections_input(msg_type: str):
    """(message class, converter to ``Detection2D`` boxes) for the ``detections_msg`` parameter. Raises
    ``InputError`` naming the fix when vision_msgs is asked for but not installed."""
    if msg_type == "spatial_vlm_interfaces/Detections2D":
        return Detections2D, conv.detections_from_msg
    if msg_type == "vision_msgs/Detection2DArray":
        if conv.VisionDetection2DArray is None:
            raise InputError("detections_msg is 'vision_msgs/Detection2DArray' but vision_msgs is not installed "
                             "here (install ros-$ROS_DISTRO-vision-msgs), or publish "
                             "spatial_vlm_interfaces/Detections2D and set detections_msg to that")
        return conv.VisionDetection2DArray, conv.detections_from_vision_msgs
    raise InputError(f"detections_msg '{msg_type}' is not one of {', '.join(DETECTIONS_MSG_TYPES)}")


def input_slots(settings: NodeSettings, wants_boxes: bool) -> list[str]:
    """The matched inputs: color and camera info always, depth unless RGB-only, masks or boxes per detector."""
    return (["color"] + (["depth"] if settings.depth_source != "model" else []) + ["camera_info"]
            + (["instances"] if settings.detector == "external" else []) + (["detections"] if wants_boxes else []))


def input_topics(settings: NodeSettings) -> dict:
    """slot -> topic name as configured (before the node resolves it)."""
    return {"color": settings.color_topic, "depth": settings.depth_topic, "camera_info": settings.camera_info_topic,
            "instances": settings.instances_topic, "detections": settings.detections_topic}


class FrameProcessor:
    """Subscriptions, stamp matching and the frame pipeline on ``node`` (any rclpy node of this process).

    Builds the pipeline (and loads its models) in the constructor; raises ``SpatialError`` for an unusable
    configuration. ``subscribe``/``unsubscribe`` start and stop the inputs (the memory stays). Thread-safe.
    """

    def __init__(self, node, spec: WorkerSpec, events: FrameEvents):
        self.node, self.spec, self.events = node, spec, events
        s = self.settings = spec.settings
        check_tf_settings(s.target_frame, s.gravity_mode)          # before any model loads
        check_outputs(s.detections_3d, s.collision_objects)
        self.pipeline = FramePipeline(spec.config)
        self.wants_boxes = bool(getattr(self.pipeline.detector, "needs_boxes", False))
        self._detections_type, self._detections_from_msg = (detections_input(s.detections_msg)
                                                            if self.wants_boxes else (None, None))
        self.slots = input_slots(s, self.wants_boxes)
        self.sync = ApproximateTimeSynchronizer(self.slots, s.sync_slop_s, s.sync_queue_size)
        self.handoff = LatestOnlyQueue()
        self._lock = threading.Lock()           # one frame or one reset at a time
        self._generation = 0                    # resets so far; sets are tagged with it when matched
        self.dropped_by_reset = 0               # sets matched before a reset, dropped
        self._camera = None
        self._frame_id = ""
        self._last_frame: tuple[float, float] | None = None      # (header stamp, monotonic time)
        self._last_received: dict[str, float] = {}
        self._last_matched = time.monotonic()
        self._subscriptions: list = []
        self._publish_timer = None
        self._expiry_timer = None
        self._objects_pub = self._markers_pub = None
        if "objects" in spec.topics:
            self._objects_pub = node.create_publisher(SpatialObjectArray, spec.topics["objects"], output_qos())
            self._markers_pub = node.create_publisher(MarkerArray, spec.topics["markers"], output_qos())
        self.tf = FrameTf(node, self.pipeline, s.target_frame, s.gravity_mode, s.tf_timeout_s, s.broadcast_gravity)
        self.outputs = (OptionalOutputs(node, spec.topics, output_qos(), s.detections_3d, s.collision_objects)
                        if "objects" in spec.topics else None)
        self.worker = FrameWorker(self.handoff, self._process_set, s.max_processing_rate_hz,
                                  on_error=self._on_worker_error, name="spatial-perception-frames")
        self.worker.start()

    @property
    def noise(self) -> DepthNoiseModel:
        """The noise model of relations and quantities (widened for a depth model)."""
        return self.pipeline.config.noise

    @property
    def gravity_status(self) -> str:
        return str(self.pipeline.gravity.status)

    # ----------------------------------------------------------------------------- subscriptions
    def subscribe(self) -> None:
        if self._subscriptions:
            return
        types = {"color": Image, "depth": Image, "camera_info": CameraInfo, "instances": InstanceSegmentation,
                 "detections": self._detections_type}
        group = MutuallyExclusiveCallbackGroup()
        qos = sensor_qos(self.settings.sensor_qos_depth)
        self._last_matched = time.monotonic()
        self._subscriptions = [
            self.node.create_subscription(types[slot], self.spec.topics[slot], self._input_callback(slot), qos,
                                          callback_group=group)
            for slot in self.slots]
        if self.settings.publish_rate_hz > 0.0 and self._publish_timer is None:
            self._publish_timer = self.node.create_timer(1.0 / self.settings.publish_rate_hz, self._on_publish_timer,
                                                         callback_group=MutuallyExclusiveCallbackGroup())
        if self._expiry_timer is None:
            period = min(max(self.pipeline.memory.params.timeout_s / 10.0, EXPIRY_CHECK_MIN_S), EXPIRY_CHECK_MAX_S)
            self._expiry_timer = self.node.create_timer(period, self._on_expiry_timer,
                                                        callback_group=MutuallyExclusiveCallbackGroup())

    def unsubscribe(self) -> None:
        """Stop the inputs; half-matched and waiting sets are dropped, the memory stays."""
        subs, self._subscriptions = self._subscriptions, []
        for sub in subs:
            self.node.destroy_subscription(sub)
        for timer in (self._publish_timer, self._expiry_timer):
            if timer is not None:
                self.node.destroy_timer(timer)
        self._publish_timer = self._expiry_timer = None
        self.sync.reset()
        self.handoff.clear()
        self._last_frame = None

    @property
    def subscribed(self) -> bool:
        return bool(self._subscriptions)

    def _input_callback(self, slot: str):
        def callback(msg) -> None:
            try:
                now = time.monotonic()
                self._last_received[slot] = now
                generation = self._generation   # read first: a reset from here on drops this set
                complete = self.sync.add(slot, conv.stamp_to_seconds(msg.header.stamp), msg)
                if complete is not None:
                    self._last_matched = now
                    self.handoff.put((generation, complete))
            except Exception as err:  # noqa: BLE001 - an exception out of a callback would stop the executor
                self._report_error(f"internal error filing a {slot} message: {type(err).__name__}: {err}")
        return callback

    # ------------------------------------------------------------------------------------ frames
    def _frame_from_set(self, msgs: dict) -> Frame:
        """Convert one matched set to a ``Frame``; raises ``InputError`` for unusable messages."""
        camera = conv.camera_model_from_info(msgs["camera_info"])
        if camera == self._camera:
            camera = self._camera          # keep the model whose per-pixel ray grid is already cached
        self._camera = camera
        rgb = conv.color_to_rgb(msgs["color"])
        depth_msg = msgs.get("depth")             # absent for an RGB-only camera (depth_source: model)
        depth = conv.image_to_array(depth_msg, "depth image") if depth_msg is not None else None
        segmentation = conv.segmentation_from_msg(msgs["instances"]) if "instances" in msgs else None
        detections = self._detections_from_msg(msgs["detections"]) if "detections" in msgs else None
        return Frame(rgb=rgb, depth=depth, depth_encoding=depth_msg.encoding if depth_msg is not None else "",
                     camera=camera, stamp=conv.stamp_to_seconds(msgs["color"].header.stamp),
                     segmentation=segmentation, detections=detections)

    def _process_set(self, item: tuple[int, dict]) -> None:
        """Frame thread: one matched set ``(reset generation, messages)`` through the pipeline, then report.
        A set from before the latest reset is dropped (counted in ``dropped_by_reset``). Never raises."""
        generation, msgs = item
        t0 = time.perf_counter()
        try:
            frame = self._frame_from_set(msgs)
            if self._last_frame is not None and frame.stamp == self._last_frame[0]:
                message = (f"frame stamped {frame.stamp:.6f} s repeats the last processed frame (a republished "
                           "or duplicated message): not used twice")
                self.events.warning(message)
                return
            to_target = self.tf.before_frame(msgs["color"].header)     # camera -> target_frame, None without
            with self._lock:
                if generation != self._generation:
                    self.dropped_by_reset += 1
                    return
                result = self.pipeline.process(frame)
                scene = self.pipeline.memory.snapshot()
                self.tf.commit(to_target)
        except SpatialError as err:
            self._report_error(str(err))
            return
        header = msgs["color"].header
        self._frame_id = header.frame_id or frame.camera.frame_id
        self._last_frame = (frame.stamp, time.monotonic())
        latency = time.perf_counter() - t0
        if self.settings.publish_rate_hz <= 0.0:
            self.publish_scene(scene, header.stamp)
        self.events.frame(FrameReport(scene, latency, list(result.warnings)))

    def _report_error(self, message: str) -> None:
        self.events.rejected(message)

    def _on_worker_error(self, err: BaseException) -> None:
        self._report_error(f"internal error: {type(err).__name__}: {err}")

    # ----------------------------------------------------------------------------------- outputs
    def publish_scene(self, scene: Scene, stamp=None) -> None:
        """``~/objects`` and ``~/markers`` for ``scene``, stamped ``stamp`` (the frame's capture stamp; default:
        now). Here, in the process that has the scene, so the node's own process never builds them."""
        if self._objects_pub is None or not self.node.context.ok():
            return
        header = Header(frame_id=self._frame_id)
        header.stamp = stamp if stamp is not None else self.node.get_clock().now().to_msg()
        frame_id, to_target = self.tf.output_frame(self._frame_id)       # target_frame, or the camera's
        out = Header(frame_id=frame_id, stamp=header.stamp)
        self._objects_pub.publish(SpatialObjectArray(header=out, objects=[
            conv.spatial_object_msg(o, scene.gravity, to_target) for o in scene.objects]))
        self._markers_pub.publish(scene_markers(scene.objects, scene.gravity, header))
        self.tf.broadcast(scene.gravity, self._frame_id, header.stamp)
        if self.outputs is not None:
            self.outputs.publish([ObjectBox(o.id, o.label, float(o.score), conv.object_box(o, scene.gravity, to_target))
                                  for o in scene.objects], out)

    def _on_publish_timer(self) -> None:
        try:
            self.publish_scene(self.pipeline.memory.snapshot())
        except Exception as err:  # noqa: BLE001 - a timer callback must not stop the executor
            self._report_error(f"internal error publishing the scene: {type(err).__name__}: {err}")

    # ---------------------------------------------------------------------------------- commands
    def reset(self) -> str:
        """Clear the scene memory and the gravity estimate (waits for the frame in flight; sets matched before
        are dropped)."""
        with self._lock:
            removed = len(self.pipeline.memory.snapshot().objects)
            self._generation += 1
            self.handoff.clear()
            self.pipeline.reset()
            scene = self.pipeline.memory.snapshot()
        self.events.scene(scene, "reset")
        return f"scene memory cleared ({removed} object(s) removed)"

    def set_classes(self, classes) -> str:
        """The detector's class phrases (used from the next frame; the one in flight keeps its classes).
        Raises ``InputError`` for a detector without class prompts or an empty / blank list."""
        set_classes = getattr(self.pipeline.detector, "set_classes", None)
        if set_classes is None:
            raise InputError(f"detector '{self.settings.detector}' takes no class prompt")
        classes = [str(c) for c in classes]
        set_classes(classes)           # an atomic swap of the detector's tuple: no need to wait for a frame
        return f"detecting {len(classes)} class(es): {', '.join(classes)}"

    def classes(self) -> tuple[str, ...]:
        return tuple(getattr(self.pipeline.detector, "classes", ()) or ())

    # ------------------------------------------------------------------------------- supervision
    def check_inputs(self) -> None:
        """When no set was matched for ``stale_after_s`` although messages arrive, say why (some inputs are
        silent, or their stamps are too far apart)."""
        if not self._subscriptions:
            return
        now = time.monotonic()
        if now - self._last_matched > self.settings.stale_after_s:
            message = self._unmatched_inputs_message(now)
            if message:
                self.events.warning(message)

    def _on_expiry_timer(self) -> None:
        """The memory's own timer (while subscribed): expire objects when no frame has come for longer than
        ``memory.timeout_s``."""
        try:
            self._expire_idle_memory(time.monotonic())
        except Exception as err:  # noqa: BLE001 - a timer callback must not stop the executor
            self._report_error(f"internal error expiring the memory: {type(err).__name__}: {err}")

    def _unmatched_inputs_message(self, now: float) -> str:
        """Why no input set was matched lately ("" when every input arrives and stamps are within the slop)."""
        s = self.settings
        live = [x for x in self.slots if now - self._last_received.get(x, -1e18) <= s.stale_after_s]
        silent = [x for x in self.slots if x not in live]
        spread = self.sync.stats.last_unmatched_spread
        if live and silent:
            return self._silent_inputs_message(live, silent)
        if live and spread is not None and spread > self.sync.slop:
            return (f"input stamps too far apart to be matched: the newest {'/'.join(self.slots)} "
                    f"stamps span {spread:.3f} s > slop {self.sync.slop:.3f} s")
        return ""

    def _silent_inputs_message(self, live: list[str], silent: list[str]) -> str:
        topics = self.spec.topics
        message = (f"no messages on {', '.join(topics[x] for x in silent)} for {self.settings.stale_after_s:g} s "
                   f"while {', '.join(topics[x] for x in live)} arrive: no frame can be processed")
        if "depth" in silent:
            message += " (for an RGB-only camera set depth_source: model)"
        if "detections" in silent:
            message += (" (the box detector must publish a message for every color frame, an empty "
                        "one when it sees nothing)")
        return message

    def _expire_idle_memory(self, now: float) -> None:
        """Expire the memory's objects when no frame has come for longer than ``memory.timeout_s`` (wall
        time), and publish the scene without them."""
        if self._last_frame is None:
            return
        stamp, seen = self._last_frame
        if now - seen > self.pipeline.memory.params.timeout_s:
            with self._lock:
                expired = self.pipeline.memory.expire(stamp + (now - seen))
                scene = self.pipeline.memory.snapshot()
            if expired:
                self.publish_scene(scene)             # RViz and planners see the objects go
                self.events.scene(scene, "expired")

    def status_values(self) -> dict:
        """Diagnostics key/values of the inputs and the pipeline (``up_source``/``up_assumed``: of the gravity
        frame the answers use, the memory's; ``up_assumed`` True makes the status WARN)."""
        sync = self.sync.stats
        unpublished = [self.spec.topics[slot] for slot, sub in zip(self.slots, self._subscriptions)
                       if sub.get_publisher_count() == 0]
        gravity = self.pipeline.memory.snapshot().gravity
        estimated = self.pipeline.gravity.current is not None      # None: nothing since the start or a reset
        return {"dropped_stale_frames": self.handoff.dropped, "dropped_unmatched_messages": sync.dropped_total,
                "dropped_by_reset": self.dropped_by_reset, "matched_sets": sync.matched_sets,
                "gravity": self.gravity_status, UP_SOURCE: gravity.up_from if estimated else "(no frame yet)",
                UP_ASSUMED: bool(estimated and gravity.assumed),
                "inputs_without_publisher": ", ".join(unpublished) if self._subscriptions else "(not subscribed)",
                **self.tf.status_values()}

    def close(self) -> None:
        """Stop the inputs and join the frame thread (the frame in flight is finished first)."""
        try:
            self.unsubscribe()
        finally:
            self.worker.stop()
            for pub in (self._objects_pub, self._markers_pub):
                if pub is not None:
                    self.node.destroy_publisher(pub)
            self._objects_pub = self._markers_pub = None
            self.tf.close()
            if self.outputs is not None:
                self.outputs.close()


# ============================================================================= the worker process
EVENTS = ("frame", "rejected", "warning", "scene", "status")     # the methods of FrameEvents


class _PipeEvents(FrameEvents):
    """``FrameEvents`` sent over the worker's pipe (any thread; one lock per pipe)."""

    def __init__(self, conn):
        self._conn, self._lock = conn, threading.Lock()

    def send(self, *message) -> None:
        try:
            with self._lock:
                self._conn.send(message)
        except (OSError, EOFError, BrokenPipeError):
            pass                                   # the node is gone; the main loop sees the pipe close

    def frame(self, report: FrameReport) -> None:
        self.send("frame", report)

    def rejected(self, message: str) -> None:
        self.send("rejected", message)

    def warning(self, message: str) -> None:
        self.send("warning", message)

    def scene(self, scene: Scene, reason: str) -> None:
        self.send("scene", scene, reason)

    def status(self, values: dict) -> None:
        self.send("status", values)


def _worker_main(conn, spec: WorkerSpec) -> None:
    """Body of the worker process: build the processor on a hidden node, then serve the node's commands
    until "stop" or until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)          # the node stops us, in order
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    events = _PipeEvents(conn)
    context = rclpy.Context()
    rclpy.init(args=["spatial_vlm_ros_frames", "--ros-args", "--disable-external-lib-logs"], context=context,
               signal_handler_options=SignalHandlerOptions.NO)
    from rclpy.parameter import Parameter
    node = rclpy.create_node(spec.node_name, namespace=spec.namespace, context=context,
                             start_parameter_services=False,
                             parameter_overrides=[Parameter("use_sim_time", value=spec.use_sim_time)])
    node.get_logger().set_level(spec.log_level)
    try:
        processor = FrameProcessor(node, spec, events)
    except Exception as err:  # noqa: BLE001 - the node reports why configure failed
        events.send("failed", str(err) if isinstance(err, SpatialError) else f"{type(err).__name__}: {err}")
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        return
    events.send("ready", processor.noise, tuple(processor.slots))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=_spin_quietly, args=(executor,), name="frames-executor", daemon=True)
    spinner.start()
    period = spec.settings.diagnostics_period_s
    next_check = time.monotonic() + period
    try:
        while True:
            if conn.poll(max(0.0, next_check - time.monotonic())):
                try:
                    command, request_id, args = conn.recv()
                except (EOFError, OSError):
                    break
                if command == "stop":
                    break
                events.send("reply", request_id, *_run_command(processor, command, args))
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + period
                try:
                    processor.check_inputs()
                    events.status(processor.status_values())
                except Exception as err:  # noqa: BLE001
                    events.warning(f"internal error checking inputs: {type(err).__name__}: {err}")
    finally:
        processor.close()
        executor.shutdown()
        spinner.join(5.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _spin_quietly(executor) -> None:
    from rclpy.executors import ExternalShutdownException
    with contextlib.suppress(ExternalShutdownException, KeyboardInterrupt):
        executor.spin()


def _run_command(processor: FrameProcessor, command: str, args) -> tuple[bool, str]:
    """(success, message) of one command from the node."""
    try:
        if command == "subscribe":
            processor.subscribe()
            return True, "subscribed"
        if command == "unsubscribe":
            processor.unsubscribe()
            return True, "unsubscribed"
        if command == "reset":
            return True, processor.reset()
        if command == "set_classes":
            return True, processor.set_classes(args)
        return False, f"unknown command {command!r}"
    except SpatialError as err:
        return False, str(err)
    except Exception as err:  # noqa: BLE001 - a command must answer
        return False, f"internal error: {type(err).__name__}: {err}"


class WorkerProcess:
    """The node's handle on a worker process running a ``FrameProcessor`` (see the module docstring).

    ``events`` receives the worker's reports on this object's receiver thread; ``on_exit(exitcode)`` is
    called there when the worker process ends without being asked to.
    """

    def __init__(self, spec: WorkerSpec, events: FrameEvents, on_exit=None):
        self.spec, self.events, self._on_exit = spec, events, on_exit
        self.process: subprocess.Popen | None = None
        self.slots: tuple[str, ...] = ()
        self._conn = None
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, list] = {}
        self._pending_lock = threading.Lock()
        self._closing = False
        self._receiver = None

    def start(self, timeout_s: float) -> DepthNoiseModel:
        """Start the process and wait until its pipeline is built; returns the pipeline's noise model.
        Raises ``SpatialError`` with the worker's reason when it fails or does not answer in time."""
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])     # the worker imports this very package
        env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
        try:
            # a new session: a terminal's Ctrl-C reaches the node only, which then stops the worker in order
            self.process = subprocess.Popen([sys.executable, "-m", "spatial_vlm_ros.ros.frame_worker",
                                             str(theirs.fileno())], pass_fds=(theirs.fileno(),), env=env,
                                            start_new_session=True)
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        try:
            self._conn.send(self.spec)
            if not self._conn.poll(timeout_s):
                raise SpatialError(f"the frame worker did not build its pipeline within {timeout_s:g} s "
                                   "(worker_start_timeout_s)")
            message = self._conn.recv()
        except (EOFError, OSError):
            message = ("failed", f"the frame worker process exited during start-up (exit code "
                                 f"{self._wait(2.0)}; its error is in the log above)")
        except SpatialError:
            self.close()
            raise
        if message[0] != "ready":
            self.close()
            raise SpatialError(message[1])
        noise, self.slots = message[1], tuple(message[2])
        self._receiver = threading.Thread(target=self._receive, name="frame-worker-receiver", daemon=True)
        self._receiver.start()
        return noise

    def _wait(self, timeout_s: float):
        """The worker's exit code, or None if it is still running after ``timeout_s``."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ---------------------------------------------------------------------------------- commands
    def request(self, command: str, args=None, timeout_s: float = REQUEST_TIMEOUT_S) -> str:
        """Run ``command`` in the worker; returns its message, raises ``SpatialError`` when it failed, the
        worker is gone or does not answer within ``timeout_s``."""
        if not self.alive:
            raise SpatialError("the frame worker process is not running")
        request_id = next(self._ids)
        slot = [threading.Event(), None]
        with self._pending_lock:
            self._pending[request_id] = slot
        try:
            with self._send_lock:
                self._conn.send((command, request_id, args))
            if not slot[0].wait(timeout_s):
                raise SpatialError(f"the frame worker did not answer '{command}' within {timeout_s:g} s")
        except (OSError, EOFError, BrokenPipeError):
            raise SpatialError("the frame worker process is not running") from None
        finally:
            with self._pending_lock:
                self._pending.pop(request_id, None)
        if slot[1] is None:
            raise SpatialError("the frame worker process ended before answering")
        ok, message = slot[1]
        if not ok:
            raise InputError(message)
        return message

    def subscribe(self) -> None:
        self.request("subscribe")

    def unsubscribe(self) -> None:
        self.request("unsubscribe")

    def reset(self) -> str:
        return self.request("reset")

    def set_classes(self, classes) -> str:
        return self.request("set_classes", [str(c) for c in classes])

    def close(self) -> None:
        """Ask the worker to stop (it finishes its frame, closes its node), join it; kill it if it hangs."""
        self._closing = True
        if self._conn is not None:
            try:
                with self._send_lock:
                    self._conn.send(("stop", 0, None))
            except (OSError, EOFError, BrokenPipeError):
                pass
        if self.process is not None and self._wait(STOP_TIMEOUT_S) is None:
            self.process.kill()
            self._wait(2.0)
        if self._receiver is not None and self._receiver is not threading.current_thread():
            self._receiver.join(2.0)
        if self._conn is not None:
            self._conn.close()
        self._release_pending()

    # ---------------------------------------------------------------------------------- receiver
    def _receive(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            except Exception as err:  # noqa: BLE001 - an unpicklable message must not end the receiver
                self.events.warning(f"unreadable message from the frame worker: {type(err).__name__}: {err}")
                continue
            try:
                self._dispatch(message)
            except Exception as err:  # noqa: BLE001 - a failing handler must not end the receiver
                self.events.warning(f"internal error handling a frame worker report: {type(err).__name__}: {err}")
        self._release_pending()
        if not self._closing and self._on_exit is not None:
            self._on_exit(self._wait(2.0) if self.process is not None else None)

    def _dispatch(self, message) -> None:
        kind, *args = message
        if kind == "reply":
            with self._pending_lock:
                slot = self._pending.get(args[0])
            if slot is not None:
                slot[1] = (args[1], args[2])
                slot[0].set()
        elif kind in EVENTS:
            getattr(self.events, kind)(*args)

    def _release_pending(self) -> None:
        with self._pending_lock:
            for slot in self._pending.values():
                slot[0].set()


def main(argv=None) -> int:
    """Entry of the worker process: ``python -m spatial_vlm_ros.ros.frame_worker FD`` with FD one end of a
    socket pair whose other end is the node's ``WorkerProcess``; the spec is the first message."""
    argv = sys.argv[1:] if argv is None else argv
    conn = Connection(int(argv[0]))
    try:
        spec = conn.recv()
    except (EOFError, OSError):
        return 1
    _worker_main(conn, spec)
    return 0


if __name__ == "__main__":
    # run the package's copy of this module, not ``__main__``: what the worker pickles must name the real module
    from spatial_vlm_ros.ros.frame_worker import main as _main
    raise SystemExit(_main())
