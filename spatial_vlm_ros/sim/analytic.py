"""Analytic RGB-D scenes with known answers: boxes and vertical cylinders on a table, ray-cast exactly.

World frame: z up, origin at the center of the table top (the table is the rectangle ``|x| <= w/2,
|y| <= d/2`` at z = 0), a floor ``floor_below_m`` under it; metres. Boxes are axis-aligned in the world;
cylinders stand upright. An object's ``base_z`` is the height of its bottom (0 = on the table; use
``top_of(other)`` to stack). The camera looks horizontally along ``(-sin yaw, cos yaw, 0)`` (yaw 0: world
+y), pitched down by ``pitch_deg``, rolled by ``roll_deg``, placed ``distance`` metres back from the table
center along that direction at ``height`` metres above the table.

``render`` returns depth (float32 metres along the optical axis, NaN where no surface), an instance-id mask
(uint16, 0 = table/floor/nothing), an RGB image (flat colors, Lambert shading), and ground truth: per
object the full 3D box in the gravity frame (``core.gravity_frame``), its corners and center in the camera
frame, the box of its visible surface, whether it is occluded or cut by the image border, and the true
``GravityFrame``. Optional sensor effects: Gaussian depth noise ``sigma(z)``, holes at depth edges, and
masks dilated past the object edge (mask-edge bleeding). Deterministic for a given seed; a 640x480 frame
takes about 0.1 s (each object is ray-cast only inside its projected rectangle).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.noise import DepthNoiseModel

TABLE_RGB = (150, 115, 80)
FLOOR_RGB = (95, 95, 100)
_LIGHT = np.array([0.3, -0.4, 0.87]) / np.linalg.norm([0.3, -0.4, 0.87])


@dataclass(frozen=True)
class BoxObject:
    """Box axis-aligned in the world: ``size`` = (x, y, z) extents, bottom at ``base_z`` (metres)."""

    label: str
    center_xy: tuple[float, float]
    size: tuple[float, float, float]
    base_z: float = 0.0
    color: tuple[int, int, int] = (200, 40, 40)

    @property
    def top_z(self) -> float:
        return self.base_z + self.size[2]

    def world_box(self) -> tuple[np.ndarray, np.ndarray]:
        c = np.array([self.center_xy[0], self.center_xy[1], self.base_z + self.size[2] / 2])
        h = np.array(self.size, dtype=np.float64) / 2
        return c - h, c + h


@dataclass(frozen=True)
class CylinderObject:
    """Upright cylinder of ``radius`` and ``height`` with its bottom at ``base_z`` (metres)."""

    label: str
    center_xy: tuple[float, float]
    radius: float
    height: float
    base_z: float = 0.0
    color: tuple[int, int, int] = (40, 70, 200)

    @property
    def top_z(self) -> float:
        return self.base_z + self.height

    def world_box(self) -> tuple[np.ndarray, np.ndarray]:
        c = np.array([self.center_xy[0], self.center_xy[1], self.base_z + self.height / 2])
        h = np.array([self.radius, self.radius, self.height / 2])
        return c - h, c + h


def top_of(obj: BoxObject | CylinderObject) -> float:
    """``base_z`` that stacks an object on ``obj``."""
    return obj.top_z


@dataclass(frozen=True)
class CameraPose:
    """Camera placement relative to the table center: metres and degrees (pitch > 0 looks down)."""

    height: float = 0.6
    pitch_deg: float = 35.0
    yaw_deg: float = 0.0
    distance: float = 0.9
    roll_deg: float = 0.0

    def rotation(self) -> np.ndarray:
        """R_wc (3x3): columns are the optical x, y, z axes in world coordinates."""
        yaw, pitch, roll = np.radians([self.yaw_deg, self.pitch_deg, self.roll_deg])
        forward = np.array([-np.sin(yaw), np.cos(yaw), 0.0])
        up = np.array([0.0, 0.0, 1.0])
        right = np.cross(forward, up)
        z = np.cos(pitch) * forward - np.sin(pitch) * up
        x0 = right
        y0 = np.cross(z, x0)
        x = np.cos(roll) * x0 + np.sin(roll) * y0
        y = -np.sin(roll) * x0 + np.cos(roll) * y0
        return np.stack([x, y, z], axis=1)

    def position(self) -> np.ndarray:
        """Camera center in world coordinates (metres)."""
        yaw = np.radians(self.yaw_deg)
        return np.array([np.sin(yaw) * self.distance, -np.cos(yaw) * self.distance, self.height])


@dataclass
class ObjectTruth:
    """Ground truth of one rendered object. Gravity-frame quantities use the frame's true ``GravityFrame``."""

    instance_id: int
    label: str
    shape: str                       # "box" or "cylinder"
    box_min_g: np.ndarray            # (3,) full 3D box, gravity frame, metres
    box_max_g: np.ndarray
    center_c: np.ndarray             # (3,) true box center, camera optical frame, metres
    size: np.ndarray                 # (3,) width, depth, height of the gravity-frame box, metres
    visible_min_g: np.ndarray        # (3,) box of the visible surface (noise-free ray hits), gravity frame
    visible_max_g: np.ndarray
    n_pixels: int                    # visible pixels (before noise, holes or mask dilation)
    color: tuple[int, int, int]
    occluded: bool = False           # another object hides part of it
    truncated: bool = False          # it touches the image border
    corners_c: np.ndarray | None = None  # (8, 3) corners of the gravity-frame box, camera optical frame

    @property
    def distance(self) -> float:
        """Camera-to-center distance (metres)."""
        return float(np.linalg.norm(self.center_c))


@dataclass
class AnalyticFrame:
    """One rendered frame and its ground truth."""

    depth: np.ndarray                # (H, W) float32 metres, NaN = no reading
    mask: np.ndarray                 # (H, W) uint16 instance ids, 0 = none
    rgb: np.ndarray                  # (H, W, 3) uint8
    ids: list[int]
    labels: list[str]
    camera: CameraModel
    gravity: GravityFrame            # true camera -> gravity frame (support_height = table top)
    objects: list[ObjectTruth]
    pose: CameraPose
    table_mask: np.ndarray | None = field(repr=False, default=None)   # (H, W) bool, pixels showing the table top

    def truth(self, instance_id: int) -> ObjectTruth:
        return next(o for o in self.objects if o.instance_id == instance_id)

    def instances(self):
        """The frame's instances as ``perception.base.Instance`` (empty masks skipped)."""
        from spatial_vlm_ros.perception.external import instances_from_mask
        return instances_from_mask(self.mask, self.ids, self.labels, None, shape=self.depth.shape)


def default_camera(width: int = 640, height: int = 480) -> CameraModel:
    """A RealSense-D435-like color camera: fx = fy = 615 px at 640x480 (scaled with the width)."""
    f = 615.0 * width / 640.0
    return CameraModel.from_intrinsics(f, f, width / 2.0, height / 2.0, width, height, frame_id="camera")


def _hit_box(C, d, inv, lo, hi):
    """Slab test: (t, normal axis index with sign) for rays ``C + t d``; t = inf where missed."""
    t_near = np.full(d[0].shape, -np.inf)
    t_far = np.full(d[0].shape, np.inf)
    axis = np.zeros(d[0].shape, dtype=np.int8)
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(3):
            t1 = (lo[k] - C[k]) * inv[k]
            t2 = (hi[k] - C[k]) * inv[k]
            tmin = np.minimum(t1, t2)
            better = tmin > t_near
            axis[better] = k
            t_near = np.where(better, tmin, t_near)
            t_far = np.minimum(t_far, np.maximum(t1, t2))
        hit = (t_near <= t_far) & (t_near > 0.0)
    t = np.where(hit, t_near, np.inf)
    normals = np.zeros(d[0].shape + (3,))
    for k in range(3):
        sel = axis == k
        normals[sel, k] = -np.sign(d[k][sel])
    return t, normals


def _hit_cylinder(C, d, cyl: CylinderObject):
    cx, cy = cyl.center_xy
    z0, z1, r = cyl.base_z, cyl.top_z, cyl.radius
    ox, oy = C[0] - cx, C[1] - cy
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        a = d[0] ** 2 + d[1] ** 2
        b = 2.0 * (ox * d[0] + oy * d[1])
        c = ox * ox + oy * oy - r * r
        disc = b * b - 4.0 * a * c
        t_side = (-b - np.sqrt(disc)) / (2.0 * a)
        z_side = C[2] + t_side * d[2]
        side_ok = (disc >= 0.0) & (t_side > 0.0) & (z_side >= z0) & (z_side <= z1)
        t = np.where(side_ok, t_side, np.inf)
        normals = np.zeros(d[0].shape + (3,))
        normals[..., 0] = (C[0] + t_side * d[0] - cx) / r
        normals[..., 1] = (C[1] + t_side * d[1] - cy) / r
        for zc, nz in ((z1, 1.0), (z0, -1.0)):
            tc = (zc - C[2]) / d[2]
            inside = (C[0] + tc * d[0] - cx) ** 2 + (C[1] + tc * d[1] - cy) ** 2 <= r * r
            cap = (tc > 0.0) & inside & (tc < t)
            t = np.where(cap, tc, t)
            normals[cap] = (0.0, 0.0, nz)
    return t, normals


def _hit_plane_z(C, d, z, half_extent=None):
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (z - C[2]) / d[2]
        ok = t > 0.0
        if half_extent is not None:
            ok &= (np.abs(C[0] + t * d[0]) <= half_extent[0]) & (np.abs(C[1] + t * d[1]) <= half_extent[1])
    return np.where(ok, t, np.inf)


def _rgb(color) -> tuple[int, int, int]:
    """An object's color as an (r, g, b) tuple of ints (0-255)."""
    r, g, b = (int(c) for c in color)
    return r, g, b


def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(8, 3) corners of the axis-aligned box [lo, hi]."""
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def _screen_roi(obj, R_wc, C, camera: CameraModel) -> tuple[slice, slice]:
    """Image rectangle (rows, cols) that contains the object: the projection of its world box's corners,
    padded; the whole image when the camera has distortion or a corner is behind or beside the camera."""
    full = (slice(0, camera.height), slice(0, camera.width))
    if camera.has_distortion:
        return full
    pc = (_corners(*obj.world_box()) - C) @ R_wc                   # world -> camera optical frame
    if np.any(pc[:, 2] < 0.05):
        return full
    uv = camera.project(pc)
    u0, v0 = np.floor(uv.min(axis=0)).astype(int) - 2
    u1, v1 = np.ceil(uv.max(axis=0)).astype(int) + 3
    u0, u1 = np.clip([u0, u1], 0, camera.width)
    v0, v1 = np.clip([v0, v1], 0, camera.height)
    return (slice(v0, v1), slice(u0, u1))


def _hidden_by_others(footprint, best_id: np.ndarray, k: int) -> bool:
    """True when another object covers part of object ``k``'s own surface."""
    roi, covers = footprint
    front = best_id[roi]
    return bool(np.any(covers & (front > 0) & (front != k)))


@dataclass
class _RayCast:
    """Nearest surface per pixel: distance ``t`` along the ray (optical z = 1, so depth), what was hit
    (``ids``: -1 table, -2 floor, k >= 1 objects, 0 nothing), its world normal, and per object the region
    and pixels its surface covers (hidden or not)."""

    t: np.ndarray
    ids: np.ndarray
    normals: np.ndarray
    footprints: list = field(default_factory=list)

    def take(self, t: np.ndarray, k: int, normals, roi=...) -> None:
        """Keep the hits of surface ``k`` nearer than what is there (inside ``roi``)."""
        sel = t < self.t[roi]
        self.t[roi][sel], self.ids[roi][sel] = t[sel], k
        self.normals[roi][sel] = normals if np.ndim(normals) == 1 else normals[sel]


def _ray_cast(objects, C, d, inv, R_wc, camera: CameraModel, table_size, floor_below_m) -> _RayCast:
    shape = d[0].shape
    cast = _RayCast(np.full(shape, np.inf), np.zeros(shape, dtype=np.int32), np.zeros(shape + (3,)))
    up = np.array([0.0, 0.0, 1.0])
    cast.take(_hit_plane_z(C, d, 0.0, (table_size[0] / 2, table_size[1] / 2)), -1, up)
    if floor_below_m is not None:
        cast.take(_hit_plane_z(C, d, -float(floor_below_m)), -2, up)
    for k, obj in enumerate(objects, start=1):
        roi = _screen_roi(obj, R_wc, C, camera)
        dr, ir = [dk[roi] for dk in d], [ik[roi] for ik in inv]
        if isinstance(obj, CylinderObject):
            t, normals = _hit_cylinder(C, dr, obj)
        else:
            lo, hi = obj.world_box()
            t, normals = _hit_box(C, dr, ir, lo, hi)
        cast.take(t, k, normals, roi)
        cast.footprints.append((roi, np.isfinite(t)))
    return cast


def _shaded_rgb(objects, cast: _RayCast, hit: np.ndarray) -> np.ndarray:
    """Flat albedo with Lambert shading; black where nothing was hit."""
    albedo = np.zeros(cast.t.shape + (3,))
    albedo[cast.ids == -1] = TABLE_RGB
    albedo[cast.ids == -2] = FLOOR_RGB
    for k, obj in enumerate(objects, start=1):
        albedo[cast.ids == k] = obj.color
    shade = 0.7 + 0.3 * np.clip(cast.normals @ _LIGHT, 0.0, 1.0)
    rgb = np.clip(albedo * shade[..., None], 0, 255).astype(np.uint8)
    rgb[~hit] = 0
    return rgb


def _object_truth(k: int, obj, C, R_gw, gravity: GravityFrame, ids_img, rays, depth_true, cast: _RayCast
                  ) -> ObjectTruth:
    """Ground truth of object ``k`` (1-based) in the gravity frame: its full box, and the box of its visible
    surface (NaN when no pixel shows it)."""
    lo, hi = obj.world_box()
    if isinstance(obj, CylinderObject):
        c_g = R_gw @ ((lo + hi) / 2 - C)
        half = (hi - lo) / 2
        bmin, bmax, shape = c_g - half, c_g + half, "cylinder"
    else:
        cg = (_corners(lo, hi) - C) @ R_gw.T
        bmin, bmax, shape = cg.min(axis=0), cg.max(axis=0), "box"
    rx, ry = rays
    zt = depth_true
    sel = ids_img == k
    n = int(np.count_nonzero(sel))
    if n:
        pc = np.stack([rx[sel] * zt[sel], ry[sel] * zt[sel], zt[sel]], axis=1)
        pg = gravity.to_gravity(pc)
        vmin, vmax = pg.min(axis=0), pg.max(axis=0)
    else:
        vmin = vmax = np.full(3, np.nan)
    at_border = bool(sel[0].any() or sel[-1].any() or sel[:, 0].any() or sel[:, -1].any())
    return ObjectTruth(k, obj.label, shape, bmin, bmax, gravity.to_camera((bmin + bmax) / 2),
                       bmax - bmin, vmin, vmax, n, _rgb(obj.color),
                       occluded=_hidden_by_others(cast.footprints[k - 1], cast.ids, k),
                       truncated=at_border, corners_c=gravity.to_camera(_corners(bmin, bmax)))


def _sensor_depth(depth_true: np.ndarray, rng: np.random.Generator, noise: DepthNoiseModel | None,
                  edge_holes: float, max_range_m: float) -> np.ndarray:
    """``depth_true`` with Gaussian noise ``noise.sigma(z)`` and, with probability ``edge_holes``, holes
    (NaN) at pixels next to a depth jump of more than 2 %."""
    depth = depth_true.copy()
    if noise is not None:
        valid = np.isfinite(depth)
        depth[valid] += rng.normal(0.0, 1.0, int(np.count_nonzero(valid))) * noise.sigma(depth[valid])
    if edge_holes > 0.0:
        filled = np.nan_to_num(depth_true, nan=max_range_m)
        jump = np.zeros(depth.shape, dtype=bool)
        dz_u = np.abs(np.diff(filled, axis=1)) > 0.02 * filled[:, 1:]
        dz_v = np.abs(np.diff(filled, axis=0)) > 0.02 * filled[1:, :]
        jump[:, 1:] |= dz_u
        jump[:, :-1] |= dz_u
        jump[1:, :] |= dz_v
        jump[:-1, :] |= dz_v
        depth[jump & (rng.random(depth.shape) < edge_holes)] = np.nan
    return depth


def _dilated_mask(ids_img: np.ndarray, mask_dilate_px: int) -> np.ndarray:
    """Each instance grown into the background by ``mask_dilate_px`` pixels (``ids_img`` when 0)."""
    if mask_dilate_px <= 0:
        return ids_img
    k = 2 * int(mask_dilate_px) + 1
    grown = cv2.dilate(ids_img, np.ones((k, k), np.uint8))
    return np.where(ids_img == 0, grown, ids_img).astype(np.uint16)


def render(objects, pose: CameraPose = CameraPose(), camera: CameraModel | None = None,
           table_size: tuple[float, float] = (1.2, 0.8), floor_below_m: float | None = 0.75,
           noise: DepthNoiseModel | None = None, edge_holes: float = 0.0, mask_dilate_px: int = 0,
           max_range_m: float = 10.0, seed: int = 0) -> AnalyticFrame:
    """Ray-cast ``objects`` (``BoxObject``/``CylinderObject``, ids 1..N in order) seen from ``pose``.

    ``noise``: add Gaussian depth noise with ``noise.sigma(z)``; ``edge_holes``: probability that a pixel next
    to a depth discontinuity reads invalid; ``mask_dilate_px``: grow each instance mask into the background by
    this many pixels (a segmenter's mask spilling over the object edge).
    """
    camera = camera or default_camera()
    rng = np.random.default_rng(seed)
    R_wc = pose.rotation()
    C = pose.position()
    rx, ry = camera.ray_grid()
    rx = rx.astype(np.float64)
    ry = ry.astype(np.float64)
    d = [R_wc[k, 0] * rx + R_wc[k, 1] * ry + R_wc[k, 2] for k in range(3)]  # world rays with optical z = 1
    with np.errstate(divide="ignore"):
        inv = [1.0 / dk for dk in d]
    cast = _ray_cast(objects, C, d, inv, R_wc, camera, table_size, floor_below_m)

    hit = np.isfinite(cast.t) & (cast.t <= max_range_m)
    depth_true = np.where(hit, cast.t, np.nan)
    ids_img = np.where(hit & (cast.ids > 0), cast.ids, 0).astype(np.uint16)
    rgb = _shaded_rgb(objects, cast, hit)

    # Ground truth in the true gravity frame.
    R_cw = R_wc.T
    up_c = R_cw @ np.array([0.0, 0.0, 1.0])
    gravity = GravityFrame.from_up(up_c, support_height=-float(pose.height), source="static")
    R_gw = gravity.rotation @ R_cw
    truths = [_object_truth(k, obj, C, R_gw, gravity, ids_img, (rx, ry), depth_true, cast)
              for k, obj in enumerate(objects, start=1)]

    depth = _sensor_depth(depth_true, rng, noise, edge_holes, max_range_m)
    mask = _dilated_mask(ids_img, mask_dilate_px)
    ids = list(range(1, len(objects) + 1))
    return AnalyticFrame(depth.astype(np.float32), mask, rgb, ids, [o.label for o in objects], camera, gravity,
                         truths, pose, table_mask=hit & (cast.ids == -1))


def random_tabletop(n_objects: int, seed: int = 0, area: tuple[float, float] = (0.7, 0.5),
                    gap_m: float = 0.04) -> list:
    """``n_objects`` boxes and cylinders (4-12 cm footprints, 5-25 cm tall, distinct colors) placed on the
    table without touching: footprints at least ``gap_m`` apart inside ``area`` (x, y metres) around the
    table center."""
    rng = np.random.default_rng(seed)
    palette = [(210, 35, 35), (35, 160, 50), (40, 70, 210), (230, 200, 30), (240, 130, 20), (150, 50, 180),
               (240, 240, 240), (30, 30, 30), (230, 90, 160), (40, 190, 200)]
    placed: list[tuple[float, float, float]] = []   # x, y, footprint radius
    objects: list[BoxObject | CylinderObject] = []
    tries = 0
    while len(objects) < n_objects:
        tries += 1
        if tries > 5000:
            raise ValueError(f"could not place {n_objects} objects in {area} m without overlap")
        half = rng.uniform(0.02, 0.06)
        x = rng.uniform(-area[0] / 2 + half, area[0] / 2 - half)
        y = rng.uniform(-area[1] / 2 + half, area[1] / 2 - half)
        if any(np.hypot(x - px, y - py) < half * np.sqrt(2) + pr + gap_m for px, py, pr in placed):
            continue
        placed.append((x, y, half * np.sqrt(2)))
        i = len(objects)
        color = palette[i % len(palette)]
        height = float(rng.uniform(0.05, 0.25))
        if rng.random() < 0.5:
            sx, sy = half * 2, float(rng.uniform(0.04, 2 * half))
            objects.append(BoxObject(f"box{i}", (float(x), float(y)), (sx, sy, height), color=color))
        else:
            objects.append(CylinderObject(f"cylinder{i}", (float(x), float(y)), half, height, color=color))
    return objects
