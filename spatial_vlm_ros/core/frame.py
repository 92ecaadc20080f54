"""One synchronised RGB-D (or RGB-only) frame as numpy arrays: the pipeline's input, built by the ROS layer
or a bag reader.

Depth stays raw (its unit follows ``depth_encoding``: 16UC1/mono16 millimetres, 32FC1 metres); the camera
optical frame is x right, y down, z forward. Pixel coordinates: u right, v down, origin at the
top-left pixel's centre as in ``CameraModel``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_vlm_ros.core.camera import CameraModel


@dataclass
class Segmentation:
    """Instance masks from an external detector: an id per pixel (0 = none) and one label/score per id."""

    mask_ids: np.ndarray                 # (H, W) unsigned ints, same size as the colour image
    ids: list[int]
    labels: list[str]
    scores: list[float]


@dataclass(frozen=True)
class Detection2D:
    """One 2D detection from any detector (the ``spatial_vlm_interfaces/Detection2D`` message, a
    ``vision_msgs/Detection2D``, or a built-in detector): label, score, tracker id ("" if none) and an
    axis-aligned pixel box given as centre and full size (as vision_msgs' BoundingBox2D), pixels."""

    label: str
    score: float
    center_x: float
    center_y: float
    size_x: float
    size_y: float
    id: str = ""

    def corners(self) -> tuple[float, float, float, float]:
        """``(u_min, v_min, u_max, v_max)`` in pixels (continuous, not clipped to the image)."""
        hx, hy = 0.5 * self.size_x, 0.5 * self.size_y
        return self.center_x - hx, self.center_y - hy, self.center_x + hx, self.center_y + hy

    @classmethod
    def from_corners(cls, label: str, score: float, u_min: float, v_min: float, u_max: float, v_max: float,
                     id: str = "") -> Detection2D:
        """Build from pixel corners ``(u_min, v_min, u_max, v_max)``."""
        return cls(label, float(score), 0.5 * (u_min + u_max), 0.5 * (v_min + v_max),
                   float(u_max - u_min), float(v_max - v_min), id)


@dataclass
class Frame:
    """One synchronised RGB-D frame. ``depth`` is raw: its unit comes from ``depth_encoding``."""

    rgb: np.ndarray                      # (H, W, 3) uint8, RGB order
    depth: np.ndarray | None             # (H, W) raw depth (16UC1/mono16 millimetres, 32FC1 metres);
                                         # None for an RGB-only camera (``depth_source: model``)
    depth_encoding: str
    camera: CameraModel
    stamp: float = 0.0                   # seconds
    segmentation: Segmentation | None = None
    detections: list[Detection2D] | None = None   # 2D boxes from an external detector (``detector: boxes``)
