"""Lifting one frame to a metric 3D scene with the package's own ``spatial_vlm_ros.pipeline.FramePipeline``.

Each frame is lifted on its own: the pipeline's scene memory and gravity estimate are reset before every frame
(frames of a data set are unrelated views), so a frame's objects never depend on which worker saw which frame
before it. A ``Lifter`` keeps one pipeline per detector for the life of a worker.

Frames: object centers in the camera optical frame (x right, y down, z forward), boxes in the frame's gravity
frame (z up), metres.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.observation import TrackedObject
from spatial_vlm_ros.core.scene import Scene
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig

from .frames import FrameInput, FrameTruth


@dataclass(frozen=True)
class LiftConfig:
    """The pipeline's configuration (its ``detector`` is replaced per frame) and the detector choice:
    ``auto`` = the frame's masks (``external``), else its 2D boxes (``boxes``), else ``tabletop``."""

    detector: str = "auto"
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


@dataclass
class LiftedFrame:
    """One lifted frame: the scene the templates ask about and the frame's provenance. ``skipped`` says why a
    frame gave no scene ("" when it did)."""

    source: str
    frame_index: int
    stamp_ns: int
    image_png: bytes
    scene: Scene
    truth: FrameTruth | None = None
    warnings: list[str] = field(default_factory=list)
    skipped: str = ""

    @property
    def objects(self) -> tuple[TrackedObject, ...]:
        return self.scene.objects


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB image."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise InputError(f"could not encode a {rgb.shape} image as PNG")
    return buf.tobytes()


def choose_detector(frame: FrameInput, detector: str) -> str:
    if detector != "auto":
        return detector
    if frame.mask is not None:
        return "external"
    return "boxes" if frame.detections else "tabletop"


class Lifter:
    """Lifts frames one by one; one ``FramePipeline`` per detector, reset before every frame."""

    def __init__(self, config: LiftConfig | None = None):
        self.config = config or LiftConfig()
        self._pipelines: dict[str, FramePipeline] = {}

    def _pipeline(self, detector: str) -> FramePipeline:
        if detector not in self._pipelines:
            from dataclasses import replace
            self._pipelines[detector] = FramePipeline(replace(self.config.pipeline, detector=detector))
        return self._pipelines[detector]

    def lift(self, frame: FrameInput) -> LiftedFrame:
        """The frame's scene; a frame the pipeline cannot use (no depth, nothing liftable) or without objects
        comes back with ``skipped`` set and an empty scene."""
        png = encode_png(frame.stored_image)
        detector = choose_detector(frame, self.config.detector)
        if detector == "external" and frame.mask is None:
            raise InputError(f"{frame.source} frame {frame.frame_index}: detector 'external' needs instance "
                             "masks and the frame has none")
        lifted = LiftedFrame(frame.source, frame.frame_index, frame.stamp_ns, png, Scene(), frame.truth)
        if frame.mask is not None and detector == "external" and not frame.ids:
            lifted.skipped = "no objects in the frame"
            return lifted
        pipeline = self._pipeline(detector)
        pipeline.reset()
        try:
            result = pipeline.process(frame.core_frame())
        except InputError as err:
            lifted.skipped = f"not lifted: {err}"
            return lifted
        finally:
            scene = pipeline.memory.snapshot()
            pipeline.reset()
        lifted.scene, lifted.warnings = scene, list(result.warnings)
        if not scene.objects:
            lifted.skipped = "no objects in the frame"
        return lifted


def lift_frame(frame: FrameInput, config: LiftConfig | None = None, lifter: Lifter | None = None) -> LiftedFrame:
    """Lift one frame (a ``Lifter`` is made when none is given; pass one to lift many frames)."""
    return (lifter or Lifter(config)).lift(frame)
