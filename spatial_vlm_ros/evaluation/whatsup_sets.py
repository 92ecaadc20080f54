"""What's-Up-style controlled image sets from simulated tabletop scenes.

A set shows the same two objects (a subject and a reference) in four images that differ only in their
relation, like the What's Up benchmark's subsets: kind ``"on_under"`` = left of / right of / on / under
(subset A), kind ``"front_behind"`` = left of / right of / in front of / behind (subset B). Each image comes
with the four captions "The <subject> is <preposition> the <reference>." and the index of the true one.

Two renderers, same world (metres, z up, table top at z = 0, camera looking along world +y, so world +x
is image right and -y is towards the camera): "left of" moves the subject to -x, "in front of" to -y, and
"on"/"under" stack one object on the other, centered on the table.
- ``renderer="pyrender"`` (default): :mod:`spatial_vlm_ros.sim.renderer` draws household meshes from
  :func:`spatial_vlm_ros.sim.meshes.catalogue` (mugs, cans, boxes, bowls...; stacks need objects with a flat
  top, i.e. boxes and blocks) on a textured table with random lights;
- ``renderer="analytic"``: :mod:`spatial_vlm_ros.sim.analytic` ray-casts colored boxes and cylinders (no GL,
  fast; used by the unit tests).
The object pair, sizes, environment and camera jitter are drawn from ``seed``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.evaluation.whatsup import WhatsUpExample

SET_KINDS = {
    "on_under": ("left of", "right of", "on", "under"),
    "front_behind": ("left of", "right of", "in front of", "behind"),
}
PHRASES = {"left of": "to the left of", "right of": "to the right of", "on": "on", "under": "under",
           "in front of": "in front of", "behind": "behind"}
COLORS = {"red": (210, 35, 35), "green": (35, 160, 50), "blue": (40, 70, 210), "yellow": (230, 200, 30),
           "orange": (240, 130, 20), "purple": (150, 50, 180)}
SHAPES = ("box", "cylinder")
MAX_REDRAWS = 20          # a set in which an object is hidden (e.g. fully behind the other) is drawn again


def caption(subject: str, preposition: str, reference: str) -> str:
    """"The red box is to the left of the blue cylinder." """
    if preposition not in PHRASES:
        raise InputError(f"unknown preposition {preposition!r}")
    return f"The {subject} is {PHRASES[preposition]} the {reference}."


@dataclass(frozen=True)
class ObjectSpec:
    """A simulated object: caption noun phrase, shape, footprint and height (metres), color."""

    name: str                      # e.g. "red box"
    shape: str                     # "box" or "cylinder"
    footprint: float               # box side or cylinder diameter, metres
    height: float                  # metres
    color: tuple[int, int, int]

    def place(self, x: float, y: float, base_z: float = 0.0):
        """The ``sim.analytic`` object at world ``(x, y)`` with its bottom at ``base_z`` (metres)."""
        from spatial_vlm_ros.sim.analytic import BoxObject, CylinderObject

        if self.shape == "box":
            return BoxObject(self.name, (x, y), (self.footprint, self.footprint, self.height), base_z, self.color)
        return CylinderObject(self.name, (x, y), self.footprint / 2, self.height, base_z, self.color)


def positions(preposition: str, subject_radius: float, reference_radius: float, subject_top: float,
              reference_top: float, gap_m: float = 0.06) -> tuple[tuple, tuple]:
    """World ``(x, y, base_z)`` of the subject and the reference realising ``subject <preposition> reference``.

    Radii are footprint radii and ``*_top`` the heights of the objects' flat tops above their bases
    (metres). Side by side, the footprints are ``gap_m`` apart along world x (left/right) or y (in front/
    behind); "on" puts the subject on the reference's top, "under" the reference on the subject's top.
    """
    half = (subject_radius + reference_radius + gap_m) / 2
    table = {
        "left of": ((-half, 0.0, 0.0), (half, 0.0, 0.0)),
        "right of": ((half, 0.0, 0.0), (-half, 0.0, 0.0)),
        "in front of": ((0.0, -half, 0.0), (0.0, half, 0.0)),
        "behind": ((0.0, half, 0.0), (0.0, -half, 0.0)),
        "on": ((0.0, 0.0, reference_top), (0.0, 0.0, 0.0)),
        "under": ((0.0, 0.0, 0.0), (0.0, 0.0, subject_top)),
    }
    if preposition not in table:
        raise InputError(f"unknown preposition {preposition!r}")
    return table[preposition]


def layout(preposition: str, subject: ObjectSpec, reference: ObjectSpec) -> list:
    """The two ``sim.analytic`` objects (subject first) realising ``subject <preposition> reference``."""
    s, r = positions(preposition, subject.footprint / 2, reference.footprint / 2, subject.height,
                     reference.height)
    return [subject.place(*s), reference.place(*r)]


def _random_pair(rng: np.random.Generator) -> tuple[ObjectSpec, ObjectSpec]:
    names = rng.choice(list(COLORS), size=2, replace=False)
    specs = []
    for color in names:
        shape = str(rng.choice(SHAPES))
        specs.append(ObjectSpec(f"{color} {shape}", shape, float(rng.uniform(0.07, 0.11)),
                                float(rng.uniform(0.06, 0.10)), COLORS[color]))
    return specs[0], specs[1]


def generate_sets(n_sets: int, kind: str = "on_under", seed: int = 0, width: int = 320, height: int = 240,
                  with_depth: bool = False, renderer: str = "pyrender") -> list[WhatsUpExample]:
    """``n_sets`` sets of four examples each (see the module doc). Deterministic for a given ``seed``.

    Images are ``width`` x ``height`` RGB; a set in which either object covers less than 0.2 % of an image
    (hidden behind the other) is drawn again. ``meta`` holds the object names, and the instance mask
    (``meta["mask"]``: 1 = subject, 2 = reference); with ``with_depth`` also the depth (metres).
    """
    if kind not in SET_KINDS:
        raise InputError(f"unknown set kind {kind!r}; known: {sorted(SET_KINDS)}")
    if n_sets < 1:
        raise InputError("n_sets must be at least 1")
    if renderer not in ("pyrender", "analytic"):
        raise InputError(f"unknown renderer {renderer!r}; use pyrender or analytic")
    rng = np.random.default_rng(seed)
    draw = _analytic_set if renderer == "analytic" else _pyrender_set
    examples = []
    context = _PyrenderContext(width, height) if renderer == "pyrender" else None
    try:
        for s in range(n_sets):
            for _ in range(MAX_REDRAWS):
                frames = list(draw(rng, kind, width, height, context))
                if all(_both_visible(f.mask, width * height) for f, _, _ in frames):
                    break
            else:
                raise InputError(f"could not draw a set whose objects stay visible in {MAX_REDRAWS} tries")
            for frame, prep, names in frames:
                meta = {"subject": names[0], "reference": names[1], "kind": kind, "mask": frame.mask,
                        "renderer": renderer}
                if with_depth:
                    meta["depth"] = frame.depth
                captions = tuple(caption(names[0], p, names[1]) for p in SET_KINDS[kind])
                examples.append(WhatsUpExample(frame.rgb, captions, SET_KINDS[kind].index(prep), prep,
                                               f"{kind}_{s:04d}", meta))
    finally:
        if context is not None:
            context.close()
    return examples


def _both_visible(mask: np.ndarray, n_pixels: int) -> bool:
    """Subject (id 1) and reference (id 2) each cover at least 0.2 % of the image (>= 20 pixels)."""
    need = max(20, int(0.002 * n_pixels))
    return all(int(np.count_nonzero(mask == k)) >= need for k in (1, 2))


def _analytic_set(rng, kind, width, height, _context):
    from spatial_vlm_ros.sim.analytic import CameraPose, default_camera, render

    subject, reference = _random_pair(rng)
    pose = CameraPose(height=float(rng.uniform(0.35, 0.5)), pitch_deg=float(rng.uniform(22, 32)),
                      distance=float(rng.uniform(0.6, 0.75)), yaw_deg=float(rng.uniform(-5, 5)))
    camera = default_camera(width, height)
    for prep in SET_KINDS[kind]:
        frame = render(layout(prep, subject, reference), pose=pose, camera=camera, floor_below_m=0.75)
        yield frame, prep, (subject.name, reference.name)


class _PyrenderContext:
    """One offscreen renderer and the mesh catalogue, shared by the sets of one call."""

    def __init__(self, width: int, height: int):
        from spatial_vlm_ros.sim.meshes import catalogue
        from spatial_vlm_ros.sim.renderer import Renderer

        self.renderer = Renderer(width, height)
        self.assets = catalogue()

    def close(self) -> None:
        self.renderer.close()


def _yaw_pose(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    pose = np.eye(4)
    pose[:2, :2] = [[c, -s], [s, c]]
    pose[:3, 3] = (x, y, z)
    return pose


def _pyrender_pair(rng, context, stacking: bool):
    """Two mesh objects with different names; for stacking both need a flat top and must be stackable."""
    assets = [a for a in context.assets if a.stackable] if stacking else list(context.assets)
    for _ in range(200):
        items = [assets[int(i)].make(rng) for i in rng.choice(len(assets), size=2)]
        names = [f"{it.color} {it.category}" if it.color else it.category for it in items]
        if names[0] != names[1] and (not stacking or all(it.support_top is not None for it in items)):
            return items, names
    raise InputError("the mesh catalogue has no pair of stackable objects with flat tops")


def _pyrender_set(rng, kind, width, height, context):
    from spatial_vlm_ros.sim.scene_sampler import PlacedObject, TabletopScene, sample_environment, sample_lights
    from spatial_vlm_ros.sim.trajectory import Intrinsics, look_at

    items, names = _pyrender_pair(rng, context, stacking=kind == "on_under")
    surfaces, table_half, table_height = sample_environment(rng)
    lights, ambient = sample_lights(rng)
    yaws = rng.uniform(0, 2 * np.pi, size=2)
    fx = width / (2.0 * np.tan(np.radians(60.0) / 2.0))
    intr = Intrinsics(width, height, fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)
    eye = np.array([rng.uniform(-0.05, 0.05), -rng.uniform(0.55, 0.7), rng.uniform(0.35, 0.45)])
    pose = look_at(eye, np.array([0.0, 0.0, 0.06]))
    tops = [it.support_top.height if it.support_top is not None else it.height for it in items]
    for prep in SET_KINDS[kind]:
        placed = positions(prep, items[0].footprint_radius, items[1].footprint_radius, tops[0], tops[1])
        objects = []
        for k, (item, (x, y, z), yaw) in enumerate(zip(items, placed, yaws), start=1):
            supported_by = "table" if z == 0.0 else f"object_{3 - k}"
            objects.append(PlacedObject(k, f"object_{k}", item, _yaw_pose(x, y, z, yaw), supported_by))
        scene = TabletopScene(f"whatsup_{prep}", objects, surfaces, lights, ambient, table_half, table_height)
        yield context.renderer.render(scene, intr, pose), prep, tuple(names)
