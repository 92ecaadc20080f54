"""The detector interface: an RGB-D frame in, object instances (pixel masks with labels) out."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D
from spatial_vlm_ros.core.gravity_frame import GravityFrame


@dataclass
class Instance:
    """One detected object in one image: a (H, W) bool pixel mask, a label, a score in [0, 1] and the id it
    had in the frame's instance mask (0 if none)."""

    mask: np.ndarray
    label: str
    score: float = 1.0
    instance_id: int = 0

    def __post_init__(self):
        mask = np.asarray(self.mask)
        if mask.ndim != 2:
            raise InputError(f"instance '{self.label}': mask must be a (H, W) image, got shape {mask.shape}")
        self.mask = mask if mask.dtype == bool else mask != 0
        self.score = float(self.score)
        self.instance_id = int(self.instance_id)


class Detector(ABC):
    """A source of instances. Subclasses implement ``detect``; ``name`` is the ``detector`` parameter value."""

    name = "detector"

    #: True when the detector needs the frame's external 2D boxes (``Frame.detections``).
    needs_boxes = False

    @abstractmethod
    def detect(self, rgb: np.ndarray | None, depth_m: np.ndarray, camera: CameraModel,
               gravity: GravityFrame, boxes: list[Detection2D] | None = None) -> list[Instance]:
        """Instances in one frame. ``rgb`` (H, W, 3) uint8 or None; ``depth_m`` (H, W) float32 metres, NaN
        invalid; ``gravity`` the frame's current gravity estimate; ``boxes`` the frame's external 2D
        detections (used by detectors with ``needs_boxes``)."""


class BoxSegmenter(ABC):
    """Turns 2D boxes into pixel masks: one ``Instance`` per box it can segment (a box it cannot is skipped
    and the reason kept in ``warnings`` until the next call)."""

    name = "segmenter"

    def __init__(self) -> None:
        self.warnings: list[str] = []

    @abstractmethod
    def segment(self, rgb: np.ndarray | None, depth_m: np.ndarray, camera: CameraModel,
                gravity: GravityFrame, boxes: list[Detection2D]) -> list[Instance]:
        """Masks for ``boxes`` (pixels, see ``Detection2D``) in one frame; arguments as ``Detector.detect``."""
