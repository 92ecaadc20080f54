"""Catalogue of object meshes for simulated tabletop scenes, at realistic sizes.

Sources: textured meshes shipped in the ``pybullet`` wheel (``pybullet_data``: duck, mug, teddy bear, lego,
soccer ball, jenga block, bunny), household meshes of the ``robosuite`` wheel (bread, can, cereal, milk,
lemon, bottle; installed with ``--no-deps``, never imported) and procedural meshes (bowl, plate, box, book,
ball). A missing wheel only removes its entries.

Every mesh comes back in its own object frame: metres, z up, resting on z = 0, centered on the middle of its
xy bounding box. ``MeshAsset.make(rng)`` draws one instance: size within the category's real-world range,
a random yaw is left to the scene sampler.
"""
from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

#: Named base colors used for procedural/plain objects; the name goes into the ground truth.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 35), "green": (40, 150, 60), "blue": (35, 70, 190), "yellow": (230, 200, 40),
    "orange": (235, 120, 30), "purple": (120, 50, 150), "white": (235, 235, 230), "gray": (128, 128, 128),
    "pink": (230, 120, 170), "brown": (120, 75, 40), "black": (30, 30, 32),
}


@dataclass(frozen=True)
class SupportTop:
    """Flat top of an object other objects can rest on, in the object frame (metres)."""

    height: float                 # z of the flat top surface
    half_x: float                 # usable half extent along object x (for a disc: the radius)
    half_y: float                 # usable half extent along object y
    round: bool = False           # True: a disc of radius half_x


@dataclass
class SimObjectMesh:
    """One drawn object: its mesh in the object frame and what the ground truth says about it."""

    category: str                          # label, e.g. "mug"
    mesh: trimesh.Trimesh                  # object frame, metres, z up, base on z = 0
    color: str | None = None               # palette color name when the object has one dominant color
    support_top: SupportTop | None = None  # flat top that can hold another object, if any
    source: str = ""                       # "pybullet_data:duck.obj", "robosuite:can.obj", "procedural"

    @property
    def footprint_radius(self) -> float:
        """Radius (m) of the smallest origin-centered circle holding the mesh's xy projection."""
        return float(np.max(np.linalg.norm(self.mesh.vertices[:, :2], axis=1)))

    @property
    def height(self) -> float:
        return float(self.mesh.vertices[:, 2].max())


@dataclass(frozen=True)
class MeshAsset:
    """A category the sampler can draw: ``make(rng)`` returns a new ``SimObjectMesh``."""

    category: str
    source: str                                  # "pybullet_data" | "robosuite" | "procedural"
    make: Callable[[np.random.Generator], SimObjectMesh] = field(repr=False, compare=False)
    stackable: bool = True                       # small and stable enough to rest on another object


# ----------------------------------------------------------------------------------------------------------
# wheel asset folders (found without importing the packages: robosuite's import needs MuJoCo)

def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@functools.cache
def pybullet_data_dir() -> Path | None:
    """``pybullet_data`` folder of the pybullet wheel, or None when not installed."""
    return _package_dir("pybullet_data")


@functools.cache
def robosuite_assets_dir() -> Path | None:
    """``robosuite/models/assets`` of the robosuite wheel, or None when not installed."""
    root = _package_dir("robosuite")
    if root is None or not (root / "models" / "assets").is_dir():
        return None
    return root / "models" / "assets"


@functools.cache
def texture_paths() -> dict[str, Path]:
    """Surface textures for tables, floors and walls: name -> image path (robosuite + pybullet_data)."""
    out: dict[str, Path] = {}
    rs = robosuite_assets_dir()
    if rs is not None:
        for p in sorted((rs / "textures").glob("*.png")):
            out[p.stem] = p
    pb = pybullet_data_dir()
    if pb is not None:
        for name in ("table/table.png", "checker_grid.jpg", "tray/tray.jpg"):
            if (pb / name).is_file():
                out[Path(name).stem] = pb / name
    return out


@functools.lru_cache(maxsize=64)
def load_texture(path: str) -> Image.Image:
    """RGB image of a texture file (cached)."""
    with Image.open(path) as im:
        return im.convert("RGB").copy()


# ----------------------------------------------------------------------------------------------------------
# normalisation helpers

def _normalise(mesh: trimesh.Trimesh, rotation: np.ndarray | None = None) -> trimesh.Trimesh:
    """Rotate (3x3) the mesh to z-up, then put its base on z = 0 and its xy box center on the origin."""
    mesh = mesh.copy()
    if rotation is not None:
        t = np.eye(4)
        t[:3, :3] = rotation
        mesh.apply_transform(t)
    lo, hi = mesh.bounds
    mesh.apply_translation([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    return mesh


def _scaled(mesh: trimesh.Trimesh, factor) -> trimesh.Trimesh:
    mesh = mesh.copy()
    mesh.apply_scale(factor)
    return mesh


def _paint(mesh: trimesh.Trimesh, rgb: tuple[int, int, int]) -> trimesh.Trimesh:
    """Replace the visual by one plain color."""
    mesh = mesh.copy()
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.array([*rgb, 255], dtype=np.uint8))
    return mesh


def _random_color(rng: np.random.Generator, names: tuple[str, ...] | None = None) -> tuple[str, tuple]:
    name = str(rng.choice(names or tuple(PALETTE)))
    return name, PALETTE[name]


def _rot_x(deg: float) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(np.radians(deg), [1, 0, 0])[:3, :3]


@functools.cache
def _load_obj(path: str) -> trimesh.Trimesh:
    """One OBJ file as a single Trimesh; textures named by ``map_Kd`` are attached even when the path is
    relative to a parent folder (robosuite's meshes point at ``../../textures``)."""
    loaded = trimesh.load(path, force="mesh", process=False)
    mesh = loaded if isinstance(loaded, trimesh.Trimesh) else loaded.to_mesh()
    uv = getattr(mesh.visual, "uv", None)
    has_image = getattr(getattr(mesh.visual, "material", None), "image", None) is not None
    if uv is not None and not has_image:
        mtl = Path(path).with_suffix(".mtl")
        if mtl.is_file():
            m = re.search(r"^\s*map_Kd\s+(\S+)", mtl.read_text(errors="replace"), re.MULTILINE)
            if m and (mtl.parent / m.group(1)).is_file():
                image = load_texture(str((mtl.parent / m.group(1)).resolve()))
                mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=image)
    return mesh


# ----------------------------------------------------------------------------------------------------------
# wheel meshes

def _wheel_asset(category: str, source: str, rel_path: str, height: tuple[float, float],
                 rotation: np.ndarray | None = None, colors: tuple[str, ...] | None = None,
                 default_rgb: tuple[int, int, int] | None = None, stackable: bool = True,
                 size_axis: str = "z") -> MeshAsset | None:
    """An asset from a wheel file; ``height`` is the drawn range (m) of the extent along ``size_axis``
    ("z" = height, "xy" = longest horizontal side). ``colors``: paint a random palette color (for meshes
    without texture); ``default_rgb``: paint this color when the file has no texture."""
    base = pybullet_data_dir() if source == "pybullet_data" else robosuite_assets_dir()
    if base is None or not (base / rel_path).is_file():
        return None
    path = str(base / rel_path)

    def make(rng: np.random.Generator) -> SimObjectMesh:
        mesh = _normalise(_load_obj(path), rotation)
        ext = mesh.extents
        current = ext[2] if size_axis == "z" else max(ext[0], ext[1])
        mesh = _scaled(mesh, rng.uniform(*height) / current)
        color = None
        if colors:
            color, rgb = _random_color(rng, colors)
            mesh = _paint(mesh, rgb)
        elif default_rgb is not None and getattr(getattr(mesh.visual, "material", None), "image", None) is None:
            mesh = _paint(mesh, default_rgb)
        return SimObjectMesh(category, mesh, color, None, f"{source}:{rel_path}")

    return MeshAsset(category, source, make, stackable)


def _jenga_block(rng: np.random.Generator) -> SimObjectMesh:
    """Wooden block (pybullet_data's jenga cube scaled to a block, in a wood texture when robosuite's are
    installed: the jenga texture is a labelled test pattern); its top can hold objects."""
    mesh = _normalise(_load_obj(str(pybullet_data_dir() / "jenga/jenga.obj")))
    size = np.array([rng.uniform(0.10, 0.16), rng.uniform(0.07, 0.11), rng.uniform(0.04, 0.07)])
    mesh = _scaled(mesh, size / mesh.extents)
    woods = [t for t in ("light-wood", "dark-wood", "gray-woodgrain") if t in texture_paths()]
    if woods and getattr(mesh.visual, "uv", None) is not None:
        wood = load_texture(str(texture_paths()[woods[int(rng.integers(len(woods)))]]))
        mesh.visual = trimesh.visual.TextureVisuals(uv=mesh.visual.uv * 0.3, image=wood)
    top = SupportTop(size[2], size[0] / 2, size[1] / 2)
    return SimObjectMesh("block", mesh, None, top, "pybullet_data:jenga/jenga.obj")


# ----------------------------------------------------------------------------------------------------------
# procedural meshes

def _revolve(profile: list[tuple[float, float]], sections: int = 48) -> trimesh.Trimesh:
    """Solid of revolution around z of a closed (radius, z) profile."""
    return trimesh.creation.revolve(np.asarray(profile, dtype=np.float64), sections=sections)


def make_bowl(rng: np.random.Generator) -> SimObjectMesh:
    """Bowl: diameter 12-18 cm, height 5-8 cm, walls 5 mm."""
    r, h, t = rng.uniform(0.06, 0.09), rng.uniform(0.05, 0.08), 0.005
    rb = r * rng.uniform(0.45, 0.6)                  # foot radius
    prof = [(0.0, 0.0), (rb, 0.0), (r * 0.85, h * 0.55), (r, h), (r - t, h), (r * 0.85 - t, h * 0.55),
            (rb - t, t), (0.0, t)]
    color, rgb = _random_color(rng)
    return SimObjectMesh("bowl", _paint(_normalise(_revolve(prof)), rgb), color, None, "procedural")


def make_plate(rng: np.random.Generator) -> SimObjectMesh:
    """Plate: diameter 20-26 cm with a low rim; its flat center can hold objects."""
    r, h, t = rng.uniform(0.10, 0.13), rng.uniform(0.018, 0.025), 0.006
    r_flat = r * 0.7
    prof = [(0.0, 0.0), (r_flat, 0.0), (r, h), (r - 0.004, h), (r_flat, t), (0.0, t)]
    color, rgb = _random_color(rng, ("white", "blue", "yellow", "green", "red", "gray"))
    top = SupportTop(t, r_flat - 0.005, r_flat - 0.005, round=True)
    return SimObjectMesh("plate", _paint(_normalise(_revolve(prof, 64)), rgb), color, top, "procedural")


def make_box(rng: np.random.Generator) -> SimObjectMesh:
    """Cardboard-like box, 8-20 cm sides; its top can hold objects."""
    size = rng.uniform([0.10, 0.08, 0.06], [0.20, 0.16, 0.14])
    color, rgb = _random_color(rng)
    mesh = _normalise(trimesh.creation.box(size))
    return SimObjectMesh("box", _paint(mesh, rgb), color, SupportTop(size[2], size[0] / 2, size[1] / 2),
                         "procedural")


def make_book(rng: np.random.Generator) -> SimObjectMesh:
    """Closed book lying flat, 15-24 x 20-30 x 2-5 cm; its top can hold objects."""
    size = rng.uniform([0.15, 0.20, 0.02], [0.24, 0.30, 0.05])
    color, rgb = _random_color(rng, ("red", "green", "blue", "orange", "purple", "black", "brown"))
    mesh = _normalise(trimesh.creation.box(size))
    return SimObjectMesh("book", _paint(mesh, rgb), color, SupportTop(size[2], size[0] / 2, size[1] / 2),
                         "procedural")


def make_ball(rng: np.random.Generator) -> SimObjectMesh:
    """Plain ball, 6-10 cm diameter."""
    color, rgb = _random_color(rng, ("red", "green", "blue", "yellow", "orange", "purple", "pink"))
    mesh = _normalise(trimesh.creation.icosphere(subdivisions=3, radius=rng.uniform(0.03, 0.05)))
    return SimObjectMesh("ball", _paint(mesh, rgb), color, None, "procedural")


# ----------------------------------------------------------------------------------------------------------

def catalogue() -> list[MeshAsset]:
    """Every asset available in this environment (procedural ones always are)."""
    pb, rs = "pybullet_data", "robosuite"
    wheel = [
        _wheel_asset("duck", pb, "duck.obj", (0.07, 0.11), rotation=_rot_x(90)),
        _wheel_asset("mug", pb, "objects/mug.obj", (0.085, 0.11), colors=("red", "blue", "white", "green",
                                                                             "yellow", "black", "orange")),
        _wheel_asset("teddy bear", pb, "teddy2_VHACD_CHs.obj", (0.18, 0.28), rotation=_rot_x(90),
                     default_rgb=(150, 100, 60), stackable=False),
        _wheel_asset("lego", pb, "lego/lego.obj", (0.04, 0.06), rotation=_rot_x(90), size_axis="xy",
                     colors=("red", "blue", "yellow", "green")),
        _wheel_asset("ball", pb, "soccerball.obj", (0.12, 0.20), stackable=False),
        _wheel_asset("bunny", pb, "bunny.obj", (0.10, 0.15), rotation=_rot_x(90),
                     colors=("white", "gray", "pink", "brown")),
        _wheel_asset("bread", rs, "objects/meshes/bread.obj", (0.12, 0.18), size_axis="xy"),
        _wheel_asset("can", rs, "objects/meshes/can.obj", (0.11, 0.125)),
        _wheel_asset("cereal", rs, "objects/meshes/cereal.obj", (0.22, 0.30), stackable=False),
        _wheel_asset("milk", rs, "objects/meshes/milk.obj", (0.19, 0.24), stackable=False),
        _wheel_asset("lemon", rs, "objects/meshes/lemon.obj", (0.06, 0.08), size_axis="xy"),
        _wheel_asset("bottle", rs, "objects/meshes/bottle.obj", (0.20, 0.26), default_rgb=(60, 140, 90),
                     stackable=False),
    ]
    assets = [a for a in wheel if a is not None]
    if pybullet_data_dir() is not None and (pybullet_data_dir() / "jenga/jenga.obj").is_file():
        assets.append(MeshAsset("block", pb, _jenga_block))
    assets += [
        MeshAsset("bowl", "procedural", make_bowl),
        MeshAsset("plate", "procedural", make_plate, stackable=False),
        MeshAsset("box", "procedural", make_box),
        MeshAsset("book", "procedural", make_book, stackable=False),
    ]
    if not any(a.category == "ball" for a in assets):
        assets.append(MeshAsset("ball", "procedural", make_ball))
    return assets
