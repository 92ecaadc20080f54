"""The per-frame pipeline, ROS-free: validate/decode -> detect -> gravity -> lift -> scene memory.

It composes the core (geometry, gravity, lifting, memory) with the detectors of ``perception``, so it lives
above both: ``core`` never imports ``perception``.

One ``Frame`` (numpy color + raw depth + ``CameraModel`` + optional external ``Segmentation``) goes in; the
updated objects, the frame's warnings and per-step timings come out. A frame that cannot be used raises
``InputError`` and changes nothing: not the scene memory, and not the gravity estimate (its update is rolled
back when a later step, the memory's stamp checks included, rejects the frame).

Frames: depth and points in the camera optical frame (x right, y down, z forward), metres; boxes in the
gravity frame (z up) of ``core.gravity_frame``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from spatial_vlm_ros.core.depth import decode_depth
from spatial_vlm_ros.core.depth_fusion import Alignment, FusionParams, fuse_depth
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Frame, check_frame_arrays, check_valid_depth
from spatial_vlm_ros.core.gravity import GravityEstimator, GravityParams
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.lifting import LiftingParams, lift_instances
from spatial_vlm_ros.core.memory import MemoryParams, SceneMemory
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.observation import Observation, TrackedObject
from spatial_vlm_ros.perception.base import Detector, Instance
from spatial_vlm_ros.perception.boxes import BoxesDetector, BoxesParams, check_detections
from spatial_vlm_ros.perception.external import CroppedInstance, cropped_instances_from_mask
from spatial_vlm_ros.perception.mono_depth import DepthModelParams  # no torch: the model is imported lazily
from spatial_vlm_ros.perception.open_vocab import OpenVocabParams  # no torch: the models load lazily
from spatial_vlm_ros.perception.tabletop import TabletopDetector, TabletopParams

DETECTORS = ("external", "tabletop", "boxes", "open_vocab")
DEPTH_SOURCES = ("sensor", "model", "fuse")


@dataclass
class PipelineConfig:
    """Everything the pipeline needs; built from ROS parameters by ``ros.parameters``."""

    detector: str = "external"
    lifting: LiftingParams = field(default_factory=LiftingParams)
    memory: MemoryParams = field(default_factory=MemoryParams)
    noise: DepthNoiseModel = field(default_factory=DepthNoiseModel)
    gravity: GravityParams = field(default_factory=GravityParams)
    tabletop: TabletopParams = field(default_factory=TabletopParams)
    open_vocab: OpenVocabParams = field(default_factory=OpenVocabParams)
    depth_source: str = "sensor"         # sensor | model (RGB-only: depth_model) | fuse (sensor + depth_model)
    depth_model: DepthModelParams = field(default_factory=DepthModelParams)
    depth_fusion: FusionParams = field(default_factory=FusionParams)   # depth_source fuse
    boxes: BoxesParams = field(default_factory=BoxesParams)


@dataclass
class FrameResult:
    """What one processed frame produced."""

    stamp: float
    objects: list[TrackedObject]         # the memory's objects after this frame
    observations: list[Observation]      # this frame's lifted objects
    gravity: GravityFrame
    warnings: list[str]                  # per-instance skip reasons and other non-fatal problems
    timings_ms: dict[str, float]         # per step: decode, gravity, detect, lift, memory, total (wall)
    cpu_ms: dict[str, float] = field(default_factory=dict)   # the same steps in CPU time of this thread


def make_detector(config: PipelineConfig) -> Detector | None:
    """The configured detector, or None for ``external`` (masks come with the frame)."""
    if config.detector == "external":
        return None
    if config.detector == "tabletop":
        return TabletopDetector(config.tabletop)
    if config.detector == "open_vocab":       # transformers/torch imported only now
        from spatial_vlm_ros.perception.open_vocab import OpenVocabDetector
        return OpenVocabDetector(config.open_vocab, config.boxes.segmenter_params(config.noise))
    if config.detector == "boxes":
        return BoxesDetector(config.boxes, config.noise)
    raise InputError(f"unknown detector '{config.detector}' (known: {', '.join(DETECTORS)})")


def make_depth_predictor(config: PipelineConfig, predictor=None):
    """The depth predictor of ``depth_source`` model/fuse (``predictor`` if given, else the configured depth
    model, loaded now), None for ``sensor``. Raises ``InputError`` (``MissingModelError`` naming the fetch
    command) when the source is unknown or the model cannot be used."""
    if config.depth_source not in DEPTH_SOURCES:
        raise InputError(f"unknown depth_source '{config.depth_source}' (known: {', '.join(DEPTH_SOURCES)})")
    if config.depth_source == "sensor":
        return None
    if predictor is None:
        from spatial_vlm_ros.perception.mono_depth import MonoDepthModel  # torch only when a model is used
        predictor = MonoDepthModel(config.depth_model)
    if config.depth_source == "model" and not getattr(predictor, "metric", True):
        raise InputError(f"depth model {config.depth_model.model!r} predicts relative depth, not metres: "
                         "depth_source 'model' needs a metric model (e.g. a Depth-Anything-V2-Metric one); "
                         "a relative model can only be used with depth_source 'fuse'")
    return predictor


class FramePipeline:
    """Turns frames into scene-memory updates. Not thread-safe itself: call ``process`` from one thread;
    the memory it owns is thread-safe for readers (``memory.snapshot()``)."""

    def __init__(self, config: PipelineConfig | None = None, memory: SceneMemory | None = None,
                 depth_predictor=None):
        self.config = config or PipelineConfig()
        self.detector = make_detector(self.config)
        # depth_source model/fuse: ``depth_predictor(rgb) -> (H, W) depth`` (default: the depth_model, built
        # here, once); the noise model of relations/quantities (config.noise, not the per-pixel lifting one)
        # gets the model's relative error. After make_detector: detectors keep the per-pixel sensor noise.
        self.depth_predictor = make_depth_predictor(self.config, depth_predictor)
        self.last_depth_fit: Alignment | None = None       # depth_source fuse: the last frame's alignment
        if self.config.depth_source != "sensor":
            widened = self.config.noise.widened(self.config.depth_model.relative_error)
            self.config = replace(self.config, noise=widened)
        self.gravity = GravityEstimator(self.config.gravity)
        self.memory = memory if memory is not None else SceneMemory(self.config.memory)

    def reset(self) -> None:
        """Clear the scene memory and the gravity estimate. A reset usually means a new scene or a camera
        that was re-placed; a kept up vector would be held against the new view's plane fits (as a jump to
        be confirmed) and lift its first frames with the old camera's gravity. The next frame's plane fit
        starts a fresh estimate."""
        self.memory.reset()
        self.gravity.reset()

    def process(self, frame: Frame) -> FrameResult:
        """Run one frame. Raises ``InputError`` (memory and gravity estimate untouched) when the frame cannot be
        used."""
        state = self.gravity.checkpoint()
        try:
            return self._process(frame)
        except BaseException:
            self.gravity.rollback(state)        # committed only with a frame the memory accepted
            raise

    def _process(self, frame: Frame) -> FrameResult:
        timings: dict[str, float] = {}
        cpu: dict[str, float] = {}
        t0 = t = time.perf_counter()
        c0 = c = time.thread_time()

        depth_m = self._validated_depth(frame, timings)
        external = self._external_instances(frame) if self.detector is None else None
        warnings = list(external[1]) if external is not None else []
        t, c = _lap(timings, cpu, "decode", t, c)

        exclude = None
        if external is not None and external[0]:
            exclude = np.zeros(depth_m.shape, bool)      # the instances' pixels, from their crops
            for inst in external[0]:
                (r, col), (h, w) = inst.origin, inst.mask.shape
                exclude[r:r + h, col:col + w] |= inst.mask
        if self.detector is not None and self.detector.needs_boxes:
            if frame.detections is None:
                raise InputError(f"detector '{self.config.detector}' needs 2D detections with every frame "
                                 "(Frame.detections, the /camera/detections topic); none came with this one")
            exclude = _box_exclusion(frame.detections, depth_m.shape)
        gravity = self.gravity.update(depth_m, frame.camera, exclude_mask=exclude)
        t, c = _lap(timings, cpu, "gravity", t, c)

        instances: list[Instance]
        if external is not None:
            instances = list(external[0])
        else:
            assert self.detector is not None, "no external instances without a detector"
            instances = list(self.detector.detect(frame.rgb, depth_m, frame.camera, gravity,
                                                  boxes=frame.detections))
            warnings.extend(getattr(self.detector, "warnings", []))
        t, c = _lap(timings, cpu, "detect", t, c)

        observations, lift_warnings = lift_instances(depth_m, frame.camera, instances, gravity,
                                                     self.config.lifting, stamp=frame.stamp, rgb=frame.rgb)
        warnings.extend(lift_warnings)
        if instances and not observations:
            raise InputError(f"none of the {len(instances)} instances could be lifted to 3D: "
                             + "; ".join(lift_warnings or ["no valid depth inside the masks"]))
        t, c = _lap(timings, cpu, "lift", t, c)

        objects = self.memory.update(observations, frame.stamp, gravity)
        report = self.memory.last_report
        warnings.extend(f"observation {i}: {reason}" for i, reason in report.rejected)
        if report.note:                    # a clock jump the memory reset for: never silent
            warnings.append(f"scene memory reset: {report.note}")
        _lap(timings, cpu, "memory", t, c)
        timings["total"] = 1e3 * (time.perf_counter() - t0)
        cpu["total"] = 1e3 * (time.thread_time() - c0)
        return FrameResult(frame.stamp, list(objects), observations, gravity, warnings, timings, cpu)

    # ------------------------------------------------------------------------------------------ checks
    def _validated_depth(self, frame: Frame, timings: dict | None = None) -> np.ndarray:
        """(H, W) float32 depth in metres (NaN invalid) from the configured ``depth_source``: the frame's
        sensor depth, the depth model's prediction from ``frame.rgb``, or the two fused."""
        rgb, depth, camera = frame.rgb, frame.depth, frame.camera
        source = self.config.depth_source
        if source == "model":
            check_frame_arrays(camera, rgb=rgb)
            return self._model_depth(rgb, timings)
        if depth is None:
            raise InputError("this frame has no depth image; for an RGB-only camera set depth_source: model")
        check_frame_arrays(camera, rgb=rgb, depth=depth, raw_depth=True)
        depth_m = decode_depth(depth, frame.depth_encoding)
        if source == "fuse":
            model = self._model_depth(rgb, timings)
            metric = getattr(self.depth_predictor, "metric", True)
            params = self.config.depth_fusion if metric else replace(self.config.depth_fusion, fit_shift=True)
            fused = fuse_depth(model, depth_m, params, space="depth" if metric else "inverse")
            self.last_depth_fit = fused.alignment
            return fused.depth
        check_valid_depth(depth_m)
        return depth_m

    def _model_depth(self, rgb: np.ndarray, timings: dict | None) -> np.ndarray:
        """The depth predictor's output for ``rgb`` as (H, W) float32, NaN where not finite and positive."""
        t = time.perf_counter()
        pred = np.asarray(self.depth_predictor(rgb), dtype=np.float32)
        if pred.shape != rgb.shape[:2]:
            raise InputError(f"the depth model returned a {pred.shape} depth for a {rgb.shape[:2]} image")
        with np.errstate(invalid="ignore"):
            pred = np.where(np.isfinite(pred) & (pred > 0), pred, np.float32(np.nan))
        if not np.isfinite(pred).any():
            raise InputError("the depth model predicted no valid depth for this frame")
        if timings is not None:
            timings["depth_model"] = 1e3 * (time.perf_counter() - t)
        return pred

    @staticmethod
    def _external_instances(frame: Frame) -> tuple[list[CroppedInstance], list[str]]:
        """The frame's segmentation as ``CroppedInstance``s (no full-size mask per instance) and warnings
        for listed ids without pixels."""
        seg = frame.segmentation
        if seg is None:
            raise InputError("detector 'external' needs an instance segmentation with every frame")
        check_frame_arrays(frame.camera, mask=seg.mask_ids, mask_name="instance mask")
        instances = cropped_instances_from_mask(seg.mask_ids, seg.ids, seg.labels, seg.scores)
        found = {inst.instance_id for inst in instances}
        missing = [f"'{label}' (id {i})" for i, label in zip(seg.ids, seg.labels) if i not in found]
        if seg.ids and not instances:
            raise InputError(f"all {len(seg.ids)} instance masks are empty: no pixel carries ids {seg.ids}")
        warnings = [f"instance {m}: empty mask, skipped" for m in missing]
        return instances, warnings


def _box_exclusion(detections, shape: tuple[int, int], max_fraction: float = 0.5) -> np.ndarray | None:
    """Pixels inside the frame's 2D boxes (objects, kept out of the support-plane fit), or None when the
    boxes cover more than ``max_fraction`` of the image (too little would be left for the fit)."""
    from spatial_vlm_ros.perception.box_segmenter import box_pixels
    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    for _, b in check_detections(detections, w, h)[0]:
        c0, r0, c1, r1 = box_pixels(b, w, h) or (0, 0, -1, -1)
        mask[r0:r1 + 1, c0:c1 + 1] = True
    return mask if 0 < np.count_nonzero(mask) <= max_fraction * mask.size else None


def _lap(timings: dict, cpu: dict, name: str, start: float, cpu_start: float) -> tuple[float, float]:
    """Record step ``name`` (ms, wall and this thread's CPU time) since the starts; the new starts."""
    now, cpu_now = time.perf_counter(), time.thread_time()
    timings[name] = 1e3 * (now - start)
    cpu[name] = 1e3 * (cpu_now - cpu_start)
    return now, cpu_now
