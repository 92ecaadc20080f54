"""Synthetic objects with known geometry for the reasoning tests (memory, naming, relations, queries).

Objects are axis-aligned boxes in a gravity frame (z up, metres); their surface is sampled on a regular grid
(every face, edges included) and expressed in the camera optical frame through the given ``GravityFrame``.
"""
from __future__ import annotations

import math

import numpy as np

from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.observation import Observation, TrackedObject
from spatial_vlm_ros.core.scene import Scene

TABLE_Z = -0.5          # gravity z of the table top: the camera is 50 cm above it


def pitched_gravity(pitch_down_deg: float) -> GravityFrame:
    """Gravity frame of a camera pitched down by ``pitch_down_deg`` (no roll)."""
    t = math.radians(pitch_down_deg)
    return GravityFrame.from_up(np.array([0.0, -math.cos(t), -math.sin(t)]), TABLE_Z, "static")


def box_surface(center_g, size, spacing: float = 0.01) -> np.ndarray:
    """(N, 3) gravity-frame points on the six faces of a box, on a grid that includes the edges."""
    c, s = np.asarray(center_g, float), np.asarray(size, float)
    lo, hi = c - s / 2, c + s / 2
    axes = [np.linspace(lo[k], hi[k], max(2, int(math.ceil(s[k] / spacing)) + 1)) for k in range(3)]
    faces = []
    for k in range(3):
        i, j = [m for m in range(3) if m != k]
        u, v = np.meshgrid(axes[i], axes[j], indexing="ij")
        for value in (lo[k], hi[k]):
            face = np.empty((u.size, 3))
            face[:, i], face[:, j], face[:, k] = u.ravel(), v.ravel(), value
            faces.append(face)
    return np.unique(np.concatenate(faces), axis=0)


def make_object(object_id: str, center_g, size, gravity: GravityFrame, label: str | None = None,
                color_name: str = "", n_pixels: int = 500, score: float = 0.9, with_points: bool = True
                ) -> TrackedObject:
    c, s = np.asarray(center_g, float), np.asarray(size, float)
    label = label if label is not None else object_id.rsplit("_", 1)[0].replace("_", " ")
    points = gravity.to_camera(box_surface(c, s)) if with_points else np.empty((0, 3))
    return TrackedObject(id=object_id, label=label, score=score, center=gravity.to_camera(c), size=s,
                         box_min=c - s / 2, box_max=c + s / 2, points=points, observations=5,
                         color_name=color_name, n_pixels=n_pixels)


def on_table(object_id: str, x: float, y: float, size, gravity: GravityFrame, bottom: float = TABLE_Z,
             **kwargs) -> TrackedObject:
    """An object whose box bottom is at gravity height ``bottom`` (default: the table top)."""
    s = np.asarray(size, float)
    return make_object(object_id, (x, y, bottom + s[2] / 2), s, gravity, **kwargs)


def make_scene(objects, gravity: GravityFrame, stamp: float = 0.0) -> Scene:
    return Scene(tuple(objects), gravity, stamp)


def make_observation(label: str, center_c, size, gravity: GravityFrame, color_name: str = "",
                     score: float = 0.9, with_points: bool = True) -> Observation:
    c_c, s = np.asarray(center_c, float), np.asarray(size, float)
    c_g = gravity.to_gravity(c_c)
    points = gravity.to_camera(box_surface(c_g, s, spacing=0.02)) if with_points else np.empty((0, 3))
    return Observation(label=label, score=score, center=c_c, size=s, box_min=c_g - s / 2, box_max=c_g + s / 2,
                       points=points, n_pixels=len(points), color_name=color_name)
