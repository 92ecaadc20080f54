"""The node's parameters: one table (name, default, description, range/choices), declared with
``ParameterDescriptor``s, loaded from ``config/perception.yaml`` and turned into the node settings and the
ROS-free ``PipelineConfig``.

Grouped names map onto the core's dataclasses (``lifting.*`` -> ``LiftingParams``, ``memory.*`` ->
``MemoryParams``, ``gravity.*`` -> ``GravityParams``, ``noise.*`` -> ``DepthNoiseModel``, ``tabletop.*`` ->
``TabletopParams``); their defaults are read from those dataclasses so the two never disagree.
Units are in the names: ``_m`` metres, ``_s`` seconds, ``_hz`` hertz, ``_deg`` degrees, ``_px`` pixels.
All parameters are read-only (read once at start-up).

``load_parameter_file`` and ``validate_values`` are ROS-free, so a parameter file can be checked (by tests,
by ``ros.run``) before any node starts; they apply the same rules rcl does (``/**`` and ``/**/name`` keys,
integers are not accepted for floating-point parameters).
"""
from __future__ import annotations

import array
import math
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any

import yaml

from spatial_vlm_ros.core.depth_fusion import FusionParams
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity import MODES as GRAVITY_MODES
from spatial_vlm_ros.core.gravity import GravityParams
from spatial_vlm_ros.core.lifting import AMODAL_MODES, LiftingParams
from spatial_vlm_ros.core.memory import MemoryParams
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.quantities import QUANTITIES
from spatial_vlm_ros.core.uncertainty import FITTED_LIFTING_ERROR, LiftingError
from spatial_vlm_ros.perception.boxes import BoxesParams
from spatial_vlm_ros.perception.mono_depth import BACKENDS as DEPTH_BACKENDS
from spatial_vlm_ros.perception.mono_depth import DepthModelParams
from spatial_vlm_ros.perception.open_vocab import OpenVocabParams
from spatial_vlm_ros.perception.tabletop import TabletopParams
from spatial_vlm_ros.pipeline import DEPTH_SOURCES, DETECTORS, PipelineConfig
from spatial_vlm_ros.ros.overrides import unknown_parameter
from spatial_vlm_ros.runtime.device import DTYPES

NODE_NAME = "spatial_perception"
FRAME_WORKERS = ("process", "thread")
DETECTIONS_MSG_TYPES = ("spatial_vlm_interfaces/Detections2D", "vision_msgs/Detection2DArray")
LEVEL_CAMERA_XYZW = (-0.5, 0.5, -0.5, 0.5)   # optical frame of a level camera looking along world +x
QUANTITY_SCALE = "uncertainty.quantity_sigma_scale"  # + ".<quantity>": see core.uncertainty.LiftingError


@dataclass(frozen=True)
class ParamSpec:
    """One parameter. ``field`` names the attribute of the group's dataclass it sets (None: node-level)."""

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None       # inclusive bounds for int/float parameters
    choices: tuple[str, ...] = ()
    field: str | None = None
    length: int | None = None                      # required length of an array parameter

    @property
    def group(self) -> str | None:
        return self.name.split(".", 1)[0] if self.field else None


GROUP_TYPES = {"lifting": LiftingParams, "memory": MemoryParams, "gravity": GravityParams,
               "noise": DepthNoiseModel, "uncertainty": LiftingError, "tabletop": TabletopParams,
               "boxes": BoxesParams}
GROUP_TYPES.update({"depth_model": DepthModelParams, "depth_fusion": FusionParams})   # depth_source
GROUP_TYPES["open_vocab"] = OpenVocabParams


def _default(group: str, field_name: str):
    for f in fields(GROUP_TYPES[group]):
        if f.name == field_name:
            if f.default is not MISSING:
                return f.default
            return f.default_factory()  # type: ignore[misc]
    raise KeyError(f"{GROUP_TYPES[group].__name__} has no field '{field_name}'")


def _g(name: str, field_name: str, description: str, range=None, choices=(), default=None, length=None):
    """A parameter bound to a core dataclass field (default taken from the dataclass unless given)."""
    group = name.split(".", 1)[0]
    value = _default(group, field_name) if default is None else default
    if isinstance(value, tuple):
        value = list(value)
    return ParamSpec(name, value, description, range, tuple(choices), field_name, length)


PARAMETERS: tuple[ParamSpec, ...] = (
    # ---- node
    ParamSpec("autostart", True, "Configure and activate at start-up, so `ros2 run` just works (false: wait in "
              "'unconfigured' for a lifecycle manager's transitions)"),
    ParamSpec("frame_worker", "process", "Where frames are processed: 'process' (a worker process that "
              "subscribes to the inputs itself, so services never wait for a frame) or 'thread' (a thread "
              "of this process: one GIL for frames and services; for debugging and tests)",
              choices=FRAME_WORKERS),
    ParamSpec("worker_start_timeout_s", 300.0, "Longest wait for the frame worker to build its pipeline "
              "(and load its models) on configure, s", (1.0, 3600.0)),
    ParamSpec("detector", "external", "Instance source: 'external' (masks on topics.instances), "
              "'tabletop' (weight-free support-plane clustering), 'boxes' (any 2D detector's boxes on "
              "topics.detections, segmented from depth) or 'open_vocab' (built-in open-vocabulary model)",
              choices=DETECTORS),
    ParamSpec("topics.color", "/camera/color/image_raw", "Color image topic (rgb8, bgr8, rgba8 or bgra8)"),
    ParamSpec("topics.depth", "/camera/aligned_depth_to_color/image_raw",
              "Depth image aligned to color (16UC1 millimetres or 32FC1 metres)"),
    ParamSpec("topics.camera_info", "/camera/color/camera_info", "CameraInfo of the color image"),
    ParamSpec("topics.instances", "/camera/instances",
              "InstanceSegmentation topic (used only when detector is 'external')"),
    ParamSpec("topics.detections", "/camera/detections",
              "2D boxes of any detector, stamped with their color image's header stamp and matched with the "
              "other inputs (used only when detector is 'boxes'); publish an empty message for a frame "
              "without objects"),
    ParamSpec("detections_msg", "spatial_vlm_interfaces/Detections2D",
              "Message type on topics.detections ('vision_msgs/Detection2DArray' needs vision_msgs installed)",
              choices=DETECTIONS_MSG_TYPES),
    ParamSpec("sync.slop_s", 0.02, "Largest header-stamp spread of a matched color/depth/info/instances set, s",
              (0.0, 1.0)),
    ParamSpec("sync.queue_size", 10, "Messages kept per input while waiting for a match", (1, 100)),
    ParamSpec("qos.sensor_depth", 5, "History depth of the sensor-data subscriptions", (1, 100)),
    ParamSpec("max_processing_rate_hz", 0.0, "Upper bound on processed frames per second (0 = every "
              "complete set, newest first; older sets are dropped while one is processed)", (0.0, 1000.0)),
    ParamSpec("publish_rate_hz", 0.0, "Rate of ~/objects and ~/markers (0 = after every processed frame)",
              (0.0, 100.0)),
    ParamSpec("diagnostics_period_s", 1.0, "Period of /diagnostics messages, s", (0.05, 60.0)),
    ParamSpec("stale_after_s", 5.0, "Diagnostics warn when no frame was processed for this long, s",
              (0.1, 3600.0)),
    ParamSpec("vlm_service", "/spatial_vlm/ask", "Ask service of the VLM node (vlm_node): gets the ~/ask "
              "questions no template matches (forwarded unchanged, its answer returned as is) and template "
              "questions asked with engine 'vlm' or 'both' (with the scene facts as context); empty = off: such "
              "questions are refused"),
    ParamSpec("vlm_timeout_s", 90.0, "Longest wait for the VLM's answer to a forwarded question, s (above the "
              "VLM node's request_timeout_s, 60 s by default, which includes its queueing)", (0.1, 3600.0)),
    # ---- gravity (core.gravity.GravityParams)
    _g("gravity.mode", "mode", "Gravity frame source: 'plane' (fit the support plane each frame), 'static' "
       "(gravity.static_orientation_xyzw), 'camera' (assume a level camera) or 'tf' (+z of target_frame from "
       "TF at each frame's stamp; needs tf2_ros)", choices=(*GRAVITY_MODES, "tf")),
    # ---- TF and the optional outputs (ros.tf_frames, ros.scene_outputs)
    ParamSpec("target_frame", "", "Frame of the ~/objects centers and box orientations, e.g. base_link: the "
              "camera -> target_frame transform is looked up with tf2 at each frame's stamp (a frame without one "
              "is rejected); '' = the camera optical frame of the color image. Needs tf2_ros"),
    ParamSpec("tf.timeout_s", 0.05, "Longest wait for the camera -> target_frame transform of a frame, s",
              (0.0, 10.0)),
    ParamSpec("tf.broadcast_gravity", True, "Send the gravity frame <camera frame>_gravity (z up, rotation only) "
              "on /tf with every ~/objects (tf2_ros, else tf2_msgs; neither installed: not sent)"),
    ParamSpec("outputs.detections_3d", False, "Also publish vision_msgs/Detection3DArray on ~/detections_3d "
              "(needs vision_msgs)"),
    ParamSpec("outputs.collision_objects", False, "Also publish moveit_msgs/CollisionObject boxes on "
              "~/collision_objects (needs moveit_msgs; remap to /collision_object for MoveIt's planning scene)"),
    _g("gravity.static_orientation_xyzw", "static_orientation",
       "Camera optical frame orientation in a z-up world, quaternion x y z w (mode 'static'; also the "
       "fallback of mode 'plane'). Default: level camera", default=LEVEL_CAMERA_XYZW, length=4),
    _g("gravity.static_support_height_m", "static_support_height",
       "Gravity-frame z of the support surface for mode 'static' (negative: below the camera; 0 = unknown)",
       (-100.0, 100.0), default=0.0),
    _g("gravity.smoothing", "smoothing", "Weight of a new plane estimate in the running average (1 = none)",
       (0.01, 1.0)),
    _g("gravity.max_tilt_deg", "max_tilt_deg", "Largest angle between a support normal and the prior up, deg",
       (1.0, 90.0)),
    _g("gravity.max_jump_deg", "max_jump_deg", "A new up this far from the current one is an outlier, deg",
       (0.1, 180.0)),
    _g("gravity.jump_confirm_frames", "jump_confirm_frames",
       "Frames a jumped up direction must persist before it is accepted", (1, 1000)),
    _g("gravity.max_hold_frames", "max_hold_frames",
       "Frames the previous plane estimate is kept when no plane is found", (0, 100000)),
    _g("gravity.distance_threshold_m", "distance_threshold_m", "RANSAC plane inlier distance, m",
       (0.001, 0.2)),
    _g("gravity.pixel_stride", "pixel_stride", "Depth pixels sampled every N rows and columns for the fit",
       (1, 64)),
    _g("gravity.max_range_m", "max_range_m", "Depth beyond this is ignored for the plane fit, m",
       (0.1, 100.0)),
    _g("gravity.max_points", "max_points", "RANSAC sample size (points)", (100, 1000000)),
    _g("gravity.min_inlier_ratio", "min_inlier_ratio", "Smallest fraction of sampled points on the plane",
       (0.0, 1.0)),
    _g("gravity.refit_every_frames", "refit_every_frames", "The full RANSAC plane fit runs at least every this many "
       "frames (and whenever the tracked plane is lost); in between the last plane is tracked by least squares on "
       "a sparse grid (1 = a full fit every frame)", (1, 100000)),
    # ---- depth noise (core.noise.DepthNoiseModel): sigma(z) = sigma0 + k z^2
    _g("noise.sigma0_m", "sigma0", "Depth noise floor sigma0 in sigma(z) = sigma0 + k z^2, m", (0.0, 1.0)),
    _g("noise.k_per_m", "k", "Depth noise growth k in sigma(z) = sigma0 + k z^2, 1/m", (0.0, 1.0)),
    # ---- the lifting's own error (core.uncertainty.LiftingError), added in quadrature to the sensor term of every
    # sigma and confidence (fitted: docs/uncertainty.md)
    *(spec for term, where in (("ray", "along the viewing ray"), ("across", "across the ray, horizontally"),
                               ("vertical", "across the ray, in the vertical plane"))
      for spec in (
          _g(f"uncertainty.center_{term}_m", f"center_{term}_m", f"Lifting error of an object center {where}, "
             "constant part, m", (0.0, 1.0), default=getattr(FITTED_LIFTING_ERROR, f"center_{term}_m")),
          _g(f"uncertainty.center_{term}_size_fraction", f"center_{term}_size_fraction", "Lifting error of an "
             f"object center {where}, part proportional to the larger horizontal extent", (0.0, 1.0),
             default=getattr(FITTED_LIFTING_ERROR, f"center_{term}_size_fraction")))),
    _g("uncertainty.extent_floor_m", "extent_floor_m", "Lifting error of a box extent (width, depth, height), "
       "constant part, m", (0.0, 1.0), default=FITTED_LIFTING_ERROR.extent_floor_m, length=3),
    _g("uncertainty.extent_fraction", "extent_fraction", "Lifting error of a box extent (width, depth, height), "
       "part proportional to that extent", (0.0, 1.0), default=FITTED_LIFTING_ERROR.extent_fraction, length=3),
    _g("uncertainty.relation_sigma_scale", "relation_sigma_scale", "Scale of a relation margin's sigma (the "
       "objects of one scene err together)", (0.01, 10.0), default=FITTED_LIFTING_ERROR.relation_sigma_scale),
    *(ParamSpec(f"{QUANTITY_SCALE}.{name}", FITTED_LIFTING_ERROR.quantity_scale(name), f"Scale of the whole sigma "
                f"of '{name}' (fitted per quantity)", (0.01, 10.0)) for name in QUANTITIES),
)
PARAMETERS += (
    # ---- lifting (core.lifting.LiftingParams; its depth-noise model comes from noise.*)
    _g("lifting.min_pixels", "min_pixels", "Valid depth pixels needed to lift an instance", (1, 1000000)),
    _g("lifting.erosion_px", "erosion_px", "Mask erosion against mask-edge bleeding, px", (0, 50)),
    _g("lifting.mad_k", "mad_k", "Depth outlier band: |z - median| <= mad_k * 1.4826 * MAD", (0.5, 100.0)),
    _g("lifting.min_depth_band_m", "min_depth_band_m", "The outlier band is never narrower than this, m",
       (0.0, 10.0)),
    _g("lifting.cluster_gap_m", "cluster_gap_m", "Depth gap that splits an instance's depth clusters, m",
       (0.001, 10.0)),
    _g("lifting.box_percentiles", "box_percentiles",
       "Low and high percentiles of the points bounding the box on each gravity axis", length=2),
    _g("lifting.amodal", "amodal", "Completion of the unseen back of objects: 'none', 'symmetric' or 'auto'",
       choices=AMODAL_MODES),
    _g("lifting.amodal_min_elevation_deg", "amodal_min_elevation_deg",
       "'auto' completes objects whose top is seen at less than this elevation, deg", (0.0, 90.0)),
    _g("lifting.snap_to_support_m", "snap_to_support_m",
       "A box bottom this close above the support plane is put on it, m", (0.0, 1.0)),
    _g("lifting.max_points", "max_points", "Inlier points kept per observation", (1, 1000000)),
    _g("lifting.min_range_m", "min_range_m", "Depth closer than this is ignored, m", (0.0, 100.0)),
    _g("lifting.max_range_m", "max_range_m", "Depth farther than this is ignored, m", (0.01, 1000.0)),
    # ---- scene memory (core.memory.MemoryParams)
    _g("memory.timeout_s", "timeout_s", "Forget an object unseen for this long (header-stamp time), s",
       (0.01, 1e6)),
    _g("memory.match_distance_m", "match_distance_m", "Association gate on the center distance, m",
       (0.001, 10.0)),
    _g("memory.match_size_factor", "match_size_factor",
       "The gate grows to this fraction of the larger object's largest extent", (0.0, 10.0)),
    _g("memory.min_iou", "min_iou", "Boxes overlapping this much (IoU) may match whatever the distance",
       (0.0, 1.0)),
    _g("memory.alpha", "alpha", "Weight of a new observation once an object is established", (0.01, 1.0)),
    _g("memory.min_observations", "min_observations", "Sightings before an object gets an id and is published",
       (1, 1000)),
    _g("memory.min_score", "min_score", "Observations scored lower are ignored", (0.0, 1.0)),
    _g("memory.max_objects", "max_objects", "Most objects remembered", (1, 100000)),
    _g("memory.max_points", "max_points", "Points kept per object", (1, 1000000)),
    _g("memory.compensate_motion", "compensate_motion",
       "Carry objects, seen or not, through camera motion estimated from >= 3 matched centers (Kabsch); "
       "fits below motion_min_translation_m / motion_min_rotation_deg count as a static camera. Off: "
       "centers are averaged in camera coordinates, right only for a camera that never moves"),
    _g("memory.motion_gate_m", "motion_gate_m", "Association gate used only to find the motion's matches, m",
       (0.001, 10.0)),
    _g("memory.motion_min_matches", "motion_min_matches", "Matched centers needed for a motion estimate",
       (3, 1000)),
    _g("memory.motion_max_residual_m", "motion_max_residual_m", "Largest RMS residual of the rigid fit, m",
       (0.0001, 1.0)),
    _g("memory.motion_min_spread_m", "motion_min_spread_m",
       "Matched centers must spread at least this much off a line, m", (0.0, 10.0)),
    _g("memory.motion_min_translation_m", "motion_min_translation_m",
       "Motions moving the matched centers less than this (RMS) are treated as none, m", (0.0, 10.0)),
    _g("memory.motion_min_rotation_deg", "motion_min_rotation_deg",
       "Smaller rotations are treated as no motion, deg", (0.0, 180.0)),
    _g("memory.max_future_s", "max_future_s",
       "Frames stamped further ahead of the last one (plus the wall time since) are rejected as a clock "
       "jump, s; 0 = no check", (0.0, 1e9)),
    _g("memory.max_backwards_jump_s", "max_backwards_jump_s",
       "Older frames within this are out-of-order (rejected); further back is a replay restart (reset), s",
       (0.0, 1e9)),
    _g("memory.jump_confirm_frames", "jump_confirm_frames",
       "Consecutive far-future frames that confirm a forward clock jump (memory reset)", (1, 1000)),
    _g("memory.restart_confirm_frames", "restart_confirm_frames",
       "Consecutive frames far back that confirm a replay restart (memory reset)", (1, 1000)),
    # ---- tabletop detector (perception.tabletop.TabletopParams; used when detector is 'tabletop')
    _g("tabletop.min_height_m", "min_height_m", "Object pixels are at least this high above the support, m",
       (0.0, 10.0)),
    _g("tabletop.max_height_m", "max_height_m", "... and at most this high, m", (0.001, 10.0)),
    _g("tabletop.max_range_m", "max_range_m", "Depth beyond this is ignored, m", (0.1, 100.0)),
    _g("tabletop.depth_jump_ratio", "depth_jump_ratio",
       "Neighbours whose depths differ by more than ratio * z + 5 mm are cut apart", (0.0, 1.0)),
    _g("tabletop.min_pixels", "min_pixels", "Smaller clusters are dropped, px", (1, 10000000)),
    _g("tabletop.sliver_pixels", "sliver_pixels",
       "Smaller clusters next to a larger one of their color are dropped (slivers), px", (0, 10000000)),
    _g("tabletop.sliver_gap_px", "sliver_gap_px", "'Next to' for slivers: within this many pixels", (0, 100)),
    _g("tabletop.hole_bridge_px", "hole_bridge_px",
       "Clusters meeting through invalid-depth pixels within this many px may be one object (0 = off)", (0, 20)),
    _g("tabletop.hole_join_color_delta", "hole_join_color_delta",
       "... they are when their colors differ by at most this CIE76 Delta E", (0.0, 200.0)),
    _g("tabletop.stack_split", "stack_split", "Split an object resting on another one off its support"),
    _g("tabletop.stack_min_color_delta", "stack_min_color_delta",
       "A stack is split only where the parts' colors differ by this CIE76 Delta E", (0.0, 200.0)),
    _g("tabletop.stack_inside", "stack_inside",
       "Share of the upper part's pixels over the support face's footprint", (0.0, 1.0)),
    _g("tabletop.max_size_m", "max_size_m", "Clusters larger than this are not tabletop objects, m",
       (0.01, 100.0)),
    _g("tabletop.plane_distance_m", "plane_distance_m", "RANSAC threshold of the detector's own plane fit, m",
       (0.001, 1.0)),
    _g("tabletop.plane_max_tilt_deg", "plane_max_tilt_deg",
       "Largest angle of that plane's normal from the gravity estimate's up, deg", (0.0, 90.0)),
    _g("tabletop.plane_stride", "plane_stride", "Pixel stride of the cloud for that fit", (1, 64)),
    _g("tabletop.small_m", "small_m", "Largest extent below this: named 'small ...', m", (0.0, 10.0)),
    _g("tabletop.large_m", "large_m", "Largest extent above this: named 'large ...', m", (0.0, 10.0)),
    # ---- boxes detector (perception.boxes.BoxesParams; used when detector is 'boxes')
    _g("boxes.min_score", "min_score", "2D detections scoring below this are dropped", (0.0, 1.0)),
    _g("boxes.min_height_m", "min_height_m", "Object pixels lie at least this high above the support, m",
       (0.0, 0.5)),
    _g("boxes.containment", "containment", "Fraction of a depth segment inside a box for the box to claim it",
       (0.5, 1.0)),
    _g("boxes.box_margin_px", "box_margin_px", "Boxes grown by this for that test (detector jitter), px",
       (0, 50)),
    _g("boxes.depth_tolerance_m", "depth_tolerance_m",
       "Slack of a box's per-row depth interval when overlapping boxes share a segment, m", (0.0, 1.0)),
    _g("boxes.color_edges", "color_edges", "Also cut depth segments at color edges (touching objects)"),
    _g("boxes.fill_holes", "fill_holes", "Pixels without depth inside an object's silhouette join its mask"),
    # ---- open-vocabulary detector (perception.open_vocab.OpenVocabParams; detector 'open_vocab')
    _g("open_vocab.model", "model", "Zero-shot box model (transformers AutoModelForZeroShotObjectDetection: "
       "Grounding DINO, LLMDet, OWLv2): HF id, from the local cache when offline (`spatial_vlm fetch-models`), "
       "or a local directory"),
    _g("open_vocab.classes", "classes", "Phrases to detect, e.g. ['mug', 'red bowl'] ([''] = none: frames are "
       "refused until ~/set_classes gives some)", default=("",)),
    _g("open_vocab.score_threshold", "score_threshold", "Boxes scoring below this are dropped", (0.0, 1.0)),
    _g("open_vocab.text_threshold", "text_threshold", "Grounding DINO: least mean token probability of the "
       "label's phrase", (0.0, 1.0)),
    _g("open_vocab.nms_iou", "nms_iou", "Class-aware non-maximum suppression overlap (IoU)", (0.0, 1.0)),
    _g("open_vocab.max_detections", "max_detections", "Most boxes kept per frame (best scores)", (1, 1000)),
    _g("open_vocab.device", "device", "'auto' (CUDA when available, fp16 there; else CPU), 'cpu', 'cuda[:N]'"),
    _g("open_vocab.backend", "backend", "Box model runtime: 'torch' or 'onnx' (onnxruntime: TensorRT -> CUDA -> "
       "CPU)", choices=("torch", "onnx")),
    _g("open_vocab.onnx_dir", "onnx_dir", "Backend 'onnx': directory written by `spatial_vlm export-onnx --part "
       "detector`"),
    _g("open_vocab.segmenter", "segmenter", "Masks inside the boxes: 'sam2', 'depth' (as detector boxes) or "
       "'auto' (sam2 when sam_model is set, else depth)", choices=("auto", "sam2", "depth")),
    _g("open_vocab.sam_model", "sam_model", "SAM 2 model (HF id or directory; empty = "
       "facebook/sam2.1-hiera-tiny when segmenter is sam2)"),
    _g("open_vocab.sam_backend", "sam_backend", "SAM 2 runtime: 'torch' or 'onnx'", choices=("torch", "onnx")),
    _g("open_vocab.sam_onnx_dir", "sam_onnx_dir", "SAM 2 backend 'onnx': directory written by `spatial_vlm "
       "export-onnx --part segmenter`"),
    # ---- depth source (depth_model.* -> perception.mono_depth.DepthModelParams; depth_source 'model'/'fuse')
    ParamSpec("depth_source", "sensor", "Depth used for lifting: 'sensor' (topics.depth), 'model' (predicted from the "
              "color image by depth_model: RGB-only cameras, no depth topic) or 'fuse' (sensor depth, its holes "
              "filled with the model depth scale-aligned to it)", choices=DEPTH_SOURCES),
    _g("depth_model.model", "model", "Depth model (transformers AutoModelForDepthEstimation, metric): HF id, "
       "from the local cache when offline (`spatial_vlm fetch-models`), or a local directory"),
    _g("depth_model.device", "device", "'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'"),
    _g("depth_model.dtype", "dtype", "PyTorch dtype: 'auto' = float16 on CUDA, float32 on the CPU", choices=DTYPES),
    _g("depth_model.backend", "backend", "'torch' or 'onnx' (onnxruntime: TensorRT -> CUDA -> CPU)",
       choices=DEPTH_BACKENDS),
    _g("depth_model.onnx_dir", "onnx_dir", "Backend 'onnx': directory written by `spatial_vlm export-onnx --part "
       "depth` (exported for this camera's image size)"),
    _g("depth_model.input_size", "input_size", "Network input side, px, a multiple of 14 (0 = the model's "
       "processor, 518 for Depth Anything); smaller is faster and coarser", (0, 4096)),
    _g("depth_model.relative_error", "relative_error", "1-sigma relative error of the model depth: adds "
       "relative_error * z to the noise sigma(z) of relations and quantities (depth_source model/fuse)", (0.0, 0.99)),
    _g("depth_model.fp16", "fp16", "Backend 'onnx': build fp16 TensorRT engines"),
    _g("depth_model.trt_cache_dir", "trt_cache_dir", "TensorRT engine cache ('' = <onnx_dir>/trt_cache)"),
    _g("depth_model.threads", "threads", "Backend 'onnx': CPU threads (0 = onnxruntime's default)", (0, 256)),
    _g("depth_fusion.fit_shift", "fit_shift", "depth_source 'fuse': also fit an offset, not only a scale"),
    _g("depth_fusion.min_valid_pixels", "min_valid_pixels", "Valid sensor pixels needed to align the model "
       "depth (fewer: the frame is refused)", (3, 100000000)),
    _g("depth_fusion.f_scale", "f_scale", "Relative residual where the robust (soft-L1) loss turns linear",
       (0.0001, 1.0)),
    _g("depth_fusion.inlier_threshold", "inlier_threshold", "Pixels within this relative residual are "
       "inliers of the final refit", (0.001, 1.0)),
    _g("depth_fusion.min_inlier_fraction", "min_inlier_fraction", "Fewer inliers than this fraction of the "
       "valid pixels: the alignment (and frame) is refused", (0.0, 1.0)),
    _g("depth_fusion.max_samples", "max_samples", "Valid pixels sampled for the robust fit", (10, 100000000)),
    _g("depth_fusion.local_sigma_px", "local_sigma_px", "Gaussian sigma of the local correction of the aligned "
       "model depth by the sensor pixels around each hole, px (0 = global alignment only)", (0.0, 1000.0)),
)
SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}


# ------------------------------------------------------------------------------------------ validation
def _type_name(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "float array" if all(isinstance(v, float) for v in value) else "array"
    return type(value).__name__


def check_value(spec: ParamSpec, value) -> str | None:
    """None if ``value`` is valid for ``spec``, else a message naming the problem (rcl's typing rules)."""
    want = _type_name(spec.default)
    have = _type_name(value)
    if want != have:
        hint = " (write 1.0, not 1)" if want == "float" and have == "integer" else ""
        return f"{spec.name}: expected a {want}, got {value!r} ({have}){hint}"
    if spec.choices and value not in spec.choices:
        return f"{spec.name}: '{value}' is not one of {', '.join(spec.choices)}"
    if spec.length is not None and len(value) != spec.length:
        return f"{spec.name}: expected {spec.length} values, got {len(value)}"
    numbers = value if isinstance(value, list) else [value]
    if spec.range is not None and not all(spec.range[0] <= v <= spec.range[1] for v in numbers):
        return f"{spec.name}: {value} is outside [{spec.range[0]}, {spec.range[1]}]"
    if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
        return f"{spec.name}: must be finite"
    return None


def validate_values(overrides: dict) -> dict:
    """Defaults updated with ``overrides`` (flat dotted names). Raises ``InputError`` listing every
    unknown name and every invalid value."""
    problems = [unknown_parameter(name, SPECS) for name in overrides if name not in SPECS]
    problems += [msg for name, value in overrides.items() if name in SPECS
                 for msg in [check_value(SPECS[name], value)] if msg]
    if problems:
        raise InputError("invalid parameters: " + "; ".join(problems))
    values = {p.name: p.default for p in PARAMETERS}
    values.update(overrides)
    return values


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _node_keys(node_name: str, namespace: str) -> list[str]:
    """YAML keys that address this node, in rcl's order of increasing precedence."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    fq = f"{ns}/{node_name}"
    return ["/**", "**", f"/**/{node_name}", node_name if not ns else fq.lstrip("/"), fq]


def load_parameter_file(path: str, node_name: str = NODE_NAME, namespace: str = "") -> dict:
    """The flat ``{dotted_name: value}`` overrides a ROS parameter file gives this node (ROS-free).

    Raises ``InputError`` for an unreadable file or one without ``ros__parameters`` for this node.
    Values are not validated here: see ``validate_values``.
    """
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read parameter file {path}: {err}") from None
    if not isinstance(doc, dict):
        raise InputError(f"parameter file {path}: expected a mapping of node names")
    found, overrides = False, {}
    for key in _node_keys(node_name, namespace):
        section = doc.get(key)
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            found = True
            overrides.update(_flatten(section["ros__parameters"]))
    if not found:
        raise InputError(f"parameter file {path} has no 'ros__parameters' for node '{node_name}' "
                         f"(keys tried: {', '.join(_node_keys(node_name, namespace))})")
    return overrides


# ----------------------------------------------------------------------------------- settings/configs
@dataclass(frozen=True)
class NodeSettings:
    """Node-level (ROS-side) settings."""

    detector: str
    color_topic: str
    depth_topic: str
    camera_info_topic: str
    instances_topic: str
    sync_slop_s: float
    sync_queue_size: int
    sensor_qos_depth: int
    max_processing_rate_hz: float
    publish_rate_hz: float
    diagnostics_period_s: float
    stale_after_s: float
    vlm_service: str
    vlm_timeout_s: float
    detections_topic: str = "/camera/detections"
    detections_msg: str = "spatial_vlm_interfaces/Detections2D"
    depth_source: str = "sensor"
    autostart: bool = True
    frame_worker: str = "process"
    worker_start_timeout_s: float = 300.0
    target_frame: str = ""                 # "" = the camera optical frame
    gravity_mode: str = "plane"            # gravity.mode ("tf": ros.tf_frames.TfGravity replaces the estimator)
    tf_timeout_s: float = 0.05
    broadcast_gravity: bool = True
    detections_3d: bool = False
    collision_objects: bool = False


def node_settings(values: dict) -> NodeSettings:
    return NodeSettings(
        detector=values["detector"], color_topic=values["topics.color"], depth_topic=values["topics.depth"],
        camera_info_topic=values["topics.camera_info"], instances_topic=values["topics.instances"],
        sync_slop_s=values["sync.slop_s"], sync_queue_size=values["sync.queue_size"],
        sensor_qos_depth=values["qos.sensor_depth"], max_processing_rate_hz=values["max_processing_rate_hz"],
        publish_rate_hz=values["publish_rate_hz"], diagnostics_period_s=values["diagnostics_period_s"],
        stale_after_s=values["stale_after_s"], vlm_service=values["vlm_service"].strip(),
        vlm_timeout_s=values["vlm_timeout_s"], detections_topic=values["topics.detections"],
        detections_msg=values["detections_msg"], depth_source=values["depth_source"],
        autostart=values["autostart"], frame_worker=values["frame_worker"],
        worker_start_timeout_s=values["worker_start_timeout_s"], target_frame=values["target_frame"].strip(),
        gravity_mode=values["gravity.mode"], tf_timeout_s=values["tf.timeout_s"],
        broadcast_gravity=values["tf.broadcast_gravity"], detections_3d=values["outputs.detections_3d"],
        collision_objects=values["outputs.collision_objects"])


def _group_kwargs(values: dict, group: str) -> dict:
    kwargs = {}
    for spec in PARAMETERS:
        if spec.group == group:
            value = values[spec.name]
            kwargs[spec.field] = tuple(value) if isinstance(value, list) else value
    return kwargs


def pipeline_config(values: dict) -> PipelineConfig:
    """The ROS-free pipeline configuration. Raises ``InputError`` for inconsistent settings."""
    gravity = _group_kwargs(values, "gravity")
    if gravity["mode"] == "tf":       # up from TF: the frame worker replaces the estimator (ros.tf_frames.TfGravity)
        gravity["mode"] = "camera"
    if not gravity.get("static_support_height"):
        gravity["static_support_height"] = None
    lifting_error = LiftingError(**_group_kwargs(values, "uncertainty"), quantity_sigma_scale={
        name: values[f"{QUANTITY_SCALE}.{name}"] for name in QUANTITIES})
    noise = DepthNoiseModel(**_group_kwargs(values, "noise"), lifting=lifting_error)
    config = PipelineConfig(
        detector=values["detector"],
        lifting=replace(LiftingParams(), noise=noise, **_group_kwargs(values, "lifting")),
        memory=replace(MemoryParams(), **_group_kwargs(values, "memory")).validate(),
        noise=noise,
        gravity=replace(GravityParams(), **gravity),
        tabletop=replace(TabletopParams(), **_group_kwargs(values, "tabletop")),
        open_vocab=replace(OpenVocabParams(), **{**_group_kwargs(values, "open_vocab"), "classes": tuple(c for c in values["open_vocab.classes"] if c.strip())}),  # noqa: E501
        depth_source=values["depth_source"],
        depth_model=replace(DepthModelParams(), **_group_kwargs(values, "depth_model")).validate(),
        depth_fusion=replace(FusionParams(), **_group_kwargs(values, "depth_fusion")).validate(),
        boxes=replace(BoxesParams(), **_group_kwargs(values, "boxes")),
    )
    return config


# --------------------------------------------------------------------------------------------- rclpy
def descriptor(spec: ParamSpec):
    """``rcl_interfaces/ParameterDescriptor`` for one spec: description, range, read-only."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    constraints = []
    if spec.choices:
        constraints.append("one of: " + ", ".join(spec.choices))
    if spec.length:
        constraints.append(f"exactly {spec.length} values")
    d = ParameterDescriptor(name=spec.name, description=spec.description, read_only=True,
                            additional_constraints="; ".join(constraints))
    if spec.range is not None and isinstance(spec.default, bool) is False:
        if isinstance(spec.default, int):
            d.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=0)]
        elif isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                         to_value=float(spec.range[1]), step=0.0)]
    return d


def declare_parameters(node, unknown=()) -> dict:
    """Declare every parameter on ``node`` (overrides come from ``--params-file``); return the validated
    ``{name: value}``. Raises ``InputError`` listing every problem found, starting with ``unknown`` (the
    messages of overrides that name no parameter: ``lifecycle.take_overrides``)."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values, problems = {}, list(unknown)
    for spec in PARAMETERS:
        try:
            value = node.declare_parameter(spec.name, spec.default, descriptor(spec)).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as err:
            problems.append(f"{spec.name}: {err}")
            continue
        values[spec.name] = list(value) if isinstance(value, (list, tuple, array.array)) else value
    try:
        validated = validate_values({k: v for k, v in values.items() if v != SPECS[k].default})
    except InputError as err:
        problems.append(str(err).removeprefix("invalid parameters: "))
    if problems:
        raise InputError("invalid parameters: " + "; ".join(problems))
    return validated
