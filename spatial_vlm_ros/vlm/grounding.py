"""Grounding text: the scene memory's measured geometry, written compactly into the VLM prompt.

A VLM asked "how far is the mug from the bowl?" otherwise guesses depth from pixels (the What's Up and
SpatialVLM failure modes). :func:`scene_facts` writes what the robot measured, in this format::

    Measured scene (depth camera; metres; camera frame x right, y down, z forward; size = width x depth
    x height, gravity-aligned; base = bottom above the support surface):
    - mug_1 "red mug": center (0.12, 0.05, 0.80), size 0.08x0.08x0.10, range 0.81, base 0.00
    - bowl_1 "bowl": center (-0.20, 0.07, 0.95), size 0.15x0.15x0.06, range 0.97, base 0.00
    Distances between centers: mug_1-bowl_1 0.35

``center`` is the 3D box center in the camera optical frame, ``range`` its distance from the camera,
``base`` (only when the support surface is known) the height of the box bottom above that surface, and
the distances are Euclidean distances between centers. At most ``max_objects`` objects are listed (the
nearest to the camera); a last line says how many were left out. All numbers are metres with
``decimals`` decimals.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.distance import pdist, squareform

from spatial_vlm_ros.core.errors import InputError

HEADER = ("Measured scene (depth camera; metres; camera frame x right, y down, z forward; "
          "size = width x depth x height, gravity-aligned{base}):")


def _objects_and_gravity(scene_or_objects, gravity):
    objects = getattr(scene_or_objects, "objects", scene_or_objects)
    if gravity is None:
        gravity = getattr(scene_or_objects, "gravity", None)
    return list(objects), gravity


def scene_facts(scene_or_objects, gravity=None, max_objects: int = 8, decimals: int = 2) -> str:
    """Compact prompt text for a ``Scene`` snapshot or a list of ``TrackedObject`` (see module doc).

    ``gravity`` (a ``GravityFrame``) overrides the scene's; with a known ``support_height`` each object
    gets its ``base`` height. Returns "" when there are no objects.
    """
    objects, gravity = _objects_and_gravity(scene_or_objects, gravity)
    if max_objects < 1:
        raise InputError("max_objects must be at least 1")
    if not objects:
        return ""
    centers = np.array([np.asarray(o.center, dtype=np.float64).reshape(3) for o in objects])
    if not np.all(np.isfinite(centers)):
        raise InputError("an object center is not finite")
    ranges = np.linalg.norm(centers, axis=1)
    keep = np.sort(np.argsort(ranges, kind="stable")[:max_objects])
    support = None if gravity is None else gravity.support_height
    f = f"{{:.{decimals}f}}"

    def vec(v, sep):
        return sep.join(f.format(x) for x in np.asarray(v, dtype=np.float64))

    lines = [HEADER.format(base="; base = bottom above the support surface" if support is not None else "")]
    for i in keep:
        o = objects[i]
        line = (f'- {o.id} "{o.label}": center ({vec(centers[i], ", ")}), size {vec(o.size, "x")}, '
                f"range {f.format(ranges[i])}")
        if support is not None:
            line += f", base {f.format(float(np.asarray(o.box_min)[2]) - support)}"
        lines.append(line)
    if len(keep) > 1:
        dist = squareform(pdist(centers[keep]))
        pairs = [f"{objects[a].id}-{objects[b].id} {f.format(dist[i, j])}"
                 for i, a in enumerate(keep) for j, b in enumerate(keep) if j > i]
        lines.append("Distances between centers: " + ", ".join(pairs))
    if len(keep) < len(objects):
        lines.append(f"({len(objects) - len(keep)} farther objects not listed)")
    return "\n".join(lines)


def box_facts(boxes: Sequence, depth: np.ndarray | None = None, decimals: int = 2) -> str:
    """Prompt lines for 2D object boxes (``ObjectBox``), with each box's median valid depth (metres).

    Depth readings that are NaN, infinite or <= 0 are invalid. Boxes are clipped to the image.
    """
    lines = ["Detected objects (pixel box u_min, v_min, u_max, v_max" +
             ("; median depth in metres):" if depth is not None else "):")]
    d = None if depth is None else np.asarray(depth, dtype=np.float64)
    for box in boxes:
        u0, v0, u1, v1 = (int(x) for x in box.bbox)
        if u1 < u0 or v1 < v0:
            raise InputError(f"box of {box.label!r} has max < min: {box.bbox}")
        line = f"- {box.label}: [{u0}, {v0}, {u1}, {v1}]"
        if d is not None:
            patch = d[max(v0, 0):v1 + 1, max(u0, 0):u1 + 1]
            valid = patch[np.isfinite(patch) & (patch > 0)]
            line += f", depth {np.median(valid):.{decimals}f}" if valid.size else ", no valid depth"
        lines.append(line)
    return "\n".join(lines)
