"""The gravity-aligned frame in which boxes, heights and vertical relations are defined.

Gravity frame: origin at the camera centre; z up (against gravity); x = the camera's x axis (right)
projected onto the horizontal plane; y = z cross x (forward, horizontal). Metres.
A point maps as ``p_g = R @ p_c`` where ``p_c`` is in the camera optical frame (x right, y down, z forward).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UP_FROM_SOURCE = {"plane": "support plane", "static": "static orientation parameter", "camera": "level camera"}


def rotation_from_up(up_c: np.ndarray) -> np.ndarray:
    """Rotation ``R`` (3x3) camera optical -> gravity frame, given the up direction in camera coordinates."""
    up = np.asarray(up_c, dtype=np.float64)
    n = np.linalg.norm(up)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError("up direction must be a finite non-zero vector")
    z = up / n
    x = np.array([1.0, 0.0, 0.0]) - z[0] * z      # camera x projected on the horizontal plane
    if np.linalg.norm(x) < 1e-6:                   # camera looking along gravity with x vertical: pick z
        x = np.array([0.0, 0.0, 1.0]) - z[2] * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])                     # rows are the gravity axes in camera coordinates


@dataclass(frozen=True)
class GravityFrame:
    """Camera optical -> gravity frame rotation, plus the support surface height if one was found."""

    rotation: np.ndarray                 # (3, 3) R with p_g = R @ p_c
    support_height: float | None = None  # gravity-frame z of the support plane (metres), None if unknown
    source: str = "camera"               # "plane" (fitted), "static" (configured pose) or "camera" (assumed)
    up_from: str = ""                    # where up came from, in words ("support plane", "tracked support
                                         # plane", "static orientation parameter", ...); "" = per ``source``
    assumed: bool | None = None          # up not measured: a level camera, or a fallback pose taken for lack
                                         # of a support plane; None = per ``source`` (only "camera")

    def __post_init__(self):
        if not self.up_from:
            object.__setattr__(self, "up_from", UP_FROM_SOURCE.get(self.source, self.source))
        if self.assumed is None:
            object.__setattr__(self, "assumed", self.source == "camera")

    @classmethod
    def from_up(cls, up_c, support_height: float | None = None, source: str = "plane", up_from: str = "",
                assumed: bool | None = None) -> GravityFrame:
        return cls(rotation_from_up(up_c), support_height, source, up_from, assumed)

    @classmethod
    def camera_default(cls) -> GravityFrame:
        """Assume the camera is level: up is the camera's -y axis."""
        return cls(rotation_from_up(np.array([0.0, -1.0, 0.0])), None, "camera")

    @property
    def up(self) -> np.ndarray:
        """Unit up vector in camera optical coordinates."""
        return self.rotation[2].copy()

    def to_gravity(self, points_c: np.ndarray) -> np.ndarray:
        """(N, 3) or (3,) camera-frame points -> gravity frame."""
        return np.asarray(points_c, dtype=np.float64) @ self.rotation.T

    def to_camera(self, points_g: np.ndarray) -> np.ndarray:
        """(N, 3) or (3,) gravity-frame points -> camera optical frame."""
        return np.asarray(points_g, dtype=np.float64) @ self.rotation
