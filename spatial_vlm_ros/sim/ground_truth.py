"""Ground truth of one frame, computed from the TRUE geometry with the package's own definitions.

Each object becomes a ``TrackedObject`` built from its full mesh (all vertices for the box, dense surface
samples for the point cloud), placed in the frame's camera optical frame (x right, y down, z forward) and its
true gravity frame (``GravityFrame``: origin at the camera center, z up, x = camera x made horizontal). Every
relation is then decided by ``core.relations.evaluate`` and every quantity measured by ``core.quantities.
measure`` on those objects, so the ground truth can never drift from the package's definitions.

A relation is marked ``ambiguous`` when its margin is within ``max(ambiguity_margin_m, ambiguity_sigmas *
sigma)`` of zero, ``sigma`` being the margin's one-sigma error under the simulated sensor's noise model: a
perfect perception system could still answer either way there. The file format is documented in
``docs/ground_truth_format.md``. Lengths are metres.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh
from scipy.spatial import ConvexHull

from spatial_vlm_ros.core import quantities as Q
from spatial_vlm_ros.core import relations as R
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.observation import TrackedObject
from spatial_vlm_ros.core.scene import Scene
from spatial_vlm_ros.sim.scene_sampler import PlacedObject, TabletopScene
from spatial_vlm_ros.sim.trajectory import Intrinsics, objects_in_view, world_to_optical


@dataclass(frozen=True)
class GroundTruthConfig:
    ambiguity_margin_m: float = 0.01      # margins below this are ambiguous whatever the noise
    ambiguity_sigmas: float = 2.0         # ... and margins below this many sigmas of the noise model
    surface_spacing_m: float = 0.006      # mean spacing of the true surface samples (for gaps)
    max_surface_points: int = 8000
    min_visible_pixels: int = 50          # objects with fewer mask pixels are flagged not visible
    noise: DepthNoiseModel = field(default_factory=DepthNoiseModel)


def gravity_for_pose(pose_world_optical: np.ndarray) -> GravityFrame:
    """True gravity frame of a camera (world z up); ``support_height`` = gravity z of the table top."""
    up_c = np.asarray(pose_world_optical)[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    return GravityFrame.from_up(up_c, support_height=float(-pose_world_optical[2, 3]), source="static")


def surface_points_world(obj: PlacedObject, spacing_m: float, max_points: int) -> np.ndarray:
    """(N, 3) world-frame points on the object's true surface: every vertex plus area-uniform samples
    (deterministic per object)."""
    mesh: trimesh.Trimesh = obj.world_mesh
    n = int(np.clip(mesh.area / spacing_m ** 2, 500, max_points))
    samples, _ = trimesh.sample.sample_surface(mesh, n, seed=obj.instance_id)
    return np.vstack([mesh.vertices, samples])


def true_object(obj: PlacedObject, pose_world_optical: np.ndarray, gravity: GravityFrame,
                points_world: np.ndarray, visible_pixels: int, stamp: float) -> TrackedObject:
    """The object as a perfect perception system would hold it (full geometry, not just the visible side)."""
    t = world_to_optical(pose_world_optical)
    verts_c = obj.world_mesh.vertices @ t[:3, :3].T + t[:3, 3]
    verts_g = gravity.to_gravity(verts_c)
    lo, hi = verts_g.min(axis=0), verts_g.max(axis=0)
    center_c = gravity.to_camera((lo + hi) / 2.0)
    points_c = points_world @ t[:3, :3].T + t[:3, 3]
    return TrackedObject(id=obj.object_id, label=obj.category, score=1.0, center=center_c, size=hi - lo,
                         box_min=lo, box_max=hi, points=points_c, observations=1, first_seen=stamp,
                         last_seen=stamp, color_name=obj.item.color or "", n_pixels=int(visible_pixels))


def footprint(obj: PlacedObject, pose_world_optical: np.ndarray, gravity: GravityFrame) -> list[list[float]]:
    """The convex hull of the object's mesh seen from above: counter-clockwise gravity-frame (x, y) vertices,
    metres (what a box put on the table must stay clear of)."""
    t = world_to_optical(pose_world_optical)
    xy = gravity.to_gravity(obj.world_mesh.vertices @ t[:3, :3].T + t[:3, 3])[:, :2]
    hull = ConvexHull(xy)                         # 2-D: vertices come counter-clockwise
    return [[round(float(x), 5), round(float(y), 5)] for x, y in xy[hull.vertices]]


def relations_and_quantities(objects: list[TrackedObject], scene: Scene,
                             cfg: GroundTruthConfig) -> tuple[list[dict], list[dict]]:
    """Every relation over ordered pairs and every quantity (unordered pairs / single objects)."""
    relations, quantities = [], []
    for a in objects:
        for b in objects:
            if a.id == b.id:
                continue
            for name in R.RELATIONS:
                r = R.evaluate(name, a, b, scene, cfg.noise)
                threshold = max(cfg.ambiguity_margin_m, cfg.ambiguity_sigmas * r.sigma_m)
                relations.append({"relation": name, "subject": a.id, "reference": b.id, "holds": r.holds,
                                  "margin_m": round(r.margin_m, 6), "sigma_m": round(r.sigma_m, 6),
                                  "ambiguous": bool(abs(r.margin_m) < threshold)})
    for name, spec in Q.QUANTITIES.items():
        if spec.binary:
            pairs = [(a, b) for i, a in enumerate(objects) for b in objects[i + 1:]]
        else:
            pairs = [(a, None) for a in objects]
        for a, b in pairs:
            m = Q.measure(name, a, b, scene, cfg.noise)
            quantities.append({"quantity": name, "subject": a.id, "reference": b.id if b is not None else None,
                               "value_m": round(m.value_m, 6)})
    return relations, quantities


def _vec(v) -> list[float]:
    return [round(float(x), 6) for x in np.asarray(v).ravel()]


def frame_ground_truth(scene: TabletopScene, intr: Intrinsics, pose_world_optical: np.ndarray,
                       mask: np.ndarray, stamp_ns: int, frame_index: int = 0,
                       cfg: GroundTruthConfig | None = None, points_cache: dict | None = None,
                       frame_id: str = "camera_color_optical_frame") -> dict:
    """JSON-ready ground truth of one frame (see docs/ground_truth_format.md).

    ``mask`` is the noise-free instance mask of the frame (visible pixel counts). ``points_cache`` may hold
    surface samples per object id across the frames of one scene (they are in world coordinates).
    """
    cfg = cfg or GroundTruthConfig()
    cache = points_cache if points_cache is not None else {}
    gravity = gravity_for_pose(pose_world_optical)
    stamp = stamp_ns * 1e-9
    counts = np.bincount(mask.ravel(), minlength=max((o.instance_id for o in scene.objects), default=0) + 1)
    in_view = objects_in_view(scene, intr, pose_world_optical, margin_px=0.0)
    objects, entries = [], []
    for obj, inside in zip(scene.objects, in_view):
        if obj.object_id not in cache:
            cache[obj.object_id] = surface_points_world(obj, cfg.surface_spacing_m, cfg.max_surface_points)
        pixels = int(counts[obj.instance_id])
        t = true_object(obj, pose_world_optical, gravity, cache[obj.object_id], pixels, stamp)
        objects.append(t)
        entries.append({
            "id": t.id, "label": t.label, "instance_id": obj.instance_id, "color": obj.item.color,
            "center": _vec(t.center), "size": _vec(t.size), "box_min": _vec(t.box_min), "box_max": _vec(t.box_max),
            "center_gravity": _vec(gravity.to_gravity(t.center)), "visible_pixels": pixels,
            "visible": pixels >= cfg.min_visible_pixels, "in_view": bool(inside),
            "supported_by": obj.supported_by, "footprint": footprint(obj, pose_world_optical, gravity),
        })
    snapshot = Scene(tuple(objects), gravity, stamp)
    relations, quantities = relations_and_quantities(objects, snapshot, cfg)
    return {
        "stamp_ns": int(stamp_ns), "stamp": {"sec": int(stamp_ns // 10**9), "nanosec": int(stamp_ns % 10**9)},
        "scene_id": scene.scene_id, "frame_index": int(frame_index), "frame_id": frame_id,
        "camera_info": intr.camera_info(frame_id),
        "camera_pose_world": [_vec(row) for row in pose_world_optical],
        "gravity": {"rotation": [_vec(row) for row in gravity.rotation], "up": _vec(gravity.up),
                    "support_height": round(float(gravity.support_height), 6)},
        "noise_model": {"sigma0": cfg.noise.sigma0, "k": cfg.noise.k},
        "ambiguity": {"margin_m": cfg.ambiguity_margin_m, "sigmas": cfg.ambiguity_sigmas},
        "objects": entries, "relations": relations, "quantities": quantities,
    }


# ----------------------------------------------------------------------------------------------------------
# ground truth supplied by users: boxes only

def _box_surface(lo: np.ndarray, hi: np.ndarray, spacing: float) -> np.ndarray:
    """Points (gravity frame) on the faces of an axis-aligned box."""
    box = trimesh.creation.box(hi - lo)
    box.apply_translation((lo + hi) / 2.0)
    n = int(np.clip(box.area / spacing ** 2, 200, 20000))
    samples, _ = trimesh.sample.sample_surface(box, n, seed=0)
    return np.vstack([box.vertices, samples])


def objects_from_entries(frame: dict, cfg: GroundTruthConfig | None = None) -> tuple[list[TrackedObject], Scene]:
    """TrackedObjects from a frame's ``objects`` entries (box + center; the point cloud is the box surface)."""
    cfg = cfg or GroundTruthConfig()
    gravity = GravityFrame(np.asarray(frame["gravity"]["rotation"], dtype=np.float64),
                           frame["gravity"].get("support_height"), "static")
    stamp = frame.get("stamp_ns", 0) * 1e-9
    objects = []
    for e in frame["objects"]:
        lo, hi = np.asarray(e["box_min"], float), np.asarray(e["box_max"], float)
        points_c = gravity.to_camera(_box_surface(lo, hi, cfg.surface_spacing_m))
        objects.append(TrackedObject(id=e["id"], label=e["label"], score=1.0,
                                     center=np.asarray(e.get("center", gravity.to_camera((lo + hi) / 2)), float),
                                     size=hi - lo, box_min=lo, box_max=hi, points=points_c, first_seen=stamp,
                                     last_seen=stamp, color_name=e.get("color") or "",
                                     n_pixels=int(e.get("visible_pixels", 0))))
    return objects, Scene(tuple(objects), gravity, stamp)


def complete_frame(frame: dict, cfg: GroundTruthConfig | None = None) -> dict:
    """Fill in ``relations`` and/or ``quantities`` of a frame that only has ``objects`` boxes (ground truth
    made for a bag recorded elsewhere). The objects' point clouds are taken as their box surfaces, so ``gap``
    and ``next_to`` are box-based there. Returns a new dict."""
    cfg = cfg or GroundTruthConfig()
    out = dict(frame)
    if "relations" in frame and "quantities" in frame:
        return out
    objects, scene = objects_from_entries(frame, cfg)
    relations, quantities = relations_and_quantities(objects, scene, cfg)
    out.setdefault("relations", relations)
    out.setdefault("quantities", quantities)
    return out
