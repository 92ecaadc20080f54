"""The ``spatial_perception`` node: synchronised RGB-D (+ instance masks or 2D boxes) in; scene objects, RViz
markers, diagnostics and typed spatial-query services out. A lifecycle (managed) node.

Inputs, matched by header stamp: color and camera info always; depth unless ``depth_source`` is ``model``
(an RGB-only camera: the frame's depth is then None and comes from the depth model); instance masks with
``detector: external``; 2D boxes (``spatial_vlm_interfaces/Detections2D``, or ``vision_msgs/Detection2DArray``
where vision_msgs is installed: parameter ``detections_msg``) with ``detector: boxes``. A box detector must
publish a message for every color frame, an empty one when it sees nothing, or no set is ever complete.
``~/set_classes`` sets the phrases of a detector that takes a class prompt (``open_vocab``).

Where frames go (``ros.frame_worker``): with ``frame_worker: process`` (default) a worker process subscribes
to the inputs, runs the pipeline and sends every new scene snapshot back; with ``thread`` the same
``FrameProcessor`` runs in this process. Either way the services answer from the newest snapshot
(``SceneMirror``), never waiting for a frame, and an answer never mixes two frames.

Lifecycle (``lifecycle_msgs`` transitions; ``autostart: true`` runs configure + activate in the constructor):
configure validates the parameters (an override naming no parameter of the table fails it: ``ros.lifecycle``)
and starts the worker (pipeline built, models loaded), and creates the services and publishers; activate
subscribes to the inputs; deactivate unsubscribes and keeps the memory (services still answer from it); cleanup
stops the worker and frees the memory; shutdown cleans up from any state. A failed configure leaves the node
unconfigured, alive, with the reason in the log.

``~/ask`` answers template questions from the geometry, or with the request's ``engine`` ``vlm`` / ``both``
from the VLM (grounded in this node's scene facts) or side by side (``vlm.ask_engines``); a question no
template matches is forwarded, unchanged, to the VLM node's ``Ask`` service (parameter ``vlm_service``) and
its answer returned as is; see ``ros.vlm_forwarding``. Nothing raised in a callback escapes: services
answer ``success=false``, frames and timers report a diagnostics error.

Frames: object centers in the camera optical frame of the color image (x right, y down, z forward), or in
``target_frame`` where tf2 is installed (``ros.tf_frames``); sizes along the gravity-aligned box axes (z up)
whose orientation each ``SpatialObject`` carries; metres. Optional ``vision_msgs``/``moveit_msgs`` outputs:
``ros.scene_outputs``.
"""
from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from std_srvs.srv import Trigger

from spatial_vlm_interfaces.srv import Ask, CheckPlacement, FindObjects, GetRelation, ListObjects, Measure, SetClasses
from spatial_vlm_ros.core.errors import InputError, SpatialError
from spatial_vlm_ros.core.scene import Scene
from spatial_vlm_ros.core.spatial_queries import SpatialQueries
from spatial_vlm_ros.ros import conversions as conv
from spatial_vlm_ros.ros import lifecycle, spin
from spatial_vlm_ros.ros.diagnostics import ProcessingStats, diagnostic_array
from spatial_vlm_ros.ros.frame_worker import (
    FrameEvents,
    FrameProcessor,
    FrameReport,
    SceneMirror,
    WorkerProcess,
    WorkerSpec,
    detections_input,
    input_topics,
)
from spatial_vlm_ros.ros.parameters import NODE_NAME, SPECS, declare_parameters, node_settings, pipeline_config
from spatial_vlm_ros.ros.qos import diagnostics_qos
from spatial_vlm_ros.ros.vlm_forwarding import VLMForwarder
from spatial_vlm_ros.vlm.ask_engines import VLMReply, canonical_engine, engine_fields, grounding_context, template_kind

LOG_THROTTLE_S = 5.0
RESTART_DELAY_S = 2.0            # a worker process that died is restarted after this long (while active)

__all__ = ["SpatialPerceptionNode", "detections_input", "main"]


class SpatialPerceptionNode(LifecycleNode, FrameEvents):
    """See the module docstring. Parameters: ``ros.parameters.PARAMETERS``."""

    #: executor threads (``ros.spin``): one for the services, one for a forwarded question waiting for the
    #: VLM (``vlm_forwarding.MAX_WAITING``); more threads only contend for the GIL (docs/realtime.md)
    EXECUTOR_THREADS = 2

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **lifecycle.declaring_overrides(kwargs))
        unknown = lifecycle.take_overrides(self, SPECS)        # before anything declares a parameter
        lifecycle.warn_unmatched_files(self, kwargs.get("cli_args"))
        self.transition_error = ""
        self.vlm: VLMForwarder | None = None
        self.mirror = SceneMirror()
        self.stats = ProcessingStats()
        self.frames: FrameProcessor | None = None        # frame_worker thread
        self.worker_process: WorkerProcess | None = None  # frame_worker process
        self.queries: SpatialQueries | None = None
        self._entities: list = []          # (destroy method, entity): what configure created on this node
        self._active = False
        self.worker_values: dict = {}
        self._restart_at: float | None = None
        self._transition_lock = threading.RLock()
        try:
            self._values = declare_parameters(self, unknown)
            self._parameter_error = ""
        except InputError as err:
            self._values, self._parameter_error = None, str(err)
        autostart = self.get_parameter("autostart").value if self.has_parameter("autostart") else True
        if autostart:
            try:
                lifecycle.autostart(self)
            except BaseException:
                self.destroy_node()        # a rejected configuration leaves no half-built node in the graph
                raise

    # -------------------------------------------------------------------------------------- lifecycle
    def on_configure(self, state) -> TransitionCallbackReturn:
        with self._transition_lock:
            try:
                self._configure()
            except SpatialError as err:
                self._teardown()
                return self._fail(str(err))
            except Exception as err:  # noqa: BLE001 - a transition reports, never raises
                self._teardown()
                return self._fail(f"internal error: {type(err).__name__}: {err}")
            return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        with self._transition_lock:
            try:
                self._subscribe()
            except SpatialError as err:
                return self._fail(f"activate failed: {err}")
            except Exception as err:  # noqa: BLE001 - a transition reports, never raises
                return self._fail(f"activate failed: internal error: {type(err).__name__}: {err}")
            self._active = True
            return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        with self._transition_lock:
            self._active = False
            try:
                if self.frames is not None:
                    self.frames.unsubscribe()
                elif self.worker_process is not None and self.worker_process.alive:
                    self.worker_process.unsubscribe()
            except Exception as err:  # noqa: BLE001 - deactivating always succeeds; the worker may be gone
                self.get_logger().warning(f"deactivate: {err}")
            return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        with self._transition_lock:
            self._teardown()
            return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        with self._transition_lock:
            self._active = False
            self._teardown()
            return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        with self._transition_lock:
            self._active = False
            self._teardown()
            return TransitionCallbackReturn.SUCCESS

    def _fail(self, reason: str) -> TransitionCallbackReturn:
        self.transition_error = reason
        self.get_logger().error(reason)
        return TransitionCallbackReturn.FAILURE

    def _configure(self) -> None:
        if self._parameter_error:
            raise InputError(self._parameter_error)
        values = self._values
        self.settings = s = node_settings(values)
        self.depth_source = s.depth_source
        config = pipeline_config(values)
        if self.frames is not None or self.worker_process is not None:
            self._teardown()
        topics = {slot: self.resolve_topic_name(name) for slot, name in input_topics(s).items()}
        topics.update({name: self.resolve_topic_name(f"~/{name}")
                       for name in ("objects", "markers", "detections_3d", "collision_objects")})
        namespace = self.get_namespace()
        self._spec = WorkerSpec(settings=s, config=config, topics=topics, node_name=f"_{self.get_name()}_frames",
                                namespace=namespace, log_level=int(self.get_logger().get_effective_level()),
                                use_sim_time=bool(self.get_parameter("use_sim_time").value))
        self.vlm = VLMForwarder(self, s.vlm_service, s.vlm_timeout_s)     # own callback group
        noise = self._start_worker()
        self.queries = SpatialQueries(self.mirror, noise)

        services, timers = ReentrantCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", diagnostics_qos())
        self._entities = [(self.destroy_publisher, self.diagnostics_pub)] + [
            (self.destroy_service, self.create_service(srv, f"~/{name}", handler, callback_group=services))
            for srv, name, handler in (
                (ListObjects, "list_objects", self._list_objects), (GetRelation, "get_relation", self._get_relation),
                (Measure, "measure", self._measure), (Ask, "ask", self._ask), (Trigger, "reset", self._reset),
                (SetClasses, "set_classes", self._set_classes), (FindObjects, "find", self._find),
                (CheckPlacement, "check_placement", self._check_placement))]
        diagnostics_timer = self.create_timer(s.diagnostics_period_s, self._on_diagnostics_timer,
                                              callback_group=timers)
        self._entities.append((self.destroy_timer, diagnostics_timer))
        self.get_logger().info(
            f"detector '{s.detector}', depth source '{s.depth_source}', frames in a {s.frame_worker}, "
            f"inputs {', '.join(topics[x] for x in self.slots)}, slop {s.sync_slop_s * 1e3:.0f} ms, "
            f"gravity '{s.gravity_mode}', objects in {s.target_frame or 'the camera optical frame'}, "
            f"free-form questions to {self.vlm.service or '(off)'}")

    def _start_worker(self):
        """Start the configured frame worker; returns the noise model of relations and quantities."""
        if self.settings.frame_worker == "thread":
            self.frames = FrameProcessor(self, self._spec, self)
            self.slots = tuple(self.frames.slots)
            return self.frames.noise
        self.worker_process = WorkerProcess(self._spec, self, on_exit=self._on_worker_exit)
        noise = self.worker_process.start(self.settings.worker_start_timeout_s)
        self.slots = self.worker_process.slots
        return noise

    def _subscribe(self) -> None:
        if self.frames is not None:
            self.frames.subscribe()
        elif self.worker_process is not None:
            self.worker_process.subscribe()
        else:
            raise SpatialError("the node is not configured")

    def _teardown(self) -> None:
        """Stop the worker and release what configure created (the memory goes)."""
        self._active = False
        frames, self.frames = self.frames, None
        worker, self.worker_process = self.worker_process, None
        if frames is not None:
            frames.close()
        if worker is not None:
            worker.close()
        vlm, self.vlm = getattr(self, "vlm", None), None
        if vlm is not None:
            vlm.close()
            if vlm.client is not None:
                self.destroy_client(vlm.client)
        for destroy, entity in self._entities:
            destroy(entity)
        self._entities = []
        self.worker_values = {}            # the status of a worker that is gone
        self.queries = None
        self.mirror.clear()
        self._restart_at = None

    @property
    def pipeline(self):
        """The frame pipeline (``frame_worker: thread`` only; with a worker process it lives there)."""
        return self.frames.pipeline if self.frames is not None else None

    @property
    def sync(self):
        """The stamp synchroniser (``frame_worker: thread`` only)."""
        return self.frames.sync if self.frames is not None else None

    @property
    def handoff(self):
        """The newest-only frame hand-off (``frame_worker: thread`` only)."""
        return self.frames.handoff if self.frames is not None else None

    # ---------------------------------------------------------------------- FrameEvents (worker side)
    def frame(self, report: FrameReport) -> None:     # the worker published the outputs already
        self.mirror.update(report.scene)
        self.stats.record_frame(report.latency_s, len(report.scene.objects), report.warnings)
        if report.warnings:
            self.get_logger().warning("; ".join(report.warnings), throttle_duration_sec=LOG_THROTTLE_S)

    def rejected(self, message: str) -> None:
        self.stats.record_error(message)
        if self.context.ok():
            self.get_logger().error(f"frame rejected: {message}", throttle_duration_sec=LOG_THROTTLE_S)

    def warning(self, message: str) -> None:
        self.stats.record_warning(message)
        if self.context.ok():
            self.get_logger().warning(message, throttle_duration_sec=LOG_THROTTLE_S)

    def scene(self, scene: Scene, reason: str) -> None:
        """The memory changed without a frame (the worker published expired objects itself; a reset is not
        published: an output stamped now would pass for a newer frame)."""
        self.mirror.update(scene)
        self.stats.set_objects(len(scene.objects))

    def status(self, values: dict) -> None:
        self.worker_values = dict(values)

    def _on_worker_exit(self, exitcode) -> None:
        """Receiver thread: the worker process ended unasked. The last scene stays readable; while active,
        a new worker is started (with an empty memory) after ``RESTART_DELAY_S``."""
        self.stats.record_error(f"the frame worker process died (exit code {exitcode})"
                                + ("; restarting it" if self._active else ""))
        if self.context.ok():
            self.get_logger().error(f"the frame worker process died (exit code {exitcode})")
        if self._active:
            self._restart_at = time.monotonic() + RESTART_DELAY_S

    def _restart_worker(self) -> None:
        with self._transition_lock:
            self._restart_at = None
            if not self._active or self.worker_process is None or self.worker_process.alive:
                return
            old, self.worker_process = self.worker_process, None
            old.close()
            self.worker_values = {}
            try:
                self._start_worker()
                self.worker_process.subscribe()
                self.stats.record_warning("the frame worker process was restarted: the scene memory starts over")
            except SpatialError as err:
                self.stats.record_error(f"restarting the frame worker failed: {err}")
                self._restart_at = time.monotonic() + 5 * RESTART_DELAY_S

    # ---------------------------------------------------------------------------------------- outputs
    def _on_diagnostics_timer(self) -> None:
        try:
            if self._restart_at is not None and time.monotonic() >= self._restart_at:
                self._restart_worker()
            if self.frames is not None:
                self.frames.check_inputs()
                self.worker_values = self.frames.status_values()
            self._publish_diagnostics()
        except Exception as err:  # noqa: BLE001 - a timer callback must not stop the executor
            self.stats.record_error(f"internal error in diagnostics: {type(err).__name__}: {err}")

    def _publish_diagnostics(self) -> None:
        s = self.settings
        extra = dict(self.worker_values)
        extra.update({"detector": s.detector, "depth_source": s.depth_source, "frame_worker": s.frame_worker,
                      "state": lifecycle.state_label(self),
                      "vlm_service": (self.vlm.service if self.vlm else "") or "off"})
        if self.worker_process is not None:
            extra["worker_pid"] = self.worker_process.process.pid if self.worker_process.alive else "dead"
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
            gravity = self.mirror.snapshot().gravity      # ListObjects: the camera optical frame
            res.objects = [conv.spatial_object_msg(o, gravity) for o in objects]
            res.success = True
            res.message = f"{len(objects)} object(s)"
            if label_filter and not objects:
                known = ", ".join(o.id for o in self.mirror.snapshot().objects) or "none"
                res.message = f"no object matches '{label_filter}' (known: {known})"
        return self._guarded(response, fill)

    def _get_relation(self, request, response):
        """``threshold`` 0 asks the plain relation; otherwise the thresholded one (``core.thresholds``)."""
        def fill(res):
            threshold = float(request.threshold)
            a = self.queries.get_relation(request.subject, request.relation, request.reference,
                                          threshold_m=None if threshold == 0.0 else threshold)
            res.success, res.message, res.answer = bool(a.success), a.message, a.answer
            res.holds, res.confidence = bool(a.holds), _finite(a.confidence)
        return self._guarded(response, fill)

    def _measure(self, request, response):
        def fill(res):
            a = self.queries.measure(request.quantity, request.subject, request.reference)
            res.success, res.message, res.answer = bool(a.success), a.message, a.answer
            res.value, res.uncertainty = _finite(a.value), _finite(a.uncertainty)
        return self._guarded(response, fill)

    def _find(self, request, response):
        """Scene query (``core.scene_queries``): objects in the camera optical frame, as ``~/list_objects``."""
        def fill(res):
            a = self.queries.find(request.relation, request.reference, request.label_filter, request.order_by,
                                  int(request.limit))
            res.success, res.message, res.answer = bool(a.success), a.message, a.answer
            if a.success and a.gravity is not None:
                res.objects = [conv.spatial_object_msg(o, a.gravity) for o in a.objects]
                res.confidences = [_finite(c) for c in a.confidences]
                res.values = [_finite(v) for v in a.values]
                res.relation, res.reference_id, res.order_by = a.relation, a.reference_id, a.order_by
                res.descending, res.order_confidence = bool(a.descending), _finite(a.order_confidence)
        return self._guarded(response, fill)

    def _check_placement(self, request, response):
        """Free space (``core.placement``): the suggested pose in the camera optical frame and the gravity frame."""
        def fill(res):
            size = (request.size.x, request.size.y, request.size.z)
            point = (request.point.x, request.point.y, request.point.z)
            a = self.queries.check_placement(size, request.location, list(request.references), point,
                                             float(request.yaw) if request.use_yaw else None,
                                             float(request.clearance))
            res.success, res.message, res.answer = bool(a.success), a.message, a.answer
            if not a.success:
                return
            res.fits, res.confidence = bool(a.fits), _finite(a.confidence)
            res.margin, res.margin_sigma, res.free_width = (_finite(a.margin_m), _finite(a.margin_sigma_m),
                                                            _finite(a.free_width_m))
            p = res.pose
            p.position.x, p.position.y, p.position.z = a.center_camera
            p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = a.orientation_camera
            res.center_gravity.x, res.center_gravity.y, res.center_gravity.z = a.center_gravity
            res.yaw, res.location = _finite(a.yaw), a.location
            res.reference_ids, res.support_id = list(a.reference_ids), a.support_id
        return self._guarded(response, fill)

    def _ask(self, request, response):
        """Template questions: the geometry, the VLM or both (``request.engine``, see ``vlm.ask_engines``).
        Others: the VLM. Asking the VLM blocks this callback up to vlm_timeout_s."""
        def fill(res):
            engine = canonical_engine(request.engine)
            a = self.queries.ask(request.question)
            if not a.success and not a.recognised:
                _set_fields(res, self.vlm.forward(request.question, a.message))
                return
            geometry = {"success": bool(a.success), "message": a.message, "answer": a.answer, "kind": a.kind,
                        "yes": bool(a.yes), "value": _finite(a.value), "confidence": _finite(a.confidence)}
            if engine == "geometry":
                _set_fields(res, geometry)
                return
            kind = template_kind(request.question)
            reply, failure = self.vlm.ask_grounded(request.question, grounding_context(self.mirror.snapshot()))
            vlm = VLMReply.failed(kind, failure) if reply is None else VLMReply.read(kind, reply)
            _set_fields(res, engine_fields(engine, geometry, vlm))
        return self._guarded(response, fill)

    def _reset(self, request, response):
        def fill(res):
            worker = self.frames or self.worker_process
            if worker is None:
                raise SpatialError("the node is not configured")
            res.message = worker.reset()          # the worker reports the emptied scene first
            res.success = True
        return self._guarded(response, fill)

    def _set_classes(self, request, response):
        """The detector's class phrases, used from the next frame; refused (success=false) by a detector
        without class prompts or, by the detector, for an empty list."""
        def fill(res):
            worker = self.frames or self.worker_process
            if worker is None:
                raise SpatialError("the node is not configured")
            res.message = worker.set_classes([str(c) for c in request.classes])
            res.success = True
        return self._guarded(response, fill)

    # --------------------------------------------------------------------------------------- shutdown
    def destroy_node(self):
        """Wind the lifecycle down (worker stopped and joined), then destroy the node (also a
        half-constructed one)."""
        lifecycle.wind_down(self)
        with self._transition_lock:
            self._teardown()
        return super().destroy_node()


def _set_fields(response, source) -> None:
    """Copy ``source`` (a dict of field values, or a response of the same type) into ``response``."""
    values = source if isinstance(source, dict) else {name: getattr(source, name)
                                                      for name in source.get_fields_and_field_types()}
    for name, value in values.items():
        setattr(response, name, _finite(value) if isinstance(value, float) else value)


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
