"""The ``spatial_vlm`` node: free-form spatial questions answered by a vision-language model.

A separate executable, so that model inference never stalls perception. It serves ``~/ask``
(``spatial_vlm_interfaces/srv/Ask``, i.e. ``/spatial_vlm/ask``) and answers from:
- the newest colour image on ``image_topic`` (rgb8/bgr8, sensor-data QoS);
- the newest measured objects on ``objects_topic`` (the perception node's ``~/objects``), written into
  the prompt by :func:`spatial_vlm_ros.vlm.grounding.scene_facts` so the model reasons over measured
  geometry.

The one path between the two nodes: the perception node answers the questions its template parser
understands and forwards the ones it cannot parse, unchanged, to this node's ``/spatial_vlm/ask`` as an
``Ask`` client (asynchronous call, its own timeout); the answer comes back with ``kind="free"`` (or
``"yes_no"`` when the model's answer starts with yes/no). Users may also call ``/spatial_vlm/ask`` directly.

Scheduling (:class:`spatial_vlm_ros.vlm.request_queue.InferenceWorker`): the model loads on a worker thread
at start-up; one request is in flight, at most ``queue_size`` wait, each caller waits at most
``request_timeout_s``. ``success=false`` with a message when no model is configured, it failed to load, the
queue is full, the request timed out, or no image has arrived yet (``require_image``).
``confidence`` is the geometric mean of the generated tokens' probabilities (a model-internal score, not a
calibrated probability).

Parameters (read-only; ``config/vlm.yaml``): see :data:`PARAMETERS`.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image
from spatial_vlm_interfaces.msg import SpatialObjectArray
from spatial_vlm_interfaces.srv import Ask

from spatial_vlm_ros.core.errors import SpatialError
from spatial_vlm_ros.ros import conversions as conv
from spatial_vlm_ros.ros import spin
from spatial_vlm_ros.ros.qos import output_qos, sensor_qos
from spatial_vlm_ros.vlm.engine import BACKENDS, EngineSettings, GenerationOptions, VLMRequest, load_engine
from spatial_vlm_ros.vlm.grounding import scene_facts
from spatial_vlm_ros.vlm.interventions import VISION_NORM_MODES
from spatial_vlm_ros.vlm.request_queue import InferenceWorker

NODE_NAME = "spatial_vlm"


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    range: tuple | None = None
    choices: tuple[str, ...] = ()


PARAMETERS = (
    Param("model", "", "Hugging Face id or local directory (transformers) / export directory (onnx); "
          "empty = no model, every request is refused"),
    Param("backend", "transformers", "inference backend", choices=BACKENDS),
    Param("device", "cpu", "cpu | cuda | cuda:N (onnx: anything but cpu tries TensorRT -> CUDA -> CPU)"),
    Param("dtype", "auto", "transformers weights dtype", choices=("auto", "float32", "float16", "bfloat16")),
    Param("compile", False, "torch.compile the model (transformers backend)"),
    Param("allow_download", False, "let transformers download a hub id (default: local files / cache only)"),
    Param("max_new_tokens", 64, "longest answer, tokens", range=(1, 4096)),
    Param("interventions.vision_norm", "off", "rescale vision tokens to the text-embedding norm",
          choices=VISION_NORM_MODES),
    Param("interventions.use_vision_layer", False, "take vision features from interventions.vision_layer"),
    Param("interventions.vision_layer", -2, "vision-tower hidden state index (0 = patch embeddings, "
          "negative from the end)", range=(-128, 128)),
    Param("queue_size", 2, "requests allowed to wait while one is answered", range=(1, 64)),
    Param("request_timeout_s", 60.0, "longest wait for an answer, queueing included, seconds",
          range=(0.1, 3600.0)),
    Param("image_topic", "/camera/color/image_raw", "colour image topic (rgb8 | bgr8)"),
    Param("objects_topic", "/spatial_perception/objects", "measured objects (SpatialObjectArray) for grounding"),
    Param("grounding", True, "write the measured objects into the prompt"),
    Param("max_objects", 8, "objects listed in the prompt (nearest first)", range=(1, 64)),
    Param("require_image", True, "refuse questions until an image has arrived (false: answer text-only)"),
    Param("max_image_age_s", 0.0, "refuse when the newest image is older than this, seconds; 0 = any age",
          range=(0.0, 3600.0)),
)


def _descriptor(p: Param) -> ParameterDescriptor:
    text = p.description + (f" ({' | '.join(p.choices)})" if p.choices else "")
    d = ParameterDescriptor(description=text, read_only=True)
    if p.range is not None and isinstance(p.default, float):
        d.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]), to_value=float(p.range[1]))]
    elif p.range is not None:
        d.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]), step=1)]
    return d


@dataclass(frozen=True)
class _FactObject:
    """The fields of a ``SpatialObject`` that ``scene_facts`` reads (camera optical frame, metres)."""

    id: str
    label: str
    center: np.ndarray
    size: np.ndarray


class SpatialVLMNode(Node):
    """See the module docstring."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.values = v = self._declare()
        self._lock = threading.Lock()
        self._image: tuple[np.ndarray, float] | None = None      # (rgb, monotonic receive time)
        self._objects: tuple[_FactObject, ...] = ()
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

        inputs = MutuallyExclusiveCallbackGroup()
        self.create_subscription(Image, v["image_topic"], self._on_image, sensor_qos(1), callback_group=inputs)
        self.create_subscription(SpatialObjectArray, v["objects_topic"], self._on_objects, output_qos(1),
                                 callback_group=inputs)
        self.create_service(Ask, "~/ask", self._ask, callback_group=ReentrantCallbackGroup())
        self.get_logger().info(f"model '{v['model'] or '-'}' ({v['backend']}, {v['device']}), image "
                               f"{v['image_topic']}, objects {v['objects_topic']}")

    def _declare(self) -> dict:
        values = {}
        for p in PARAMETERS:
            value = self.declare_parameter(p.name, p.default, _descriptor(p)).value
            if p.choices and value not in p.choices:
                raise SpatialError(f"parameter {p.name}: {value!r} is not one of {', '.join(p.choices)}")
            if p.range is not None and not p.range[0] <= value <= p.range[1]:
                raise SpatialError(f"parameter {p.name}: {value} is outside [{p.range[0]}, {p.range[1]}]")
            values[p.name] = value
        return values

    def _loader(self, settings: EngineSettings):
        def load():
            start = time.monotonic()
            engine = load_engine(settings)
            self.get_logger().info(f"VLM '{settings.model}' loaded in {time.monotonic() - start:.1f} s "
                                   f"({engine.backend}{', ' + engine.provider if hasattr(engine, 'provider') else ''})")
            return engine
        return load

    # -- inputs -------------------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            rgb = conv.color_to_rgb(msg)
        except SpatialError as err:
            self.get_logger().warning(f"image dropped: {err}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self._image = (rgb, time.monotonic())

    def _on_objects(self, msg: SpatialObjectArray) -> None:
        objects = tuple(_FactObject(o.id, o.label, np.array([o.center.x, o.center.y, o.center.z]),
                                    np.array([o.size.x, o.size.y, o.size.z])) for o in msg.objects)
        with self._lock:
            self._objects = objects

    # -- service ------------------------------------------------------------------------------------------
    def _request(self, question: str) -> VLMRequest:
        v = self.values
        with self._lock:
            image, objects = self._image, self._objects
        if image is None and v["require_image"]:
            raise SpatialError(f"no camera image received yet on {v['image_topic']}")
        if image is not None and v["max_image_age_s"] > 0 and time.monotonic() - image[1] > v["max_image_age_s"]:
            raise SpatialError(f"the newest image on {v['image_topic']} is older than {v['max_image_age_s']} s")
        facts = scene_facts(objects, max_objects=v["max_objects"]) if v["grounding"] and objects else ""
        return VLMRequest(question=question, image=None if image is None else image[0], facts=facts)

    def _ask(self, request, response):
        response.kind = "free"
        try:
            answer = self.worker.ask(self._request(request.question), self.options,
                                     self.values["request_timeout_s"])
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
        first = answer.text.strip().lower().split(maxsplit=1)[:1]
        word = first[0].strip(".,!") if first else ""
        if word in ("yes", "no"):
            response.kind, response.yes = "yes_no", word == "yes"
        return response

    def destroy_node(self):
        """Stop the worker (queued requests are refused, the running one finishes), then destroy the node
        (also a half-constructed one, e.g. after invalid parameters)."""
        worker = getattr(self, "worker", None)
        if worker is not None:
            worker.stop()
        return super().destroy_node()


def main(args=None) -> int:
    """Entry point ``vlm_node``: ``vlm_node --ros-args --params-file config/vlm.yaml``.

    Exit code 0 after Ctrl-C / SIGTERM (clean shutdown through ``ros.spin``), 2 for invalid parameters."""
    return spin.run_node(SpatialVLMNode, NODE_NAME, args)


if __name__ == "__main__":
    raise SystemExit(main())
