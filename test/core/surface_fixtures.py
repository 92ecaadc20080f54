"""A tabletop with a measured table surface for the scene-query tests (find, placement, thresholds, support).

Gravity frame of a camera pitched 35 degrees down, the table top 50 cm under the camera (``TABLE_Z``) spanning
``TABLE_X`` x ``TABLE_Y``; its depth samples lie on a 1 cm grid half a cell in from the edges (as a sensor's
would: the outermost sample is never exactly on the edge), left out under the objects' footprints, and pass
through ``gravity_frame.sample_surfaces`` as the gravity estimator's do.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from reasoning_fixtures import TABLE_Z, make_scene, on_table, pitched_gravity

from spatial_vlm_ros.core.gravity_frame import GravityFrame, sample_surfaces
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.spatial_queries import SpatialQueries

TABLE_X = (-0.6, 0.6)
TABLE_Y = (0.5, 1.4)
STEP = 0.01


def surface_points(gravity: GravityFrame, x=TABLE_X, y=TABLE_Y, z=TABLE_Z, holes=()) -> np.ndarray:
    """(N, 3) camera-frame samples of a horizontal rectangle at gravity height ``z``, none inside ``holes``
    ((lo_xy, hi_xy) rectangles)."""
    xs = np.arange(x[0] + STEP / 2, x[1], STEP)
    ys = np.arange(y[0] + STEP / 2, y[1], STEP)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    xy = np.column_stack([gx.ravel(), gy.ravel()])
    keep = np.ones(len(xy), bool)
    for lo, hi in holes:
        keep &= ~np.all((xy >= np.asarray(lo)) & (xy <= np.asarray(hi)), axis=1)
    xy = xy[keep]
    return gravity.to_camera(np.column_stack([xy, np.full(len(xy), z)]))


def with_table(gravity: GravityFrame, objects=(), extra_points=None, heights=(TABLE_Z,)) -> GravityFrame:
    """``gravity`` with the table's samples measured (and ``extra_points``, e.g. a floor, at ``heights``)."""
    holes = [(o.box_min[:2], o.box_max[:2]) for o in objects]
    pts = surface_points(gravity, holes=holes)
    if extra_points is not None:
        pts = np.concatenate([pts, extra_points])
    return replace(gravity, surfaces=sample_surfaces(pts, gravity.up, heights, 0.01))


def tabletop(pitch_deg: float = 35.0):
    """(objects, gravity with the table) of the known tabletop:

    mug (-0.20, 0.70) 8 cm and bowl (0.10, 0.70) 16 cm: 18 cm of free table between their footprints, 30 cm
    apart; box (-0.30, 1.20) 30 x 25 x 20 cm with a lemon on it; bottle (0.40, 1.10) 25 cm tall; can
    (0.45, 0.535) 12 cm tall, its center 3.5 cm from the table's near edge.
    """
    g0 = pitched_gravity(pitch_deg)
    objects = [
        on_table("mug_1", -0.20, 0.70, (0.08, 0.08, 0.10), g0, color_name="red"),
        on_table("bowl_1", 0.10, 0.70, (0.16, 0.16, 0.07), g0),
        on_table("box_1", -0.30, 1.20, (0.30, 0.25, 0.20), g0),
        on_table("lemon_1", -0.30, 1.20, (0.06, 0.06, 0.06), g0, bottom=TABLE_Z + 0.20, color_name="yellow"),
        on_table("bottle_1", 0.40, 1.10, (0.07, 0.07, 0.25), g0),
        on_table("can_1", 0.45, 0.535, (0.066, 0.066, 0.12), g0),
    ]
    return objects, with_table(g0, objects)       # the same rotation: the objects' data stay valid


def tabletop_scene(pitch_deg: float = 35.0):
    objects, g = tabletop(pitch_deg)
    return make_scene(objects, g)


class FixedMemory:
    """What ``SpatialQueries`` reads: ``snapshot()`` of one scene."""

    def __init__(self, scene):
        self.scene = scene

    def snapshot(self):
        return self.scene


def tabletop_queries(pitch_deg: float = 35.0) -> SpatialQueries:
    return SpatialQueries(FixedMemory(tabletop_scene(pitch_deg)), DepthNoiseModel())

