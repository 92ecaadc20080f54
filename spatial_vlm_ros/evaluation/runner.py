"""Offline evaluation: replay a bag into the real node, ask every ground-truth question over its services, score.

    scripts/ros_env.sh python -m spatial_vlm_ros.cli evaluate BAG [--ground-truth GT.json] [--out DIR]

Flow: start the ``spatial_perception`` node (a subprocess of this interpreter, or in-process), replay the bag
with ``bag.player.BagPlayer`` at recorded timing (times ``rate``), pausing after each FRAME SET (consecutive
ground-truth frames of one scene, docs/ground_truth_format.md): wait until the node has published
``~/objects`` for the set's last frame, ask every relation and quantity of that frame's ground truth through
``~/get_relation`` and ``~/measure`` with rclpy clients, then ``~/reset`` when the next set is another scene.
Answers are scored by ``scoring``; ``report`` writes ``results.json``, ``report.md``, plots and annotated frames.

Engines (``--engine``): ``geometry`` (default) asks through the typed services as above; ``vlm`` starts a
``vlm_node`` subprocess serving ``--vlm-model`` next to the perception node and asks each question as its
template question (``template_question``) through ``~/ask`` with ``engine: vlm``, so the VLM answers with
the perception node's scene facts in its prompt and the newest replayed image. Its text is read as yes/no or
a length (``vlm.answer_parsing``); an answer that cannot be read counts as wrong, like a failed call. The
VLM's token probability is not a probability of being right, so VLM records carry no confidence and no
uncertainty (no calibration rows). The run is named ``<detector> (vlm)`` in the report.

Works for any bag with the camera topics and a ground-truth file in the documented format (``objects`` boxes
are enough: relations and quantities are then computed from them). The node's objects of each scored frame are
matched one-to-one to the visible ground-truth objects by 3D centre (``matching``). With ``external`` (the
bag's instance masks) and ``boxes`` (its ``/camera/detections``), whose labels are the ground truth's, an
object with a unique label is asked about by that label and the others by the matched node id; with
``tabletop`` (colour labels) every object by the matched node id. Every visible ground-truth object is scored:
a question about an object no node object matched is not asked and counts as wrong (``QueryRecord.missed``).
Detector recall (objects found / objects present) and precision (found / objects the node reported) are in
the summary under ``objects``. Must run under ``scripts/ros_env.sh``.
"""
from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spatial_vlm_ros.bag.messages import CameraTopics
from spatial_vlm_ros.bag.player import BagPlayer
from spatial_vlm_ros.bag.reader import BagReader, find_ground_truth
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.relations import RELATIONS
from spatial_vlm_ros.sim.ground_truth_file import load_ground_truth

from .matching import match_objects
from .records import RELATION, FrameStats, QueryRecord
from .report import FrameAnnotation, RunResult, write_report
from .scoring import summarize
from .truth_queries import (
    NOT_FOUND,
    FrameSet,
    askable_objects,
    askable_records,
    detection_counts,
    failed_records,
    frame_queries,
    frame_sets,
    label_names,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PARAMS = REPO_ROOT / "config" / "perception.yaml"
DEFAULT_VLM_PARAMS = REPO_ROOT / "config" / "vlm.yaml"

#: who answers the evaluation's questions (see the module docstring)
EVALUATED_ENGINES = ("geometry", "vlm")

#: quantity -> its template question (``core.questions.parse`` reads each back to the quantity)
QUANTITY_QUESTIONS = {
    "distance": "How far is the {a} from the {b}?", "gap": "What is the gap between the {a} and the {b}?",
    "horizontal_distance": "What is the horizontal distance between the {a} and the {b}?",
    "vertical_distance": "What is the vertical distance between the {a} and the {b}?",
    "width": "How wide is the {a}?", "depth": "How deep is the {a}?", "height": "How tall is the {a}?",
    "distance_to_camera": "How far is the {a} from the camera?"}

#: message types whose CDR payload starts with a std_msgs/Header (the stamp is read without deserialising)
HEADER_FIRST_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo",
                      "spatial_vlm_interfaces/msg/InstanceSegmentation", "spatial_vlm_interfaces/msg/Detections2D"}


@dataclass
class EvaluationConfig:
    """How to run one evaluation. Times in seconds."""

    detector: str = "external"                 # external | boxes | tabletop
    params_file: str | None = None             # node parameter YAML; default config/perception.yaml
    rate: float = 1.0                          # replay speed factor within a frame set
    node: str = "subprocess"                   # subprocess | inprocess
    namespace: str = ""
    parameter_overrides: dict = field(default_factory=dict)   # extra node parameters, e.g. compensate_motion
    settle_timeout_s: float = 15.0             # wait for the node to publish a frame set's last frame
    startup_timeout_s: float = 60.0
    service_timeout_s: float = 10.0
    relations: set[str] | None = None          # subset of relations to ask (None = all in the ground truth)
    quantities: set[str] | None = None
    annotate: int = 4                          # annotated frames in the report
    progress: bool = True
    log_path: str | None = None                # node subprocess output (default: <out_dir>/node_<detector>.log)
    engine: str = "geometry"                   # geometry | vlm (see the module docstring)
    vlm_model: str = ""                        # engine vlm: the vlm_node's model (HF id or directory)
    vlm_parameters: dict = field(default_factory=dict)   # further vlm_node parameters, e.g. backend, device
    vlm_timeout_s: float = 120.0               # engine vlm: longest wait for one answer (the first one
                                               # includes loading the model)


@dataclass
class EvaluationRun:
    """Everything one evaluation produced (before writing the report)."""

    detector: str
    records: list[QueryRecord]
    frames: FrameStats
    skipped: Counter
    matching: dict                              # GT objects askable / matched to a node object, per run
    annotations: list[FrameAnnotation]
    wall_s: float
    summary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    engine: str = "geometry"

    @property
    def name(self) -> str:
        """The run's name in the report: the detector, with `` (vlm)`` when the VLM answered."""
        return self.detector if self.engine == "geometry" else f"{self.detector} ({self.engine})"


# --------------------------------------------------------------------------------------------- helpers
def header_stamp_ns(data: bytes) -> int | None:
    """Header stamp (ns) of a CDR-serialised message whose first field is a std_msgs/Header."""
    if len(data) < 12:
        return None
    little = data[1] in (0x01, 0x03)            # CDR_LE / PL_CDR_LE encapsulation
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", data, 4)
    return int(sec) * 10**9 + int(nsec)


def node_parameter_overrides(cfg: EvaluationConfig) -> dict:
    """Parameters the evaluation imposes on the node, on top of the user's file.

    ``memory.timeout_s``: replay pauses while questions are asked, and the node expires objects after this
    long without frames (wall time), so it must outlast a pause; frame sets of different scenes are separated
    with ``~/reset`` instead. ``publish_rate_hz`` 0: ``~/objects`` is published per processed frame with that
    frame's stamp, which is how the runner knows a frame was processed.
    """
    overrides = {"memory.timeout_s": 1e5, "publish_rate_hz": 0.0}
    if cfg.engine == "vlm":
        overrides.update(vlm_service=vlm_service(cfg), vlm_timeout_s=cfg.vlm_timeout_s + 5.0)
    return {**overrides, **cfg.parameter_overrides}


def vlm_service(cfg: EvaluationConfig) -> str:
    """The ``Ask`` service of the evaluation's VLM node (in ``cfg.namespace``)."""
    return "/" + "/".join(p for p in (cfg.namespace.strip("/"), "spatial_vlm", "ask") if p)


def vlm_parameter_overrides(cfg: EvaluationConfig) -> dict:
    """The VLM node's parameters on top of ``config/vlm.yaml``: the model, and a request timeout that the
    perception node's forward outlasts (so the VLM's own timeout message comes back)."""
    return {"model": cfg.vlm_model, "request_timeout_s": cfg.vlm_timeout_s, **cfg.vlm_parameters}


def _ros_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _ros_parameters(values: dict) -> list[str]:
    return [x for k, v in values.items() for x in ("-p", f"{k}:={_ros_value(v)}")]


class NodeRunner:
    """The perception node for the evaluation: a subprocess of this interpreter, or in this process."""

    def __init__(self, cfg: EvaluationConfig, params_file: Path, log_path: Path):
        self.cfg, self.params_file, self.log_path = cfg, params_file, log_path
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._inproc = None

    def start(self) -> None:
        overrides = node_parameter_overrides(self.cfg)
        if self.cfg.node == "inprocess":
            self._start_inprocess(overrides)
            return
        cmd = [sys.executable, "-m", "spatial_vlm_ros.ros.run", "--params", str(self.params_file),
               "--detector", self.cfg.detector]
        if self.cfg.namespace:
            cmd += ["--namespace", self.cfg.namespace]
        self._spawn(cmd + ["--ros-args"] + _ros_parameters(overrides))

    def _spawn(self, cmd: list[str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - the node process writes to it until stop() closes it
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(REPO_ROOT))

    def _start_inprocess(self, overrides: dict) -> None:
        import threading

        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        from spatial_vlm_ros.ros.parameters import NODE_NAME, load_parameter_file
        from spatial_vlm_ros.ros.perception_node import SpatialPerceptionNode

        values = load_parameter_file(str(self.params_file), NODE_NAME, self.cfg.namespace)
        values.update(overrides, detector=self.cfg.detector)
        ctx = rclpy.Context()
        rclpy.init(context=ctx)
        node = SpatialPerceptionNode(context=ctx, namespace=self.cfg.namespace or None,
                                     parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        executor = MultiThreadedExecutor(num_threads=4, context=ctx)
        executor.add_node(node)
        thread = threading.Thread(target=executor.spin, name="perception-node", daemon=False)
        thread.start()
        self._inproc = (ctx, node, executor, thread)

    def alive(self) -> bool:
        if self._inproc is not None:
            return True
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        """Stop the node (SIGINT, then SIGTERM/SIGKILL if it hangs); return its exit code."""
        if self._inproc is not None:
            import rclpy
            ctx, node, executor, thread = self._inproc
            executor.shutdown()
            thread.join(timeout=10)
            node.destroy_node()
            rclpy.try_shutdown(context=ctx)
            self._inproc = None
            return 0
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(2)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.terminate()
                    try:
                        self.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait()
            code = self.proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


class VLMNodeRunner(NodeRunner):
    """The ``spatial_vlm`` node of ``engine: vlm``: a subprocess with ``config/vlm.yaml`` and
    ``vlm_parameter_overrides``."""

    def start(self) -> None:
        cmd = [sys.executable, "-m", "spatial_vlm_ros.ros.vlm_node", "--ros-args", "--params-file",
               str(self.params_file)] + _ros_parameters(vlm_parameter_overrides(self.cfg))
        if self.cfg.namespace.strip("/"):
            cmd += ["-r", f"__ns:=/{self.cfg.namespace.strip('/')}"]
        self._spawn(cmd)


class SteppedBagPlayer(BagPlayer):
    """``BagPlayer`` that pauses at frame-set boundaries: before publishing the first camera message stamped
    after a boundary it calls ``on_boundary(index)``, which may block (the questions are asked there), then
    resumes at recorded timing; boundaries after the bag's last message fire when the bag ends. Also records
    the wall time each colour frame was published."""

    def __init__(self, bag, boundaries_ns: list[int], on_boundary: Callable[[int], None],
                 color_topic: str, **kwargs):
        super().__init__(bag, **kwargs)
        self.boundaries_ns = list(boundaries_ns)
        self.on_boundary = on_boundary
        self.color_topic = color_topic
        self.color_published: dict[int, float] = {}      # header stamp ns -> wall time.time() of publish
        self.last_color_ns: int | None = None
        self.error: BaseException | None = None
        self._next = 0

    @staticmethod
    def _stamp_of(m) -> int:
        if m.msgtype in HEADER_FIRST_TYPES:
            stamp = header_stamp_ns(m.data)
            if stamp is not None:
                return stamp
        return m.log_time_ns

    def _fire(self) -> None:
        i = self._next
        self._next += 1
        try:
            self.on_boundary(i)
        except BaseException as err:          # noqa: BLE001 - stop replaying, re-raised by the caller
            self.error = err
            self.stop()

    def _fire_until(self, stamp_ns: float) -> bool:
        """Fire every pending boundary before ``stamp_ns``; True if any fired."""
        fired = False
        while self._next < len(self.boundaries_ns) and stamp_ns > self.boundaries_ns[self._next] \
                and not self.stopped:
            self._fire()
            fired = True
        return fired

    def before_publish(self, message) -> bool:
        return self._fire_until(self._stamp_of(message))    # after a pause, resume the schedule here

    def after_publish(self, message) -> None:
        if message.topic == self.color_topic:
            stamp = self._stamp_of(message)
            self.color_published[stamp] = time.time()
            self.last_color_ns = stamp

    def end_of_pass(self) -> None:
        self._fire_until(math.inf)                           # sets at the end of the bag


#: detectors the evaluation can run the node with
EVALUATED_DETECTORS = ("external", "boxes", "tabletop")

#: detectors whose node labels are the ground-truth labels (masks or boxes written from the ground truth)
GT_LABELLED = ("external", "boxes")


def replay_topics(detector: str, topics: CameraTopics, in_bag) -> list[str]:
    """Bag topics to replay for ``detector``: the camera topics, plus ``/camera/instances`` for ``external``
    and ``/camera/detections`` for ``boxes`` (each only where the bag has it)."""
    wanted = [topics.color, topics.depth, topics.camera_info]
    if detector == "external":
        wanted.append(topics.instances)
    detections = getattr(topics, "detections", None)
    if detector == "boxes" and detections:
        wanted.append(detections)
    return [t for t in wanted if t in in_bag]


def question_names(detector: str, visible: dict[str, dict], matches) -> dict[str, str]:
    """GT id -> the name the questions use. With ground-truth labels (``external``, ``boxes``) an object
    whose label is unique among the visible ones is asked about by that label, as a planner would; other
    objects (duplicate labels, or every object for ``tabletop``) by the id of the node object matched to it.
    An object in neither is one the node did not find."""
    names = label_names(visible) if detector in GT_LABELLED else {}
    for m in matches:
        names.setdefault(m.gt_id, m.node_id)
    return names


def _node_centres(update) -> dict[str, np.ndarray]:
    return {o.id: np.array([o.center.x, o.center.y, o.center.z]) for o in update.objects}


def _fill(record: QueryRecord, response, latency_ms: float) -> None:
    record.latency_ms = latency_ms
    if response is None:
        record.success, record.message = False, "service call timed out"
        return
    record.success, record.message = bool(response.success), str(response.message)
    record.answer = str(response.answer)
    if not record.success:
        record.predicted = None
    elif record.kind == "relation":
        record.predicted, record.confidence = bool(response.holds), float(response.confidence)
    else:
        record.predicted, record.uncertainty = float(response.value), float(response.uncertainty)


def _fill_vlm(record: QueryRecord, response, latency_ms: float) -> None:
    """A record from an ``Ask`` response with ``engine: vlm``: an answer that was not read counts as wrong."""
    record.latency_ms = latency_ms
    if response is None:
        record.success, record.message = False, "service call timed out"
        return
    record.success, record.message, record.answer = bool(response.success), str(response.message), \
        str(response.answer)
    if not (record.success and response.vlm_parsed):
        record.predicted = None
    else:
        record.predicted = bool(response.yes) if record.kind == RELATION else float(response.value)


def relation_question(subject: str, relation: str, reference: str) -> str:
    """"Is the A to the left of the B?": a relation's yes/no question as ``~/ask`` parses it."""
    return f"Is the {subject} {RELATIONS[relation].phrase} the {reference}?"


def template_question(record: QueryRecord) -> str:
    """The record's question as ``~/ask`` parses it: ``relation_question``, or "How far is the A from the B?"
    (``QUANTITY_QUESTIONS``)."""
    if record.kind == RELATION:
        return relation_question(record.subject, record.relation_or_quantity, record.reference)
    return QUANTITY_QUESTIONS[record.relation_or_quantity].format(a=record.subject, b=record.reference)


def ask_records(client, records: list[QueryRecord], timeout_s: float, engine: str = "geometry") -> None:
    """Ask each record's question and fill in the answers: through ``~/get_relation`` / ``~/measure``
    (``geometry``), or as its template question through ``~/ask`` with ``engine: vlm``."""
    for r in records:
        if engine == "vlm":
            resp, ms = client.ask(template_question(r), timeout_s, engine="vlm")
            _fill_vlm(r, resp, ms)
        elif r.kind == "relation":
            resp, ms = client.get_relation(r.subject, r.relation_or_quantity, r.reference, timeout_s)
            _fill(r, resp, ms)
        else:
            resp, ms = client.measure(r.relation_or_quantity, r.subject, r.reference, timeout_s)
            _fill(r, resp, ms)


# ----------------------------------------------------------------------------------- annotated frames
def _project(K: np.ndarray, points_c: np.ndarray) -> np.ndarray:
    p = np.asarray(points_c, dtype=np.float64).reshape(-1, 3)
    z = np.where(p[:, 2] > 1e-6, p[:, 2], np.nan)
    return np.stack([K[0, 0] * p[:, 0] / z + K[0, 2], K[1, 1] * p[:, 1] / z + K[1, 2]], axis=1)


def _gt_box_2d(obj: dict, rotation: np.ndarray, K: np.ndarray, w: int, h: int):
    lo, hi = np.asarray(obj["box_min"], float), np.asarray(obj["box_max"], float)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    uv = _project(K, corners @ rotation)          # gravity -> camera: p_c = R^T p_g
    if not np.isfinite(uv).all():
        return None
    u0, v0 = np.clip(uv.min(axis=0), 0, [w - 1, h - 1])
    u1, v1 = np.clip(uv.max(axis=0), 0, [w - 1, h - 1])
    return (int(u0), int(v0), int(u1), int(v1)) if u1 > u0 and v1 > v0 else None


def _question_lines(records: list[QueryRecord]) -> list[str]:
    from spatial_vlm_ros.core.relations import RELATIONS
    lines = []
    rel = next((r for r in records if r.kind == "relation" and not r.ambiguous and r.relation_or_quantity
                in ("left_of", "right_of", "behind", "in_front_of", "on_top_of", "taller_than") and r.truth), None)
    rel = rel or next((r for r in records if r.kind == "relation" and not r.ambiguous), None)
    def truth_names(r: QueryRecord) -> str:
        if r.subject_id.startswith(r.subject.replace(" ", "_")):
            return ""
        return f" ({r.subject} = {r.subject_id}, {r.reference} = {r.reference_id})"
    if rel is not None:
        phrase = RELATIONS[rel.name].phrase if rel.name in RELATIONS else rel.name
        lines += [f"Q: Is the {rel.subject} {phrase} the {rel.reference}?",
                  f"A: {rel.answer or rel.message}", f"truth: {'yes' if rel.truth else 'no'}{truth_names(rel)}"]
    qty = next((r for r in records if r.kind == "quantity" and r.name == "distance"), None)
    if qty is not None:
        lines += [f"Q: How far apart are the {qty.subject} and the {qty.reference}?",
                  f"A: {qty.answer or qty.message}", f"truth: {float(qty.truth):.3f} m{truth_names(qty)}"]
    return lines


def annotate_frame(bag_path: Path, topics: CameraTopics, gt_frame: dict, update, records: list[QueryRecord],
                   title: str) -> FrameAnnotation | None:
    """The frame's colour image with ground-truth boxes, the node's centres and one question + answer."""
    stamp = int(gt_frame["stamp_ns"])
    from spatial_vlm_ros.bag.messages import camera_info_dict, image_array
    from spatial_vlm_ros.bag.typestore import typestore
    store = typestore()
    rgb, info = None, None
    with BagReader(bag_path, topics) as reader:
        wanted = [t for t in (topics.color, topics.camera_info) if t in reader.topics]
        for m in reader.raw_messages(wanted, start_ns=stamp - 50_000_000, stop_ns=stamp + 50_000_000):
            if header_stamp_ns(m.data) != stamp:
                continue
            msg = store.deserialize_cdr(m.data, m.msgtype)
            if m.topic == topics.color:
                img = image_array(msg)
                rgb = img[..., ::-1].copy() if msg.encoding.startswith("bgr") else img[..., :3].copy()
            else:
                info = camera_info_dict(msg)
    if rgb is None:
        return None
    info = info or gt_frame.get("camera_info")
    if info is None:
        return None
    K = np.asarray(info["k"], dtype=np.float64).reshape(3, 3)
    rotation = np.asarray(gt_frame["gravity"]["rotation"], dtype=np.float64)
    h, w = rgb.shape[:2]
    boxes = []
    for obj in askable_objects(gt_frame).values():
        box = _gt_box_2d(obj, rotation, K, w, h)
        if box is not None:
            boxes.append((obj["label"], box))
    points = []
    if update is not None:
        for oid, c in _node_centres(update).items():
            u, v = _project(K, c)[0]
            points.append((oid, (float(u), float(v))))
    return FrameAnnotation(rgb, boxes, points, _question_lines(records), title)


# ------------------------------------------------------------------------------------------- the run
def _params_path(params_file) -> Path:
    p = Path(params_file) if params_file else DEFAULT_PARAMS
    if not p.is_file():
        raise InputError(f"parameter file {p} does not exist")
    return p


def run_evaluation(bag_path, ground_truth_path=None, cfg: EvaluationConfig | None = None,
                   out_dir: str | os.PathLike | None = None,
                   on_frame_set: Callable | None = None) -> EvaluationRun:
    """Replay ``bag_path`` into a fresh node and ask every ground-truth question (see the module docstring).

    ``on_frame_set(client, gt_frame, update, names)`` is called after each set's questions (the demo asks its
    natural-language questions there). Raises InputError for a missing bag/ground truth or a node that does
    not start.
    """
    from .node_client import PerceptionClient

    cfg = cfg or EvaluationConfig()
    if cfg.detector not in EVALUATED_DETECTORS:
        raise InputError(f"unknown detector '{cfg.detector}' ({', '.join(EVALUATED_DETECTORS)})")
    if cfg.engine not in EVALUATED_ENGINES:
        raise InputError(f"unknown engine '{cfg.engine}' ({', '.join(EVALUATED_ENGINES)})")
    if cfg.engine == "vlm" and not cfg.vlm_model:
        raise InputError("engine 'vlm' needs a model for the VLM node (--vlm-model HF_ID_OR_DIR)")
    bag_path = Path(bag_path)
    if not bag_path.exists():
        raise InputError(f"bag {bag_path} does not exist")
    gt_path = Path(ground_truth_path) if ground_truth_path else find_ground_truth(bag_path)
    if gt_path is None:
        raise InputError(f"no ground truth given and none found next to {bag_path} "
                         f"(expected {bag_path / 'ground_truth.json'})")
    frames = load_ground_truth(gt_path)
    if not frames:
        raise InputError(f"{gt_path} holds no frames")
    sets = frame_sets(frames)
    params = _params_path(cfg.params_file)
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="svr_eval_"))
    log_path = Path(cfg.log_path) if cfg.log_path else out / f"node_{cfg.detector}.log"
    topics = CameraTopics()
    with BagReader(bag_path, topics) as reader:
        play_topics = replay_topics(cfg.detector, topics, reader.topics)
    if topics.color not in play_topics:
        raise InputError(f"bag {bag_path} has no colour topic {topics.color}")
    detections_topic = getattr(topics, "detections", None)
    if cfg.detector == "boxes" and detections_topic not in play_topics:
        raise InputError(f"detector 'boxes' needs 2D detections on {detections_topic or '/camera/detections'}, "
                         f"which bag {bag_path} does not have (write it with a newer `spatial_vlm bag write`)")

    t_start = time.monotonic()
    records: list[QueryRecord] = []
    skipped: Counter = Counter()
    matching = {"askable": 0, "matched": 0, "reported": 0, "centre_error_m": []}
    annotations: list[FrameAnnotation] = []
    vlm = VLMNodeRunner(cfg, DEFAULT_VLM_PARAMS, out / "vlm_node.log") if cfg.engine == "vlm" else None
    ask_timeout_s = cfg.vlm_timeout_s + 10.0 if vlm is not None else cfg.service_timeout_s
    node = NodeRunner(cfg, params, log_path)
    node.start()
    client = None
    bar = None
    try:
        if vlm is not None:
            vlm.start()
        client = PerceptionClient(namespace=cfg.namespace)
        deadline = time.monotonic() + cfg.startup_timeout_s
        while not client.wait_for_services(timeout_s=1.0):
            if not node.alive() or time.monotonic() > deadline:
                raise InputError("the perception node did not start (services not available); its log:\n"
                                 + node.log_tail())
        if vlm is not None:
            _wait_for_vlm(client, vlm, cfg, deadline)
        client.objects_subscribed(timeout_s=5.0)
        client.reset()

        if cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=len(sets), desc=f"evaluating ({cfg.detector}, {cfg.engine})", unit="set")

        def on_boundary(i: int) -> None:
            fs: FrameSet = sets[i]
            if not node.alive():
                raise InputError("the perception node exited during the evaluation; its log:\n" + node.log_tail())
            published = sorted(s for s in player.color_published if s <= fs.last)
            update = client.wait_for_stamp(published[-1] * 1e-9, cfg.settle_timeout_s) if published else None
            # use the newest processed frame of this set that has ground truth
            processed = {int(round(s * 1e9)) for s in client.processed_stamps()}
            usable = [s for s in fs.stamps_ns if any(abs(s - p) < 100_000 for p in processed)]
            gt_frame = frames[usable[-1]] if usable else frames[fs.last]
            set_records: list[QueryRecord]
            visible = askable_objects(gt_frame)
            names = {}
            matching["askable"] += len(visible)           # present, found or not
            if update is not None and usable:
                update = client.update_at(usable[-1] * 1e-9) or update
                centres = _node_centres(update)
                matches = match_objects(visible, centres)
                matching["matched"] += len(matches)
                matching["reported"] += len(centres)
                matching["centre_error_m"] += [m.distance_m for m in matches]
                names = question_names(cfg.detector, visible, matches)
                set_records, why = frame_queries(gt_frame, names, cfg.detector, cfg.relations, cfg.quantities,
                                                 missed=NOT_FOUND)
                skipped.update(why)
                ask_records(client, askable_records(set_records), ask_timeout_s, cfg.engine)
            else:
                set_records, why = frame_queries(gt_frame, {k: k for k in visible}, cfg.detector,
                                                 cfg.relations, cfg.quantities)
                failed_records(set_records, "frame set never processed by the node (dropped or timed out)")
            records.extend(set_records)
            if on_frame_set is not None and update is not None:
                on_frame_set(client, gt_frame, update, names)
            if len(annotations) < cfg.annotate and update is not None and set_records:
                ann = annotate_frame(bag_path, topics, gt_frame, update, set_records,
                                     f"{cfg.detector}: {gt_frame.get('scene_id', '')} "
                                     f"stamp {gt_frame['stamp_ns'] * 1e-9:.3f} s")
                if ann is not None:
                    annotations.append(ann)
            if i + 1 < len(sets) and sets[i + 1].scene != fs.scene:
                client.reset()
            if bar is not None:
                rel = [r for r in records if r.kind == "relation" and not r.ambiguous]
                acc = sum(r.answered and bool(r.predicted) == bool(r.truth) for r in rel) / max(len(rel), 1)
                bar.set_postfix(queries=len(records), rel_acc=f"{100 * acc:.1f}%")
                bar.update(1)

        # engine vlm: the colour topic's second subscriber is the VLM node, which must get the first image
        player = SteppedBagPlayer(bag_path, [s.last for s in sets], on_boundary, topics.color, rate=cfg.rate,
                                  topics=play_topics, verbose=False, wait_timeout_s=10.0,
                                  wait_subscribers=2 if vlm is not None else 1)
        player.run()
        if player.error is not None:
            raise player.error
        frames_stats = FrameStats(published=len(player.color_published))
        processed = {int(round(s * 1e9)) for s in client.processed_stamps()}
        hits = [s for s in player.color_published if any(abs(s - p) < 100_000 for p in processed)]
        frames_stats.processed = len(hits)
        frames_stats.processed_stamps = sorted(s * 1e-9 for s in hits)
        first_seen = {}
        for u in client.updates:
            first_seen.setdefault(int(round(u.stamp * 1e9)), u.received)
        frames_stats.frame_latency_ms = [
            1e3 * (first_seen[p] - player.color_published[s]) for s in hits
            for p in [min(first_seen, key=lambda x: abs(x - s))]]
        frames_stats.node_dropped = client.node_dropped_frames()
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            client.close()
        code = node.stop()
        vlm_code = vlm.stop() if vlm is not None else None
    run = EvaluationRun(cfg.detector, records, frames_stats, skipped, matching, annotations,
                        time.monotonic() - t_start, engine=cfg.engine)
    if code not in (0, None, -2):
        run.notes.append(f"node exited with code {code} (log: {log_path})")
    if vlm is not None:
        run.notes.append(f"answers by the VLM {cfg.vlm_model} through ~/ask (engine vlm); VLM node log "
                         f"{vlm.log_path}" + (f", exit code {vlm_code}" if vlm_code not in (0, None, -2) else ""))
    return run


def _wait_for_vlm(client, vlm: VLMNodeRunner, cfg: EvaluationConfig, deadline: float) -> None:
    """Until the VLM node's ``Ask`` service is up (its model loads in the background: the first question
    waits for it, up to ``vlm_timeout_s``)."""
    from spatial_vlm_interfaces.srv import Ask

    probe = client.node.create_client(Ask, vlm_service(cfg))
    try:
        while not probe.wait_for_service(timeout_sec=1.0):
            if not vlm.alive() or time.monotonic() > deadline:
                raise InputError(f"the VLM node did not start ({vlm_service(cfg)} not available); its log:\n"
                                 + vlm.log_tail())
    finally:
        client.node.destroy_client(probe)


def run_notes(run: EvaluationRun) -> list[str]:
    """Human notes for the report: what was skipped and how the node's objects matched the ground truth."""
    notes = list(run.notes)
    m = run.matching
    if m["askable"]:
        err = np.asarray(m["centre_error_m"]) if m["centre_error_m"] else np.array([math.nan])
        reported = m.get("reported", m["matched"])
        notes.append(f"objects: {m['matched']} of {m['askable']} visible ground-truth objects found (matched "
                     f"one-to-one by a node object's 3D centre; median centre error "
                     f"{100 * np.nanmedian(err):.1f} cm); {reported - m['matched']} of the {reported} node "
                     f"objects matched no ground-truth object; questions about an object not found count "
                     f"as wrong")
    for why, n in run.skipped.most_common():
        notes.append(f"ground-truth entries not asked: {n} ({why})")
    notes.append(f"evaluation wall time {run.wall_s:.1f} s")
    return notes


def finish_run(run: EvaluationRun) -> RunResult:
    run.summary = summarize(run.records, run.frames)
    m = run.matching
    run.summary["objects"] = detection_counts(m["askable"], m["matched"], m.get("reported", m["matched"]))
    run.summary["questions_missed"] = sum(bool(r.missed) for r in run.records)
    run.summary["skipped"] = dict(run.skipped)
    run.summary["wall_s"] = run.wall_s
    return RunResult(run.name, run.summary, run.records, run_notes(run))


def baseline_result(bag_path, ground_truth_path, result: RunResult) -> RunResult | None:
    """The naive baseline (``baseline``) on the frames ``result`` was scored on, from the bag's depth and
    instance masks; None (with nothing printed) when the bag has no masks."""
    from .baseline import baseline_for_run
    gt_path = Path(ground_truth_path) if ground_truth_path else find_ground_truth(bag_path)
    return baseline_for_run(bag_path, result.records, load_ground_truth(gt_path))


def evaluate(bag_path, ground_truth_path=None, out_dir="out/eval", detector: str = "external",
             params_file: str | None = None, rate: float = 1.0, baseline: bool = True, **config) -> dict:
    """Evaluate the node on a bag + ground truth; writes ``results.json`` and ``report.md`` under ``out_dir``
    and returns the summary dict (``summary["report"]`` is the Markdown path, ``summary["baseline"]`` the
    naive baseline's summary when the bag has instance masks and ``baseline`` is True). ``config``: further
    ``EvaluationConfig`` fields (node, namespace, parameter_overrides, progress, engine, vlm_model, ...)."""
    cfg = EvaluationConfig(detector=detector, params_file=params_file, rate=rate, **config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = run_evaluation(bag_path, ground_truth_path, cfg, out)
    result = finish_run(run)
    results = [result]
    base = baseline_result(bag_path, ground_truth_path, result) if baseline else None
    if base is not None:
        results.append(base)
    meta = {"bag": str(bag_path), "ground_truth": str(ground_truth_path or find_ground_truth(bag_path)),
            "detector": detector, "engine": cfg.engine, "params_file": str(_params_path(params_file)), "rate": rate}
    if cfg.engine == "vlm":
        meta.update(vlm_model=cfg.vlm_model, vlm_parameters=cfg.vlm_parameters)
    paths = write_report(out, results, title=f"Evaluation of {Path(bag_path).name}", annotations=run.annotations,
                         meta=meta)
    summary = dict(result.summary, engine=cfg.engine, report=str(paths["markdown"]), results=str(paths["json"]))
    if base is not None:
        summary["baseline"] = base.summary
    _print_summary(results)
    print(f"report: {paths['markdown']}")
    return summary


def _print_summary(results: list[RunResult]) -> None:
    def pct(v):
        return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:5.1f}%"
    ws = [max(14, len(r.name) + 2) for r in results]
    print(f"{'':40s}" + "".join(f"{r.name:>{w}s}" for r, w in zip(results, ws)))
    def detection(s: dict, key: str) -> str:
        o = s.get("objects", {})
        return f"{pct(o.get(key)).strip()} {o.get('found', 0)}/{o.get('present' if key == 'recall' else 'reported', 0)}"
    print(f"{'detector recall (found / present)':40s}" + "".join(
        f"{detection(r.summary, 'recall'):>{w}s}" for r, w in zip(results, ws)))
    print(f"{'detector precision (found / reported)':40s}" + "".join(
        f"{detection(r.summary, 'precision'):>{w}s}" for r, w in zip(results, ws)))
    rows = [("relation accuracy (every GT object)", lambda s: s["relations"]["overall"]["accuracy"]),
            ("metric within +-10%", lambda s: s["quantities"]["overall"]["within_10pct"]),
            ("metric within +-25%", lambda s: s["quantities"]["overall"]["within_25pct"]),
            ("metric within [0.5x, 2x]", lambda s: s["quantities"]["overall"]["within_half_double"]),
            ("distance within +-10%",
             lambda s: s["quantities"]["per_quantity"].get("distance", {}).get("within_10pct", math.nan)),
            ("metric errors within 2 sigma", lambda s: s["quantities"]["overall"]["coverage_2sigma"]["coverage"]),
            ("wrong at confidence >= 0.99",
             lambda s: s["relations"]["overall"]["calibration"]["wrong_high_fraction"])]
    for label, fn in rows:
        print(f"{label:40s}" + "".join(f"{pct(fn(r.summary)):>{w}s}" for r, w in zip(results, ws)))
    ece = [r.summary["relations"]["overall"]["calibration"]["ece"] for r in results]
    print(f"{'relation confidence ECE':40s}" + "".join(
        f"{'n/a' if not math.isfinite(v) else f'{v:.3f}':>{w}s}" for v, w in zip(ece, ws)))
    def latency(s: dict) -> str:
        p50, p99 = s["latency_ms"]["all"]["p50"], s["latency_ms"]["all"]["p99"]
        return f"{p50:.1f}/{p99:.1f}" if math.isfinite(p50) and math.isfinite(p99) else "n/a"
    def frames(s: dict) -> str:
        f = s["frames"]
        return f"{f['published']}/{f['processed']}/{f['dropped']}"
    for label, fn in (("service latency p50/p99 (ms)", latency), ("frames published/processed/dropped", frames)):
        print(f"{label:40s}" + "".join(f"{fn(r.summary):>{w}s}" for r, w in zip(results, ws)))
