"""Random, physically plausible tabletop layouts.

World frame: metres, z up, the table top is the plane z = 0 and the table's center is the origin; the
floor lies ``table_height`` below and a wall stands on the far side (+y). Cameras look roughly along +y
(see ``trajectory``), so the wall is the background.

Plausibility: every object stands upright (its own z up) with a random yaw and rests either on the table
(base at z = 0) or, stacked, on the flat top of a supporting object (box, book, block, plate) with its center
of mass over that top. Table-level footprints (circles around each object or stack, plus a clearance) never
overlap, and a stacked object sits exactly at its support's top height, so no two meshes interpenetrate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.sim.meshes import MeshAsset, SimObjectMesh, catalogue, load_texture, texture_paths

TABLE_TEXTURES = ("light-wood", "dark-wood", "gray-woodgrain", "wood-varnished-panels", "blue-wood",
                  "red-wood", "green-wood", "gray-felt", "table", "white-plaster")
FLOOR_TEXTURES = ("light-gray-floor-tile", "wood-tiles", "gray-plaster", "dark-wood", "light-wood",
                  "checker_grid")
SUPPORT_CATEGORIES = ("box", "book", "block", "plate")      # flat tops other objects can rest on
WALL_TEXTURES = ("white-plaster", "cream-plaster", "light-gray-plaster", "pink-plaster", "yellow-plaster",
                 "white-bricks", "gray-plaster")


@dataclass
class PlacedObject:
    """An object in the world: mesh in its own frame plus the pose that puts it on the table."""

    instance_id: int              # id in the instance mask (1..n; 0 = background)
    object_id: str                # ground-truth id, e.g. "mug_1"
    item: SimObjectMesh
    pose: np.ndarray              # (4, 4) world <- object
    supported_by: str = "table"   # "table" or the object_id it rests on
    _world: trimesh.Trimesh | None = field(default=None, repr=False)

    @property
    def category(self) -> str:
        return self.item.category

    @property
    def world_mesh(self) -> trimesh.Trimesh:
        """The mesh in world coordinates (metres), computed once."""
        if self._world is None:
            m = self.item.mesh.copy()
            m.apply_transform(self.pose)
            self._world = m
        return self._world

    def describe(self) -> dict:
        return {"id": self.object_id, "instance_id": self.instance_id, "label": self.category,
                "color": self.item.color, "source": self.item.source, "supported_by": self.supported_by,
                "pose_world": np.round(self.pose, 6).tolist(),
                "extents_object": np.round(self.item.mesh.extents, 6).tolist()}


@dataclass
class Surface:
    """A textured environment surface (table, floor, wall) in world coordinates."""

    name: str
    mesh: trimesh.Trimesh
    texture: str


@dataclass
class Light:
    kind: str                     # "directional" | "point"
    color: tuple[float, float, float]
    intensity: float              # pyrender units (W/m^2 for directional, W for point)
    pose: np.ndarray              # (4, 4) world <- light (lights shine along their -z)


@dataclass
class TabletopScene:
    """One static scene: objects, environment surfaces and lights (world frame, metres)."""

    scene_id: str
    objects: list[PlacedObject]
    surfaces: list[Surface]
    lights: list[Light]
    ambient: float
    table_half_extents: tuple[float, float]
    table_height: float           # floor to table top, metres
    seed: int | None = None

    def by_id(self, object_id: str) -> PlacedObject:
        for o in self.objects:
            if o.object_id == object_id:
                return o
        raise KeyError(object_id)

    def describe(self) -> dict:
        return {"scene_id": self.scene_id, "seed": self.seed,
                "table_half_extents": list(self.table_half_extents), "table_height": self.table_height,
                "surfaces": [{"name": s.name, "texture": s.texture} for s in self.surfaces],
                "lights": [{"kind": li.kind, "color": list(li.color), "intensity": li.intensity,
                            "pose_world": np.round(li.pose, 6).tolist()} for li in self.lights],
                "ambient": self.ambient, "objects": [o.describe() for o in self.objects]}


@dataclass(frozen=True)
class SamplerConfig:
    """Ranges of the random layout (metres unless stated)."""

    min_objects: int = 3
    max_objects: int = 6
    stack_probability: float = 0.6        # chance that a scene has at least one stack
    second_stack_probability: float = 0.25
    unique_labels: bool = True            # one object per category, so labels name objects uniquely
    region_half_x: float = 0.32           # objects are placed within this rectangle around the table center
    region_half_y: float = 0.22
    clearance: tuple[float, float] = (0.015, 0.06)   # gap between neighbouring footprints
    max_attempts: int = 200


# ----------------------------------------------------------------------------------------------------------
def _yaw_pose(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    pose = np.eye(4)
    pose[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
    pose[:3, 3] = [x, y, z]
    return pose


def _textured_box(extents, center, tile_m: float) -> trimesh.Trimesh:
    """Box (metres) with unmerged faces; ``metadata["uv"]`` repeats a texture every ``tile_m`` metres."""
    box = trimesh.creation.box(extents)
    corners = box.vertices[box.faces].reshape(-1, 3)
    mesh = trimesh.Trimesh(corners, np.arange(len(corners)).reshape(-1, 3), process=False)
    axis = np.argmax(np.abs(box.face_normals), axis=1).repeat(3)[:, None]   # each corner's face normal axis
    uv = np.where(axis == 2, corners[:, [0, 1]], np.where(axis == 1, corners[:, [0, 2]], corners[:, [1, 2]]))
    mesh.metadata["uv"] = uv / tile_m
    mesh.apply_translation(center)
    return mesh


def _pick_texture(rng: np.random.Generator, wanted: tuple[str, ...]) -> str | None:
    available = [t for t in wanted if t in texture_paths()]
    return str(rng.choice(available)) if available else None


def _surface(name: str, mesh: trimesh.Trimesh, texture: str | None, fallback_rgb: tuple[int, int, int]) -> Surface:
    """Dress a ``_textured_box`` mesh with ``texture`` (or a plain color when no texture is installed)."""
    uv = mesh.metadata.pop("uv")
    if texture is not None:
        mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=load_texture(str(texture_paths()[texture])))
    else:
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.array([*fallback_rgb, 255], np.uint8))
    return Surface(name, mesh, texture or "plain")


def sample_environment(rng: np.random.Generator) -> tuple[list[Surface], tuple[float, float], float]:
    """Table (top at z = 0, on four legs), floor and a back wall at +y.

    Returns (surfaces, table half extents (x, y), table height above the floor), metres."""
    hx, hy = rng.uniform(0.55, 0.9), rng.uniform(0.4, 0.6)
    height, thickness = rng.uniform(0.70, 0.78), 0.04
    table_tex = _pick_texture(rng, TABLE_TEXTURES)
    table = _surface("table", _textured_box([2 * hx, 2 * hy, thickness], [0, 0, -thickness / 2],
                                            rng.uniform(0.3, 0.8)), table_tex, (150, 110, 70))
    legs = [_textured_box([0.05, 0.05, height - thickness],
                          [sx * (hx - 0.06), sy * (hy - 0.06), -thickness - (height - thickness) / 2], 0.5)
            for sx in (-1, 1) for sy in (-1, 1)]
    leg_mesh = trimesh.util.concatenate(legs)
    leg_mesh.metadata["uv"] = np.concatenate([m.metadata["uv"] for m in legs])
    floor = _surface("floor", _textured_box([8.0, 8.0, 0.02], [0, 0, -height - 0.01], rng.uniform(0.4, 1.0)),
                     _pick_texture(rng, FLOOR_TEXTURES), (110, 110, 105))
    wall_y = hy + rng.uniform(0.4, 1.5)
    wall = _surface("wall", _textured_box([8.0, 0.05, 4.0], [rng.uniform(-0.5, 0.5), wall_y + 0.025,
                                                                -height + 2.0], rng.uniform(0.5, 1.5)),
                    _pick_texture(rng, WALL_TEXTURES), (220, 220, 215))
    return [table, _surface("table_legs", leg_mesh, table_tex, (150, 110, 70)), floor, wall], (hx, hy), height


def sample_lights(rng: np.random.Generator) -> tuple[list[Light], float]:
    """One directional 'ceiling' light within 40 degrees of vertical, 1-2 point lights; ambient level."""
    lights = []
    tilt, azim = np.radians(rng.uniform(0, 40)), rng.uniform(0, 2 * np.pi)
    direction = np.array([np.sin(tilt) * np.cos(azim), np.sin(tilt) * np.sin(azim), -np.cos(tilt)])
    lights.append(Light("directional", _light_color(rng), float(rng.uniform(1.5, 3.5)),
                        _pose_looking_along(direction, np.zeros(3))))
    for _ in range(int(rng.integers(1, 3))):
        pos = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-1.5, 0.5), rng.uniform(0.8, 1.6)])
        lights.append(Light("point", _light_color(rng), float(rng.uniform(2.0, 8.0)),
                            _pose_looking_along(-pos, pos)))
    return lights, float(rng.uniform(0.1, 0.3))


def _light_color(rng: np.random.Generator) -> tuple[float, float, float]:
    warm = rng.uniform(-0.08, 0.08)
    return (float(1.0 + warm), 1.0, float(1.0 - warm))


def _pose_looking_along(direction: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Pose whose -z axis points along ``direction`` (pyrender lights shine along -z)."""
    z = -direction / np.linalg.norm(direction)
    x = np.cross([0.0, 1.0, 0.0], z)
    if np.linalg.norm(x) < 1e-6:
        x = np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, np.cross(z, x), z, position
    return pose


# ----------------------------------------------------------------------------------------------------------
@dataclass
class _Group:
    """One table-level footprint: a base object and optionally one object stacked on it."""

    base: SimObjectMesh
    top: SimObjectMesh | None = None
    top_offset: np.ndarray = field(default_factory=lambda: np.zeros(2))   # in the base's frame
    top_yaw: float = 0.0

    @property
    def radius(self) -> float:
        r = self.base.footprint_radius
        if self.top is not None:
            r = max(r, float(np.linalg.norm(self.top_offset)) + self.top.footprint_radius)
        return r


def _stack_offset(support: SimObjectMesh, top: SimObjectMesh, rng: np.random.Generator) -> np.ndarray | None:
    """Offset (m, support frame) that keeps ``top`` on ``support``'s flat top, or None if it does not fit.

    Round tops (plates, with a rim) must hold the whole footprint of ``top``; rectangular tops need the center
    of ``top`` well inside (overhang allowed up to 30 % of the top's radius past the edge)."""
    st, r = support.support_top, top.footprint_radius
    if st is None:
        return None
    if st.round:
        room = st.half_x - r
        if room < 0:
            return None
        rho, phi = room * np.sqrt(rng.uniform(0, 1)), rng.uniform(0, 2 * np.pi)
        return np.array([rho * np.cos(phi), rho * np.sin(phi)])
    if r > 1.3 * min(st.half_x, st.half_y) or r < 1e-3:
        return None
    room = np.maximum(np.array([st.half_x, st.half_y]) - r, 0.0) * 0.8
    return rng.uniform(-room, room)


def _draw_groups(rng: np.random.Generator, assets: list[MeshAsset], cfg: SamplerConfig) -> list[_Group]:
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    by_cat: dict[str, list[MeshAsset]] = {}
    for a in assets:
        by_cat.setdefault(a.category, []).append(a)
    cats = list(by_cat)
    if cfg.unique_labels and cfg.min_objects > len(cats):
        raise InputError(f"{cfg.min_objects} objects with unique labels requested but only {len(cats)} "
                         "categories are installed")
    if cfg.unique_labels:
        n = min(n, len(cats))
    order = [str(c) for c in (rng.permutation(cats) if cfg.unique_labels else rng.choice(cats, size=n))]

    def make(cat: str) -> SimObjectMesh:
        options = by_cat[cat]
        return options[int(rng.integers(len(options)))].make(rng)

    n_stacks = 0
    if rng.uniform() < cfg.stack_probability:
        n_stacks = 2 if (n >= 4 and rng.uniform() < cfg.second_stack_probability) else 1
    order = order[:n]
    groups: list[_Group] = []
    free = list(range(n))                                  # indices into ``order`` not placed yet
    stackable = {a.category for a in assets if a.stackable}
    for _ in range(n_stacks):
        supports = [i for i in free if order[i] in SUPPORT_CATEGORIES]
        if not supports:
            break
        base = supports[0]
        support = make(order[base])
        for t in [i for i in free if i != base and order[i] in stackable]:
            top = make(order[t])
            offset = _stack_offset(support, top, rng)
            if offset is not None:
                groups.append(_Group(support, top, offset, float(rng.uniform(0, 2 * np.pi))))
                free = [i for i in free if i not in (base, t)]
                break
    groups += [_Group(make(order[i])) for i in free]
    return groups


def _place_groups(groups: list[_Group], rng: np.random.Generator, cfg: SamplerConfig,
                  region: tuple[float, float]) -> list[tuple[float, float]] | None:
    """xy centers of the groups, footprints apart by a random clearance; None when they do not fit."""
    placed: list[tuple[float, float, float, int]] = []   # x, y, radius, group index
    for g in sorted(range(len(groups)), key=lambda i: -groups[i].radius):
        r = groups[g].radius
        for _ in range(cfg.max_attempts):
            x = rng.uniform(-region[0] + r * 0.5, region[0] - r * 0.5)
            y = rng.uniform(-region[1] + r * 0.5, region[1] - r * 0.5)
            gap = rng.uniform(*cfg.clearance)
            if all(np.hypot(x - px, y - py) >= r + pr + gap for px, py, pr, _ in placed):
                placed.append((x, y, r, g))
                break
        else:
            return None
    centers: list[tuple[float, float]] = [(0.0, 0.0)] * len(groups)
    for x, y, _, g in placed:
        centers[g] = (x, y)
    return centers


def sample_scene(rng: np.random.Generator, scene_id: str = "scene_0000", cfg: SamplerConfig | None = None,
                 assets: list[MeshAsset] | None = None) -> TabletopScene:
    """Draw one tabletop scene. Raises InputError when the configuration cannot be satisfied."""
    cfg = cfg or SamplerConfig()
    assets = assets if assets is not None else catalogue()
    if cfg.min_objects < 1 or cfg.max_objects < cfg.min_objects:
        raise InputError(f"bad object count range {cfg.min_objects}..{cfg.max_objects}")
    surfaces, table_half, table_height = sample_environment(rng)
    region = (min(cfg.region_half_x, table_half[0] - 0.1), min(cfg.region_half_y, table_half[1] - 0.1))
    for _ in range(20):
        groups = _draw_groups(rng, assets, cfg)
        centers = _place_groups(groups, rng, cfg, region)
        if centers is not None:
            break
    else:
        raise InputError("could not fit the objects on the table; lower max_objects or widen the region")

    objects: list[PlacedObject] = []
    counts: dict[str, int] = {}

    def add(item: SimObjectMesh, pose: np.ndarray, supported_by: str) -> PlacedObject:
        counts[item.category] = counts.get(item.category, 0) + 1
        oid = f"{item.category.replace(' ', '_')}_{counts[item.category]}"
        obj = PlacedObject(len(objects) + 1, oid, item, pose, supported_by)
        objects.append(obj)
        return obj

    for g, (x, y) in zip(groups, centers):
        yaw = float(rng.uniform(0, 2 * np.pi))
        base = add(g.base, _yaw_pose(x, y, 0.0, yaw), "table")
        if g.top is not None:
            offset_w = base.pose[:3, :3] @ np.array([g.top_offset[0], g.top_offset[1], 0.0])
            z = g.base.support_top.height
            add(g.top, _yaw_pose(x + offset_w[0], y + offset_w[1], z, yaw + g.top_yaw), base.object_id)
    lights, ambient = sample_lights(rng)
    return TabletopScene(scene_id, objects, surfaces, lights, ambient, table_half, table_height)
