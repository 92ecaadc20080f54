"""The ``spatial_perception`` node: synchronised RGB-D (+ instance masks or 2D boxes) in; scene objects, RViz
markers, diagnostics and typed spatial-query services out.

Inputs, matched by header stamp: colour and camera info always; depth unless ``depth_source`` is ``model``
(an RGB-only camera: the frame's depth is then None and comes from the depth model); instance masks with
``detector: external``; 2D boxes (``spatial_vlm_interfaces/Detections2D``, or ``vision_msgs/Detection2DArray``
where vision_msgs is installed: parameter ``detections_msg``) with ``detector: boxes``. A box detector must
publish a message for every colour frame, an empty one when it sees nothing, or no set is ever complete.
``~/set_classes`` sets the phrases of a detector that takes a class prompt (``open_vocab``).

Threads: message callbacks (one mutually exclusive group) only file messages into the approximate-time
synchroniser and hand complete sets to one worker thread (``handoff``), which always processes the newest
set and drops stale ones. Services run in their own reentrant group and read an immutable memory snapshot,
so they answer while a frame is processed. Run it with a ``MultiThreadedExecutor`` (``main`` does, through
``ros.spin``).

``~/ask`` answers template questions from the geometry; a question no template matches is forwarded,
unchanged, to the VLM node's ``Ask`` service (parameter ``vlm_service``) and its answer returned as is; see
``ros.vlm_forwarding``.

Frames: object centres in the camera optical frame of the colour image (x right, y down, z forward),
sizes in the gravity-aligned frame (z up), metres.
"""
from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from spatial_vlm_interfaces.msg import Detections2D, InstanceSegmentation, SpatialObjectArray
from spatial_vlm_interfaces.srv import Ask, GetRelation, ListObjects, Measure, SetClasses
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from spatial_vlm_ros.core.errors import InputError, SpatialError
from spatial_vlm_ros.core.frame import Frame
from spatial_vlm_ros.core.pipeline import FramePipeline
from spatial_vlm_ros.core.spatial_queries import SpatialQueries
from spatial_vlm_ros.ros import conversions as conv
from spatial_vlm_ros.ros import spin
from spatial_vlm_ros.ros.diagnostics import ProcessingStats, diagnostic_array
from spatial_vlm_ros.ros.handoff import FrameWorker, LatestOnlyQueue
from spatial_vlm_ros.ros.markers import scene_markers
from spatial_vlm_ros.ros.parameters import NODE_NAME, declare_parameters, node_settings, pipeline_config
from spatial_vlm_ros.ros.qos import diagnostics_qos, output_qos, sensor_qos
from spatial_vlm_ros.ros.sync import ApproximateTimeSynchronizer
from spatial_vlm_ros.ros.vlm_forwarding import VLMForwarder

LOG_THROTTLE_S = 5.0
DETECTIONS_MSG_TYPES = ("spatial_vlm_interfaces/Detections2D", "vision_msgs/Detection2DArray")


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


class SpatialPerceptionNode(Node):
    """See the module docstring. Parameters: ``ros.parameters.PARAMETERS``."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        try:
            self._setup()
        except BaseException:
            self.destroy_node()            # a rejected configuration leaves no half-built node in the graph
            raise

    def _setup(self) -> None:
        values = declare_parameters(self)
        self.settings = s = node_settings(values)
        self.depth_source = values.get("depth_source", "sensor")
        self.detections_topic = values["topics.detections"]
        self.pipeline = FramePipeline(pipeline_config(values))
        wants_boxes = bool(getattr(self.pipeline.detector, "needs_boxes", False))     # detector 'boxes'
        detections_type, self._detections_from_msg = (detections_input(values["detections_msg"]) if wants_boxes
                                                      else (None, None))
        self.queries = SpatialQueries(self.pipeline.memory, self.pipeline.config.noise)
        self.stats = ProcessingStats()
        self._pipeline_lock = threading.Lock()      # a reset waits for the frame in flight
        self._frame_id = ""
        self._camera = None                                     # CameraModel of the last frame (worker only)
        self._last_frame: tuple[float, float] | None = None   # (header stamp, monotonic time) of the last frame
        self._last_received: dict[str, float] = {}              # slot -> monotonic time of its last message
        self._last_matched = time.monotonic()

        slots = (["color"] + (["depth"] if self.depth_source != "model" else []) + ["camera_info"]
                 + (["instances"] if s.detector == "external" else [])
                 + (["detections"] if wants_boxes else []))
        self.sync = ApproximateTimeSynchronizer(slots, s.sync_slop_s, s.sync_queue_size)
        self.handoff = LatestOnlyQueue()
        self.worker = FrameWorker(self.handoff, self._process_set, s.max_processing_rate_hz,
                                  on_error=self._on_worker_error, name="spatial-perception-frames")

        inputs = MutuallyExclusiveCallbackGroup()
        services = ReentrantCallbackGroup()
        timers = MutuallyExclusiveCallbackGroup()
        qos = sensor_qos(s.sensor_qos_depth)
        topics = {"color": (Image, s.color_topic), "depth": (Image, s.depth_topic),
                  "camera_info": (CameraInfo, s.camera_info_topic),
                  "instances": (InstanceSegmentation, s.instances_topic),
                  "detections": (detections_type, self.detections_topic)}
        self._topic_names = {slot: name for slot, (_, name) in topics.items()}
        self._subscriptions_by_slot = {
            slot: self.create_subscription(topics[slot][0], topics[slot][1], self._input_callback(slot), qos,
                                           callback_group=inputs)
            for slot in slots}

        self.objects_pub = self.create_publisher(SpatialObjectArray, "~/objects", output_qos())
        self.markers_pub = self.create_publisher(MarkerArray, "~/markers", output_qos())
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", diagnostics_qos())

        self.vlm = VLMForwarder(self, s.vlm_service, s.vlm_timeout_s)     # own callback group
        self.create_service(ListObjects, "~/list_objects", self._list_objects, callback_group=services)
        self.create_service(GetRelation, "~/get_relation", self._get_relation, callback_group=services)
        self.create_service(Measure, "~/measure", self._measure, callback_group=services)
        self.create_service(Ask, "~/ask", self._ask, callback_group=services)
        self.create_service(Trigger, "~/reset", self._reset, callback_group=services)
        self.create_service(SetClasses, "~/set_classes", self._set_classes, callback_group=services)

        self.create_timer(s.diagnostics_period_s, self._publish_diagnostics, callback_group=timers)
        if s.publish_rate_hz > 0.0:
            self.create_timer(1.0 / s.publish_rate_hz, self._publish_scene, callback_group=timers)
        self.worker.start()
        self.get_logger().info(
            f"detector '{s.detector}', depth source '{self.depth_source}', "
            f"inputs {', '.join(topics[x][1] for x in slots)}, "
            f"slop {s.sync_slop_s * 1e3:.0f} ms, gravity '{self.pipeline.config.gravity.mode}', "
            f"free-form questions to {self.vlm.service or '(off)'}")

    # ----------------------------------------------------------------------------------------- inputs
    def _input_callback(self, slot: str):
        def callback(msg) -> None:
            now = time.monotonic()
            self._last_received[slot] = now
            stamp = conv.stamp_to_seconds(msg.header.stamp)
            complete = self.sync.add(slot, stamp, msg)
            if complete is not None:
                self._last_matched = now
                self.handoff.put(complete)
        return callback

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

    def _process_set(self, msgs: dict) -> None:
        """Worker thread: one matched set through the pipeline, then publish. Never raises."""
        t0 = time.perf_counter()
        try:
            frame = self._frame_from_set(msgs)
            with self._pipeline_lock:
                result = self.pipeline.process(frame)
        except SpatialError as err:
            self._frame_rejected(str(err))
            return
        self._frame_id = msgs["color"].header.frame_id or frame.camera.frame_id
        self._last_frame = (frame.stamp, time.monotonic())
        self.stats.record_frame(time.perf_counter() - t0, len(result.objects), result.warnings)
        if result.warnings:
            self.get_logger().warning("; ".join(result.warnings), throttle_duration_sec=LOG_THROTTLE_S)
        if self.settings.publish_rate_hz <= 0.0:
            self._publish_scene(msgs["color"].header.stamp)

    def _frame_rejected(self, message: str) -> None:
        self.stats.record_error(message)
        self.get_logger().error(f"frame rejected: {message}", throttle_duration_sec=LOG_THROTTLE_S)

    def _on_worker_error(self, err: BaseException) -> None:
        if not self.context.ok():          # shutting down: publishers are already invalid
            return
        self._frame_rejected(f"internal error: {type(err).__name__}: {err}")

    # ---------------------------------------------------------------------------------------- outputs
    def _publish_scene(self, stamp=None) -> None:
        if not self.context.ok():
            return
        scene = self.pipeline.memory.snapshot()
        header = Header(frame_id=self._frame_id)
        header.stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
        out = SpatialObjectArray(header=header, objects=[conv.spatial_object_msg(o) for o in scene.objects])
        self.objects_pub.publish(out)
        self.markers_pub.publish(scene_markers(scene.objects, scene.gravity, header))

    def _check_inputs(self) -> None:
        """When no set was matched for ``stale_after_s`` although messages arrive, say why: some inputs are
        silent (e.g. no camera_info) or their stamps are too far apart. Also expire remembered objects when
        no frame has come for longer than the memory timeout."""
        now = time.monotonic()
        s = self.settings
        if now - self._last_matched > s.stale_after_s:
            live = [x for x in self.sync.slots if now - self._last_received.get(x, -1e18) <= s.stale_after_s]
            silent = [x for x in self.sync.slots if x not in live]
            spread = self.sync.stats.last_unmatched_spread
            message = ""
            if live and silent:
                topics = self._topic_names
                message = (f"no messages on {', '.join(topics[x] for x in silent)} for {s.stale_after_s:g} s "
                           f"while {', '.join(topics[x] for x in live)} arrive: no frame can be processed")
                if "depth" in silent:
                    message += " (for an RGB-only camera set depth_source: model)"
                if "detections" in silent:
                    message += (" (the box detector must publish a message for every colour frame, an empty "
                                "one when it sees nothing)")
            elif live and spread is not None and spread > self.sync.slop:
                message = (f"input stamps too far apart to be matched: the newest {'/'.join(self.sync.slots)} "
                           f"stamps span {spread:.3f} s > slop {self.sync.slop:.3f} s")
            if message:
                self.stats.record_warning(message)
                self.get_logger().warning(message, throttle_duration_sec=LOG_THROTTLE_S)
        if self._last_frame is not None:
            stamp, seen = self._last_frame
            if now - seen > self.pipeline.memory.params.timeout_s:
                if self.pipeline.memory.expire(stamp + (now - seen)):
                    self.stats.set_objects(len(self.pipeline.memory.snapshot().objects))
                    self._publish_scene()          # RViz and planners see the objects go

    def _publish_diagnostics(self) -> None:
        self._check_inputs()
        s = self.settings
        sync = self.sync.stats
        extra = {"dropped_stale_frames": self.handoff.dropped,
                 "dropped_unmatched_messages": sync.dropped_total,
                 "matched_sets": sync.matched_sets,
                 "gravity": f"{self.pipeline.gravity.status}",
                 "detector": s.detector,
                 "depth_source": self.depth_source,
                 "vlm_service": self.vlm.service or "off"}
        msg = diagnostic_array(self.stats.snapshot(), self.get_clock().now().to_msg(),
                               f"{self.get_fully_qualified_name()}: perception", self.get_fully_qualified_name(),
                               s.diagnostics_period_s, s.stale_after_s, extra)
        self.diagnostics_pub.publish(msg)

    # --------------------------------------------------------------------------------------- services
    def _guarded(self, response, fill):
        """Run ``fill(response)``; any unexpected exception becomes ``success=false`` with its message."""
        try:
            fill(response)
        except SpatialError as err:
            response.success, response.message = False, str(err)
        except Exception as err:  # noqa: BLE001 - a service must answer, never take the node down
            response.success, response.message = False, f"internal error: {type(err).__name__}: {err}"
            self.get_logger().error(f"service failed: {response.message}", throttle_duration_sec=LOG_THROTTLE_S)
        return response

    def _list_objects(self, request, response):
        def fill(res):
            label_filter = request.label_filter.strip()
            objects = self.queries.list_objects(label_filter)
            res.objects = [conv.spatial_object_msg(o) for o in objects]
            res.success = True
            res.message = f"{len(objects)} object(s)"
            if label_filter and not objects:
                known = ", ".join(o.id for o in self.pipeline.memory.snapshot().objects) or "none"
                res.message = f"no object matches '{label_filter}' (known: {known})"
        return self._guarded(response, fill)

    def _get_relation(self, request, response):
        def fill(res):
            a = self.queries.get_relation(request.subject, request.relation, request.reference)
            res.success, res.message, res.answer = bool(a.success), a.message, a.answer
            res.holds, res.confidence = bool(a.holds), _finite(a.confidence)
        return self._guarded(response, fill)

    def _measure(self, request, response):
        def fill(res):
            a = self.queries.measure(request.quantity, request.subject, request.reference)
            res.success, res.message, res.answer = bool(a.success), a.message, a.answer
            res.value, res.uncertainty = _finite(a.value), _finite(a.uncertainty)
        return self._guarded(response, fill)

    def _ask(self, request, response):
        """Template questions: the geometry. Others: the VLM (blocks this callback up to vlm_timeout_s)."""
        def fill(res):
            a = self.queries.ask(request.question)
            if not a.success and not a.recognised:
                vlm = self.vlm.forward(request.question, a.message)
                for name in res.get_fields_and_field_types():
                    setattr(res, name, getattr(vlm, name))
                return
            res.success, res.message, res.answer, res.kind = bool(a.success), a.message, a.answer, a.kind
            res.yes, res.value, res.confidence = bool(a.yes), _finite(a.value), _finite(a.confidence)
        return self._guarded(response, fill)

    def _reset(self, request, response):
        def fill(res):
            with self._pipeline_lock:
                removed = len(self.pipeline.memory.snapshot().objects)
                self.handoff.clear()
                self.pipeline.reset()
            self.stats.set_objects(0)
            res.success, res.message = True, f"scene memory cleared ({removed} object(s) removed)"
        return self._guarded(response, fill)

    def _set_classes(self, request, response):
        """The detector's class phrases; refused (success=false) by a detector without class prompts or, by
        the detector, for an empty list."""
        def fill(res):
            set_classes = getattr(self.pipeline.detector, "set_classes", None)
            if set_classes is None:
                res.success = False
                res.message = f"detector '{self.settings.detector}' takes no class prompt"
                return
            classes = [str(c) for c in request.classes]
            with self._pipeline_lock:             # not while a frame is being detected
                set_classes(classes)
            res.success = True
            res.message = f"detecting {len(classes)} class(es): {', '.join(classes)}"
        return self._guarded(response, fill)

    # --------------------------------------------------------------------------------------- shutdown
    def destroy_node(self):
        """Stop and join the frame worker, then destroy the node (also for a half-constructed node)."""
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.stop()
        vlm = getattr(self, "vlm", None)
        if vlm is not None:
            vlm.close()
        return super().destroy_node()


def _finite(value) -> float:
    """Service fields must carry numbers: None/NaN/inf -> 0.0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if v == v and abs(v) != float("inf") else 0.0


def main(args=None) -> int:
    """Entry point ``perception_node``: ROS arguments (``--ros-args --params-file ...``) from ``args``/argv.
    Exit code 0 after Ctrl-C / SIGTERM, 2 for invalid parameters."""
    return spin.run_node(SpatialPerceptionNode, NODE_NAME, args)


if __name__ == "__main__":
    raise SystemExit(main())
