"""Per-object 3D data: one frame's ``Observation`` and the memory's ``TrackedObject``.

Frames: ``center``/``points`` are in the camera optical frame (x right, y down, z forward, metres).
``size`` and ``box_min``/``box_max`` are in the gravity frame (see ``core.gravity``: z up), metres.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Observation:
    """One object as seen in one frame, lifted to 3D."""

    label: str                      # detector label, e.g. "mug" or "red object"
    score: float                    # detector confidence in [0, 1]
    center: np.ndarray              # (3,) 3D box center, camera optical frame, metres
    size: np.ndarray                # (3,) width, depth, height of the gravity-aligned box, metres
    box_min: np.ndarray             # (3,) gravity-frame box corner (min x, y, z), metres
    box_max: np.ndarray             # (3,) gravity-frame box corner (max x, y, z), metres
    points: np.ndarray              # (N, 3) inlier surface points, camera optical frame, metres (subsampled)
    n_pixels: int = 0               # valid depth pixels that produced the points
    instance_id: int = 0            # id in the frame's instance mask (0 if none)
    color_rgb: tuple[int, int, int] = (0, 0, 0)   # median color of the mask, 0-255
    color_name: str = ""            # coarse color word ("red", "blue", ...), "" if unknown
    bbox_2d: tuple[int, int, int, int] = (0, 0, 0, 0)  # u_min, v_min, u_max, v_max in pixels
    stamp: float = 0.0              # seconds, the frame's header stamp


@dataclass
class TrackedObject:
    """An object held by ``SceneMemory``: smoothed geometry and a stable id such as ``mug_1``."""

    id: str
    label: str
    score: float
    center: np.ndarray              # (3,) camera optical frame of the latest frame, metres
    size: np.ndarray                # (3,) width, depth, height, gravity frame, metres
    box_min: np.ndarray             # (3,) gravity frame, metres
    box_max: np.ndarray             # (3,) gravity frame, metres
    points: np.ndarray              # (N, 3) latest inlier points, camera optical frame, metres
    observations: int = 1
    first_seen: float = 0.0         # seconds
    last_seen: float = 0.0          # seconds
    color_rgb: tuple[int, int, int] = (0, 0, 0)
    color_name: str = ""
    n_pixels: int = 0
    extra: dict = field(default_factory=dict)
