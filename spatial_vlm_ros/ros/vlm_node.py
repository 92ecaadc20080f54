"""The ``spatial_vlm`` node: free-form spatial questions answered by a vision-language model.

A separate executable, so that model inference never stalls perception. It serves ``~/ask``
(``spatial_vlm_interfaces/srv/Ask``, i.e. ``/spatial_vlm/ask``) and answers from:
- the newest color image on ``image_topic`` (rgb8/bgr8/rgba8/bgra8, sensor-data QoS);
- the newest measured objects on ``objects_topic`` (the perception node's ``~/objects``), written into
  the prompt by :func:`spatial_vlm_ros.vlm.grounding.scene_facts` so the model reasons over measured
  geometry; a request's non-empty ``context`` replaces them (the perception node sends the facts of the
  snapshot its own answer used). ``grounding: false`` leaves both out. The request's ``engine`` is ignored.

The one path between the two nodes: the perception node answers the questions its template parser
understands and forwards the ones it cannot parse, unchanged, to this node's ``/spatial_vlm/ask`` as an
``Ask`` client (asynchronous call, its own timeout), and template questions asked with ``engine`` ``vlm`` or
``both`` with its scene facts as ``context`` (``vlm.ask_engines``); the answer comes back with ``kind="free"`` (or
``"yes_no"`` when the model's answer starts with yes/no). Users may also call ``/spatial_vlm/ask`` directly.

Lifecycle (an ``rclpy.lifecycle`` managed node; transitions through ``/spatial_vlm/change_state``,
state from ``/spatial_vlm/get_state``, helpers in :mod:`spatial_vlm_ros.ros.lifecycle`):
- configure: validate the parameters (invalid ones: the transition fails with the reason logged and
  stored in ``transition_error``, the node stays 'unconfigured' and alive) and start the worker, which
  loads the model in the background (the transition does not wait; a load failure is reported per
  request);
- activate: subscribe to the two topics and answer ``~/ask``; deactivate: unsubscribe and refuse, keeping
  the loaded model and the last inputs (activating again does not reload); cleanup / shutdown: stop the
  worker, drop the model and the cached inputs.
- ``~/ask`` exists in every state and refuses (``success=false``, "... is not active (lifecycle state
  ...)") unless active: a caller (the perception node's forwarder) gets that reason at once instead of a
  missing server and a wait to its timeout, and a request cannot race the service's destruction.
- ``autostart`` (default true): configure + activate in the constructor, as a plain node; with invalid
  parameters the constructor raises ``SpatialError`` (``main`` exits 2).

Scheduling (:class:`spatial_vlm_ros.vlm.request_queue.InferenceWorker`): the model loads on a worker thread
from configure; one request is in flight, at most ``queue_size`` wait, each caller waits at most
``request_timeout_s``. ``success=false`` with a message when the node is not active, no model is configured,
it failed to load, the queue is full, the request timed out, or no image has arrived yet (``require_image``).
``confidence`` is the geometric mean of the generated tokens' probabilities (a model-internal score, not a
calibrated probability).

Parameters (read-only: declared by the constructor, validated and applied by configure;
``config/vlm.yaml``): see :data:`PARAMETERS`, and ``autostart``.
"""
from __future__ import annotations

import concurrent.futures
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import Image

from spatial_vlm_interfaces.msg import SpatialObjectArray
from spatial_vlm_interfaces.srv import Ask
from spatial_vlm_ros.core.errors import SpatialError
from spatial_vlm_ros.ros import conversions as conv
from spatial_vlm_ros.ros import lifecycle, spin
from spatial_vlm_ros.ros.lifecycle import autostart, declare_autostart, state_label
from spatial_vlm_ros.ros.parameters import ParamSpec, check_value, descriptor
from spatial_vlm_ros.ros.qos import output_qos, sensor_qos
from spatial_vlm_ros.vlm.answer_parsing import parse_yes_no
from spatial_vlm_ros.vlm.engine import BACKENDS, EngineSettings, GenerationOptions, VLMRequest, load_engine
from spatial_vlm_ros.vlm.grounding import scene_facts
from spatial_vlm_ros.vlm.interventions import VISION_NORM_MODES
from spatial_vlm_ros.vlm.request_queue import InferenceWorker

NODE_NAME = "spatial_vlm"


PARAMETERS = (
    ParamSpec("model", "", "Hugging Face id or local directory (transformers) / export directory (onnx); "
          "empty = no model, every request is refused"),
    ParamSpec("backend", "transformers", "inference backend", choices=BACKENDS),
    ParamSpec("device", "cpu", "cpu | cuda | cuda:N (onnx: anything but cpu tries TensorRT -> CUDA -> CPU)"),
    ParamSpec("dtype", "auto", "transformers weights dtype", choices=("auto", "float32", "float16", "bfloat16")),
    ParamSpec("compile", False, "torch.compile the model (transformers backend)"),
    ParamSpec("allow_download", False, "let transformers download a hub id (default: local files / cache only)"),
    ParamSpec("max_new_tokens", 64, "longest answer, tokens", range=(1, 4096)),
    ParamSpec("interventions.vision_norm", "off", "rescale vision tokens to the text-embedding norm",
          choices=VISION_NORM_MODES),
    ParamSpec("interventions.use_vision_layer", False, "take vision features from interventions.vision_layer"),
    ParamSpec("interventions.vision_layer", -2, "vision-tower hidden state index (0 = patch embeddings, "
          "negative from the end)", range=(-128, 128)),
    ParamSpec("queue_size", 2, "requests allowed to wait while one is answered", range=(1, 64)),
    ParamSpec("request_timeout_s", 60.0, "longest wait for an answer, queueing included, seconds",
          range=(0.1, 3600.0)),
    ParamSpec("image_topic", "/camera/color/image_raw", "color image topic (rgb8 | bgr8 | rgba8 | bgra8)"),
    ParamSpec("objects_topic", "/spatial_perception/objects", "measured objects (SpatialObjectArray) for grounding"),
    ParamSpec("grounding", True, "write the measured objects into the prompt"),
    ParamSpec("max_objects", 8, "objects listed in the prompt (nearest first)", range=(1, 64)),
    ParamSpec("require_image", True, "refuse questions until an image has arrived (false: answer text-only)"),
    ParamSpec("max_image_age_s", 0.0, "refuse when the newest image is older than this, seconds; 0 = any age",
          range=(0.0, 3600.0)),
)


@dataclass(frozen=True)
class _FactObject:
    """The fields of a ``SpatialObject`` that ``scene_facts`` reads (camera optical frame, metres)."""

    id: str
    label: str
    center: np.ndarray
    size: np.ndarray


class SpatialVLMNode(LifecycleNode):
    """See the module docstring. ``autostart`` (default true) runs configure + activate in the constructor
    and raises ``SpatialError`` when configuring fails (invalid parameters)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **lifecycle.declaring_overrides(kwargs))
        unknown = lifecycle.take_overrides(self, [p.name for p in PARAMETERS] + ["autostart"])
        lifecycle.warn_unmatched_files(self, kwargs.get("cli_args"))
        self.transition_error = ""                               # reason of the last failed transition
        self._lock = threading.Lock()                            # inputs, activity, request submission
        self._active = False
        self._image: tuple[np.ndarray, float] | None = None      # (rgb, monotonic receive time)
        self._objects: tuple[_FactObject, ...] = ()
        self._inputs: list = []                                  # subscriptions while active
        self.values: dict = {}
        self.topics: dict = {}                                   # image_topic/objects_topic -> resolved name
        self.options: GenerationOptions | None = None
        self.worker: InferenceWorker | None = None
        self._declared, self._declare_errors = self._declare()
        self._declare_errors[:0] = [f"parameter {message}" for message in unknown]
        self.create_service(Ask, "~/ask", self._ask, callback_group=ReentrantCallbackGroup())
        if declare_autostart(self):
            try:
                autostart(self)
            except SpatialError:
                self.destroy_node()                              # nobody else holds the half-built node
                raise

    def _declare(self) -> tuple[dict, list[str]]:
        """Declare every parameter; a value rclpy rejects (wrong type, out of range) is reported by
        on_configure, so that a node with bad parameters stays alive (unconfigured) when not autostarted."""
        values, errors = {}, []
        for p in PARAMETERS:
            try:
                values[p.name] = self.declare_parameter(p.name, p.default, descriptor(p)).value
            except ParameterException as err:           # rclpy's reason, without its prefix and suffix
                reason = str(err).split("Reason: ", 1)[-1].removesuffix(f": {p.name}")
                errors.append(f"parameter {p.name}: {reason}")
        return values, errors

    def _validated(self) -> dict:
        """The parameter values, or ``SpatialError`` naming every invalid one (ranges are checked by rclpy
        at declaration, from the descriptors)."""
        errors = list(self._declare_errors)
        errors += [f"parameter {msg}" for p in PARAMETERS if p.name in self._declared
                   for msg in [check_value(p, self._declared[p.name])] if msg]
        for name in ("image_topic", "objects_topic"):
            if name not in self._declared:
                continue
            try:
                self.resolve_topic_name(self._declared[name])
            except RuntimeError as err:                  # rclpy's RCLError: rcl's reason, without its source
                reason = str(err).removeprefix("failed to resolve name: ").split(", at /", 1)[0]
                errors.append(f"parameter {name}: {self._declared[name]!r} is not a valid topic name ({reason})")
        if errors:
            raise SpatialError("; ".join(errors))
        self.topics = {name: self.resolve_topic_name(self._declared[name])      # remappings applied
                       for name in ("image_topic", "objects_topic")}
        return dict(self._declared)

    def _loader(self, settings: EngineSettings):
        def load():
            start = time.monotonic()
            engine = load_engine(settings)
            self.get_logger().info(f"VLM '{settings.model}' loaded in {time.monotonic() - start:.1f} s "
                                   f"({engine.backend}{', ' + engine.provider if hasattr(engine, 'provider') else ''})")
            return engine
        return load

    # -- lifecycle transitions (run on the default callback group, one at a time) ------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate the parameters and start the worker, which loads the model in the background (a load
        failure is reported per request, the transition does not wait for it)."""
        try:
            v = self._validated()
        except SpatialError as err:
            self.transition_error = f"invalid parameters: {err}"
            self.get_logger().error(f"configure failed: {self.transition_error}")
            return TransitionCallbackReturn.FAILURE
        self.transition_error = ""
        self.values = v
        self.options = GenerationOptions(max_new_tokens=v["max_new_tokens"], return_logprobs=True)
        loader = None
        if v["model"]:
            settings = EngineSettings(
                model=v["model"], backend=v["backend"], device=v["device"], dtype=v["dtype"],
                compile=v["compile"], local_files_only=not v["allow_download"],
                vision_norm=v["interventions.vision_norm"],
                vision_layer=v["interventions.vision_layer"] if v["interventions.use_vision_layer"] else None)
            loader = self._loader(settings)
        else:
            self.get_logger().warning("no VLM model configured (parameter 'model'): ~/ask will refuse requests")
        self.worker = InferenceWorker(loader, max_queue=v["queue_size"], name="spatial-vlm-worker").start()
        self.get_logger().info(f"model '{v['model'] or '-'}' ({v['backend']}, {v['device']}), image "
                               f"{self.topics['image_topic']}, objects {self.topics['objects_topic']}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the image and objects topics and start answering ``~/ask``."""
        inputs = MutuallyExclusiveCallbackGroup()
        self._inputs = [
            self.create_subscription(Image, self.topics["image_topic"], self._on_image, sensor_qos(1),
                                     callback_group=inputs),
            self.create_subscription(SpatialObjectArray, self.topics["objects_topic"], self._on_objects,
                                     output_qos(1), callback_group=inputs)]
        with self._lock:
            self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Refuse new questions and unsubscribe; the model, the running request and the last inputs stay."""
        with self._lock:
            self._active = False
        self._unsubscribe()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker (queued requests are refused, the running one finishes), free the model and drop
        the cached inputs."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: release everything and go back to 'unconfigured'."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _unsubscribe(self) -> None:
        inputs, self._inputs = self._inputs, []
        for sub in inputs:
            self.destroy_subscription(sub)

    def _release(self) -> None:
        with self._lock:
            self._active = False
            worker, self.worker = self.worker, None
            self._image, self._objects = None, ()
        self._unsubscribe()
        if worker is not None:
            worker.stop()                      # closes the engine and drops the worker's reference to it

    # -- inputs -------------------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            rgb = conv.color_to_rgb(msg)
        except SpatialError as err:
            self.get_logger().warning(f"image dropped: {err}", throttle_duration_sec=5.0)
            return
        with self._lock:
            if self._active:
                self._image = (rgb, time.monotonic())

    def _on_objects(self, msg: SpatialObjectArray) -> None:
        objects = tuple(_FactObject(o.id, o.label, np.array([o.center.x, o.center.y, o.center.z]),
                                    np.array([o.size.x, o.size.y, o.size.z])) for o in msg.objects)
        with self._lock:
            if self._active:
                self._objects = objects

    # -- service ------------------------------------------------------------------------------------------
    def _request(self, question: str, context: str = "") -> VLMRequest:
        """The request from the newest inputs (``context``, when given, as the scene facts); call with
        ``self._lock`` held."""
        v = self.values
        image, objects = self._image, self._objects
        if image is None and v["require_image"]:
            raise SpatialError(f"no camera image received yet on {self.topics['image_topic']}")
        if image is not None and v["max_image_age_s"] > 0 and time.monotonic() - image[1] > v["max_image_age_s"]:
            raise SpatialError(f"the newest image on {self.topics['image_topic']} is older than "
                               f"{v['max_image_age_s']} s")
        facts = ""
        if v["grounding"]:
            facts = context.strip() or (scene_facts(objects, max_objects=v["max_objects"]) if objects else "")
        return VLMRequest(question=question, image=None if image is None else image[0], facts=facts)

    def _submit(self, question: str, context: str = "") -> tuple[InferenceWorker, concurrent.futures.Future]:
        """Queue the question on the worker; raises ``SpatialError`` when the node is not active or the
        worker refuses. Under the lock, so that nothing is queued after deactivate / cleanup."""
        with self._lock:
            if not self._active:
                raise SpatialError(f"the {self.get_name()} node is not active (lifecycle state "
                                   f"'{state_label(self)}'); activate it through "
                                   f"{self.get_fully_qualified_name()}/change_state")
            return self.worker, self.worker.submit(self._request(question, context), self.options)

    def _answer(self, question: str, context: str = ""):
        """The worker's answer within ``request_timeout_s`` (as ``InferenceWorker.ask``), or ``SpatialError``."""
        start = time.monotonic()
        worker, future = self._submit(question, context)
        return worker.result(future, self.values["request_timeout_s"], start)

    def _ask(self, request, response):
        response.kind = "free"
        try:
            answer = self._answer(request.question, request.context)
        except SpatialError as err:
            response.success, response.message = False, str(err)
            return response
        except Exception as err:  # noqa: BLE001 - a model error must not kill the service
            self.get_logger().error(f"VLM inference failed: {type(err).__name__}: {err}")
            response.success, response.message = False, f"VLM inference failed: {type(err).__name__}: {err}"
            return response
        response.success = True
        response.answer = answer.text
        response.message = f"answered by {self.values['model']} ({self.values['backend']})"
        if answer.token_logprobs:
            response.confidence = float(math.exp(sum(answer.token_logprobs) / len(answer.token_logprobs)))
        yes = parse_yes_no(answer.text)
        if yes is not None:
            response.kind, response.yes = "yes_no", yes
        return response

    def destroy_node(self):
        """Stop the worker if a transition has not (queued requests are refused, the running one finishes),
        then destroy the node (also one whose constructor failed)."""
        if hasattr(self, "_lock"):
            self._release()
        return super().destroy_node()


def main(args=None) -> int:
    """Entry point ``vlm_node``: ``vlm_node --ros-args --params-file config/vlm.yaml``.

    Exit code 0 after Ctrl-C / SIGTERM (clean shutdown through ``ros.spin``), 2 for invalid parameters."""
    return spin.run_node(SpatialVLMNode, NODE_NAME, args)


if __name__ == "__main__":
    raise SystemExit(main())
