"""Simulated camera: pinhole intrinsics, a viewpoint looking at the table, and a smooth motion at 30 Hz.

Poses are ``world <- camera optical`` 4x4 transforms (world: z up, table top at z = 0, metres; optical
frame: x right, y down, z forward). Viewpoints are parameterised as a photographer would: a target point on
the table, the azimuth of the camera around it (0 = looking along +y, towards the wall), the pitch below the
horizon, the distance to the target and a small roll.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_vlm_ros.sim.scene_sampler import TabletopScene

#: default optical frame id written into CameraInfo / image headers
OPTICAL_FRAME_ID = "camera_color_optical_frame"


@dataclass(frozen=True)
class Intrinsics:
    """Undistorted pinhole camera, pixels; the top-left pixel's center is (0, 0) (CameraInfo convention)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def camera_info(self, frame_id: str = OPTICAL_FRAME_ID) -> dict:
        """The ``sensor_msgs/CameraInfo`` fields (plumb_bob with zero distortion, P = [K | 0])."""
        k = self.K
        p = np.hstack([k, np.zeros((3, 1))])
        return {"width": self.width, "height": self.height, "distortion_model": "plumb_bob",
                "d": [0.0] * 5, "k": k.ravel().tolist(), "r": np.eye(3).ravel().tolist(),
                "p": p.ravel().tolist(), "frame_id": frame_id}

    def project(self, points_c: np.ndarray) -> np.ndarray:
        """(N, 3) optical-frame points -> (N, 2) pixels (u, v)."""
        p = np.asarray(points_c, dtype=np.float64).reshape(-1, 3)
        return np.stack([self.fx * p[:, 0] / p[:, 2] + self.cx, self.fy * p[:, 1] / p[:, 2] + self.cy], axis=1)


def sample_intrinsics(rng: np.random.Generator, width: int, height: int,
                      hfov_deg: tuple[float, float] = (55.0, 72.0)) -> Intrinsics:
    """Random intrinsics of an RGB-D camera: horizontal field of view in ``hfov_deg``, square-ish pixels
    (fy within 0.5 % of fx) and a principal point within 2 % of the image center."""
    fx = width / (2.0 * np.tan(np.radians(rng.uniform(*hfov_deg)) / 2.0))
    fy = fx * rng.uniform(0.995, 1.005)
    cx = (width - 1) / 2.0 + rng.uniform(-0.02, 0.02) * width
    cy = (height - 1) / 2.0 + rng.uniform(-0.02, 0.02) * height
    return Intrinsics(int(width), int(height), float(fx), float(fy), float(cx), float(cy))


def look_at(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """``world <- optical`` pose of a camera at ``eye`` looking at ``target`` (world z up), rolled by
    ``roll`` radians about its optical axis."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    if np.linalg.norm(x) < 1e-9:           # looking straight down: pick world x as image right
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = np.cos(roll), np.sin(roll)
    x, y = c * x + s * y, -s * x + c * y
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose


@dataclass(frozen=True)
class Viewpoint:
    """Camera placement around a target point (world frame, metres / radians)."""

    target: tuple[float, float, float]
    azimuth: float      # rotation about world z; 0 = camera looks along +y
    pitch: float        # angle of the optical axis below the horizon
    distance: float     # eye to target
    roll: float = 0.0

    def pose(self) -> np.ndarray:
        """``world <- optical`` 4x4."""
        t = np.asarray(self.target, dtype=np.float64)
        forward = np.array([np.sin(self.azimuth), np.cos(self.azimuth), 0.0])
        eye = t - self.distance * np.cos(self.pitch) * forward + np.array([0, 0, self.distance * np.sin(self.pitch)])
        return look_at(eye, t, self.roll)

    def moved(self, d_azimuth: float = 0.0, d_pitch: float = 0.0, d_distance: float = 0.0) -> Viewpoint:
        return Viewpoint(self.target, self.azimuth + d_azimuth, self.pitch + d_pitch,
                         self.distance + d_distance, self.roll)


def world_to_optical(pose: np.ndarray) -> np.ndarray:
    """Inverse of a ``world <- optical`` pose."""
    inv = np.eye(4)
    inv[:3, :3] = pose[:3, :3].T
    inv[:3, 3] = -pose[:3, :3].T @ pose[:3, 3]
    return inv


def objects_in_view(scene: TabletopScene, intr: Intrinsics, pose: np.ndarray, margin_px: float = 4.0) -> np.ndarray:
    """(n_objects,) bool: the object's world bounding box projects fully inside the image (with margin)
    and lies in front of the camera."""
    t = world_to_optical(pose)
    out = []
    for obj in scene.objects:
        lo, hi = obj.world_mesh.bounds
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        pc = corners @ t[:3, :3].T + t[:3, 3]
        if np.any(pc[:, 2] < 0.1):
            out.append(False)
            continue
        uv = intr.project(pc)
        out.append(bool(np.all(uv >= margin_px) and np.all(uv[:, 0] <= intr.width - 1 - margin_px)
                        and np.all(uv[:, 1] <= intr.height - 1 - margin_px)))
    return np.asarray(out, dtype=bool)


@dataclass(frozen=True)
class ViewpointConfig:
    pitch_deg: tuple[float, float] = (20.0, 60.0)
    distance_m: tuple[float, float] = (0.55, 1.2)
    max_distance_m: float = 1.9
    azimuth_deg: tuple[float, float] = (-35.0, 35.0)
    roll_deg: tuple[float, float] = (-4.0, 4.0)
    target_jitter_m: float = 0.04
    attempts: int = 30


def sample_viewpoint(rng: np.random.Generator, scene: TabletopScene, intr: Intrinsics,
                     cfg: ViewpointConfig | None = None) -> Viewpoint:
    """A viewpoint looking at the objects with all of them inside the image when possible (the camera backs
    off up to ``max_distance_m``); otherwise the tried viewpoint that shows the most objects."""
    cfg = cfg or ViewpointConfig()
    centers = np.array([o.world_mesh.bounds.mean(axis=0) for o in scene.objects])
    best, best_count = None, -1
    for _ in range(cfg.attempts):
        target = centers.mean(axis=0) + np.r_[rng.uniform(-1, 1, 2) * cfg.target_jitter_m, 0.0]
        target[2] = 0.5 * centers[:, 2].mean()
        vp = Viewpoint(tuple(target), np.radians(rng.uniform(*cfg.azimuth_deg)),
                       np.radians(rng.uniform(*cfg.pitch_deg)), float(rng.uniform(*cfg.distance_m)),
                       np.radians(rng.uniform(*cfg.roll_deg)))
        while True:
            count = int(objects_in_view(scene, intr, vp.pose(), margin_px=0.02 * intr.width).sum())
            if count > best_count:
                best, best_count = vp, count
            if count == len(scene.objects):
                return vp
            if vp.distance * 1.1 > cfg.max_distance_m:
                break
            vp = vp.moved(d_distance=0.1 * vp.distance)
    return best


@dataclass(frozen=True)
class TrajectoryConfig:
    """A slow hand-held-like motion: orbit, tilt and dolly at constant rates plus millimetre jitter."""

    rate_hz: float = 30.0
    yaw_rate_deg_s: tuple[float, float] = (6.0, 20.0)     # magnitude; the sign is random
    pitch_rate_deg_s: tuple[float, float] = (-5.0, 5.0)
    dolly_m_s: tuple[float, float] = (-0.06, 0.06)
    jitter_m: float = 0.0007


def camera_trajectory(rng: np.random.Generator, start: Viewpoint, n_frames: int,
                      cfg: TrajectoryConfig | None = None) -> list[tuple[float, np.ndarray]]:
    """``n_frames`` (time in seconds from the first frame, ``world <- optical`` pose) at ``cfg.rate_hz``.
    The first pose is ``start``'s."""
    cfg = cfg or TrajectoryConfig()
    yaw_rate = np.radians(rng.uniform(*cfg.yaw_rate_deg_s)) * rng.choice([-1.0, 1.0])
    pitch_rate = np.radians(rng.uniform(*cfg.pitch_rate_deg_s))
    dolly = rng.uniform(*cfg.dolly_m_s)
    out = []
    for i in range(n_frames):
        t = i / cfg.rate_hz
        pose = start.moved(yaw_rate * t, pitch_rate * t, dolly * t).pose()
        if i > 0 and cfg.jitter_m > 0:
            pose[:3, 3] += rng.normal(0.0, cfg.jitter_m, 3)
        out.append((t, pose))
    return out
