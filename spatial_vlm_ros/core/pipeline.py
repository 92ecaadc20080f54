"""The per-frame pipeline, ROS-free: validate/decode -> detect -> gravity -> lift -> scene memory.

One ``Frame`` (numpy colour + raw depth + ``CameraModel`` + optional external ``Segmentation``) goes in; the
updated objects, the frame's warnings and per-step timings come out. A frame that cannot be used raises
``InputError`` BEFORE the scene memory is touched, so a bad frame never changes the memory.

Frames: depth and points in the camera optical frame (x right, y down, z forward), metres; boxes in the
gravity frame (z up) of ``core.gravity_frame``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from spatial_vlm_ros.core.depth import decode_depth
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Frame
from spatial_vlm_ros.core.gravity import GravityEstimator, GravityParams
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.lifting import LiftingParams, lift_instances
from spatial_vlm_ros.core.memory import MemoryParams, SceneMemory
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.observation import Observation, TrackedObject
from spatial_vlm_ros.perception.base import Detector, Instance
from spatial_vlm_ros.perception.external import instances_from_mask
from spatial_vlm_ros.perception.tabletop import TabletopDetector, TabletopParams

DETECTORS = ("external", "tabletop")


@dataclass
class PipelineConfig:
    """Everything the pipeline needs; built from ROS parameters by ``ros.parameters``."""

    detector: str = "external"
    lifting: LiftingParams = field(default_factory=LiftingParams)
    memory: MemoryParams = field(default_factory=MemoryParams)
    noise: DepthNoiseModel = field(default_factory=DepthNoiseModel)
    gravity: GravityParams = field(default_factory=GravityParams)
    tabletop: TabletopParams = field(default_factory=TabletopParams)


@dataclass
class FrameResult:
    """What one processed frame produced."""

    stamp: float
    objects: list[TrackedObject]         # the memory's objects after this frame
    observations: list[Observation]      # this frame's lifted objects
    gravity: GravityFrame
    warnings: list[str]                  # per-instance skip reasons and other non-fatal problems
    timings_ms: dict[str, float]         # per step: decode, gravity, detect, lift, memory, total


def make_detector(config: PipelineConfig) -> Detector | None:
    """The configured weight-free detector, or None for ``external`` (masks come with the frame)."""
    if config.detector == "external":
        return None
    if config.detector == "tabletop":
        return TabletopDetector(config.tabletop)
    raise InputError(f"unknown detector '{config.detector}' (known: {', '.join(DETECTORS)})")


class FramePipeline:
    """Turns frames into scene-memory updates. Not thread-safe itself: call ``process`` from one thread;
    the memory it owns is thread-safe for readers (``memory.snapshot()``)."""

    def __init__(self, config: PipelineConfig | None = None, memory: SceneMemory | None = None):
        self.config = config or PipelineConfig()
        self.detector = make_detector(self.config)
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
        """Run one frame. Raises ``InputError`` (memory untouched) when the frame cannot be used."""
        timings: dict[str, float] = {}
        t0 = t = time.perf_counter()

        depth_m = self._validated_depth(frame)
        external = self._external_instances(frame) if self.detector is None else None
        warnings = list(external[1]) if external is not None else []
        t = _lap(timings, "decode", t)

        exclude = None
        if external is not None and external[0]:
            exclude = np.logical_or.reduce([inst.mask for inst in external[0]])
        gravity = self.gravity.update(depth_m, frame.camera, exclude_mask=exclude)
        t = _lap(timings, "gravity", t)

        if external is not None:
            instances = external[0]
        else:
            instances = list(self.detector.detect(frame.rgb, depth_m, frame.camera, gravity))
        t = _lap(timings, "detect", t)

        observations, lift_warnings = lift_instances(depth_m, frame.camera, instances, gravity,
                                                     self.config.lifting, stamp=frame.stamp, rgb=frame.rgb)
        warnings.extend(lift_warnings)
        if instances and not observations:
            raise InputError(f"none of the {len(instances)} instances could be lifted to 3D: "
                             + "; ".join(lift_warnings or ["no valid depth inside the masks"]))
        t = _lap(timings, "lift", t)

        objects = self.memory.update(observations, frame.stamp, gravity)
        warnings.extend(f"observation {i}: {reason}" for i, reason in self.memory.last_report.rejected)
        _lap(timings, "memory", t)
        timings["total"] = 1e3 * (time.perf_counter() - t0)
        return FrameResult(frame.stamp, list(objects), observations, gravity, warnings, timings)

    # ------------------------------------------------------------------------------------------ checks
    @staticmethod
    def _validated_depth(frame: Frame) -> np.ndarray:
        rgb, depth, camera = frame.rgb, frame.depth, frame.camera
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(f"colour image must be HxWx3, got shape {rgb.shape}")
        if depth.ndim != 2:
            raise InputError(f"depth image must be HxW (one channel), got shape {depth.shape}")
        if rgb.shape[:2] != depth.shape:
            raise InputError(f"colour image is {rgb.shape[1]}x{rgb.shape[0]} but depth is "
                             f"{depth.shape[1]}x{depth.shape[0]}: depth must be aligned to the colour image")
        if (camera.width, camera.height) != (rgb.shape[1], rgb.shape[0]):
            raise InputError(f"camera info is for {camera.width}x{camera.height} images but the colour "
                             f"image is {rgb.shape[1]}x{rgb.shape[0]}")
        depth_m = decode_depth(depth, frame.depth_encoding)
        if not np.isfinite(depth_m).any():
            raise InputError("depth image has no valid pixels (all zero, NaN, inf or negative)")
        return depth_m

    @staticmethod
    def _external_instances(frame: Frame) -> tuple[list[Instance], list[str]]:
        seg = frame.segmentation
        if seg is None:
            raise InputError("detector 'external' needs an instance segmentation with every frame")
        if seg.mask_ids.shape != frame.rgb.shape[:2]:
            raise InputError(f"instance mask is {seg.mask_ids.shape[1]}x{seg.mask_ids.shape[0]} but the "
                             f"colour image is {frame.rgb.shape[1]}x{frame.rgb.shape[0]}")
        instances = instances_from_mask(seg.mask_ids, seg.ids, seg.labels, seg.scores)
        found = {inst.instance_id for inst in instances}
        missing = [f"'{label}' (id {i})" for i, label in zip(seg.ids, seg.labels) if i not in found]
        if seg.ids and not instances:
            raise InputError(f"all {len(seg.ids)} instance masks are empty: no pixel carries ids {seg.ids}")
        warnings = [f"instance {m}: empty mask, skipped" for m in missing]
        return instances, warnings


def _lap(timings: dict, name: str, start: float) -> float:
    now = time.perf_counter()
    timings[name] = 1e3 * (now - start)
    return now
