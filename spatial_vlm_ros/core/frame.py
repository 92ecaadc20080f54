"""One synchronised RGB-D frame as numpy arrays: the pipeline's input, built by the ROS layer or a bag reader.

Depth stays raw (its unit follows ``depth_encoding``: 16UC1/mono16 millimetres, 32FC1 metres); the camera
optical frame is x right, y down, z forward.
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


@dataclass
class Frame:
    """One synchronised RGB-D frame. ``depth`` is raw: its unit comes from ``depth_encoding``."""

    rgb: np.ndarray                      # (H, W, 3) uint8, RGB order
    depth: np.ndarray                    # (H, W) raw depth (16UC1/mono16 millimetres, 32FC1 metres)
    depth_encoding: str
    camera: CameraModel
    stamp: float = 0.0                   # seconds
    segmentation: Segmentation | None = None
