"""Frame sources of the data engine: simulated scenes (analytic primitives or pyrender scene sets), generated
scene-set folders and RGB-D bags, each frame as one ``FrameInput``.

A source is described by a picklable ``SourceSpec`` and opened as a ``FrameSource``, which turns a frame spec
(an integer ``index``: a scene of the simulator, a frame of a bag) into the frames it holds; a Ray stage opens
one ``FrameSource`` per worker and renders or reads inside the stage. Simulated frames carry their ground truth
(``FrameTruth``) so the dataset's own label error can be measured.

The analytic source draws 2-4 colored boxes and upright cylinders per scene, named "<color> <shape>" like
``evaluation.whatsup_sets`` ("red box", "blue cylinder"; no two objects of a scene share a name), 6-11 cm a
side, some stacked on another, seen from a jittered camera; everything is drawn from ``(seed, index)``.

Frames: depth and points in the camera optical frame (x right, y down, z forward), metres; world z up (table
top at z = 0) for the analytic scenes.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D, Frame, Segmentation
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.observation import TrackedObject

SOURCE_KINDS = ("analytic", "sim", "bag", "dataset")
DETECTOR_CHOICES = ("auto", "external", "boxes", "tabletop")
#: stamp of analytic scene 0; scenes follow one second apart
START_NS = 1_700_000_000 * 10**9
SIZE_RANGE_M = (0.06, 0.11)          # every extent of an analytic object (box sides, cylinder diameter, height)
PLACEMENT_AREA_M = (0.44, 0.30)      # x, y extent of the table region the objects are placed in
MIN_GAP_M = 0.02                     # between the footprints of objects standing on the table
MAX_REDRAWS = 30


@dataclass
class FrameTruth:
    """What the simulator knows about a frame: true objects (full geometry; centers in the camera optical
    frame, boxes in ``gravity``) for the analytic source, or a ground-truth frame dict
    (docs/ground_truth_format.md: objects, relations, quantities) for pyrender scene sets and bags."""

    objects: tuple[TrackedObject, ...] = ()
    gravity: GravityFrame | None = None
    table: dict | None = None


@dataclass
class FrameInput:
    """One RGB-D frame to synthesise from. ``depth`` float32 metres (NaN = no reading; None for a frame without
    depth); instance masks (``mask`` ids, 0 = none, with ``ids``/``labels``/``scores``) or 2D ``detections``
    or neither (a detector finds the objects). ``image`` is what the dataset stores (``rgb`` unless the source
    downscales it)."""

    rgb: np.ndarray
    depth: np.ndarray | None
    camera: CameraModel
    stamp_ns: int
    source: str
    frame_index: int
    mask: np.ndarray | None = None
    ids: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    detections: list[Detection2D] | None = None
    truth: FrameTruth | None = None
    image: np.ndarray | None = None

    @property
    def stored_image(self) -> np.ndarray:
        return self.rgb if self.image is None else self.image

    def core_frame(self) -> Frame:
        """The pipeline's ``Frame`` (depth as 32FC1 metres, masks as an external segmentation)."""
        seg = None
        if self.mask is not None:
            scores = self.scores if len(self.scores) == len(self.ids) else [1.0] * len(self.ids)
            seg = Segmentation(self.mask, list(self.ids), list(self.labels), list(scores))
        depth = None if self.depth is None else np.nan_to_num(self.depth, nan=0.0).astype(np.float32)
        return Frame(self.rgb, depth, "32FC1", self.camera, self.stamp_ns * 1e-9, seg, self.detections)


@dataclass(frozen=True)
class SourceSpec:
    """Where frames come from. ``kind``: ``analytic`` (ray-cast primitives), ``sim`` (pyrender scene sets,
    ``sim.dataset``), ``bag`` (a rosbag2 folder or file at ``path``) or ``dataset`` (a scene-set folder written
    by ``spatial_vlm generate`` at ``path``). ``width``/``height``: rendered size (pixels, simulator only);
    ``image_width``/``image_height``: size of the stored image when smaller (0 = as rendered); ``detector``
    (bags and folders): ``auto`` uses the frame's masks, else its 2D boxes, else the tabletop detector."""

    kind: str = "analytic"
    seed: int = 0
    width: int = 128
    height: int = 96
    image_width: int = 0
    image_height: int = 0
    path: str = ""
    detector: str = "auto"
    depth_noise: bool = True             # analytic: Gaussian depth noise of the default noise model
    stack_probability: float = 0.4       # analytic: chance that an object is put on top of another
    min_objects: int = 2
    max_objects: int = 4
    frames_per_scene: int = 1            # sim: frames per scene (a moving camera)
    sensor: str = "stereo"               # sim: depth sensor model (sim.depth_sensors)
    truth: bool = True                   # analytic: build the true objects (for ``truth_answer``)

    @property
    def name(self) -> str:
        """The ``source`` column: ``sim:<renderer>:seed=<s>`` or the bag / folder path."""
        if self.kind == "analytic":
            return f"sim:analytic:seed={self.seed}"
        if self.kind == "sim":
            return f"sim:pyrender:seed={self.seed}"
        return str(self.path)

    def validate(self) -> SourceSpec:
        """``self``, or ``InputError`` naming the first field that is out of range."""
        if self.kind not in SOURCE_KINDS:
            raise InputError(f"unknown source kind {self.kind!r} (known: {', '.join(SOURCE_KINDS)})")
        if self.detector not in DETECTOR_CHOICES:
            raise InputError(f"unknown detector {self.detector!r} (known: {', '.join(DETECTOR_CHOICES)})")
        if self.kind not in ("analytic", "sim"):
            if not self.path:
                raise InputError(f"source kind {self.kind!r} needs a path")
            if not Path(self.path).exists():
                raise InputError(f"{self.kind} {self.path} does not exist")
            return self
        checks = (
            (16 <= self.width <= 4096 and 16 <= self.height <= 4096,
             f"image size {self.width}x{self.height} must be 16-4096 pixels a side"),
            ((self.image_width > 0) == (self.image_height > 0), "give both image_width and image_height, or neither"),
            (self.image_width <= self.width and self.image_height <= self.height,
             "the stored image can only be smaller than the rendered one"),
            (1 <= self.min_objects <= self.max_objects <= 6, "need 1 <= min_objects <= max_objects <= 6"),
            (0.0 <= self.stack_probability <= 1.0, "stack_probability must be in [0, 1]"),
            (self.frames_per_scene >= 1, "frames_per_scene must be >= 1"),
        )
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        return self


def parse_source(text: str, **options) -> SourceSpec:
    """``SourceSpec`` from the CLI's ``--source``: ``analytic``, ``sim``, a scene-set folder (has a
    ``dataset.json``) or a bag path; ``options`` are the spec's other fields."""
    text = str(text).strip()
    if text in ("analytic", "sim"):
        return SourceSpec(kind=text, **options).validate()
    path = Path(text)
    if not path.exists():
        raise InputError(f"--source {text!r} is neither 'analytic', 'sim' nor an existing bag or scene-set folder")
    kind = "dataset" if (path / "dataset.json").is_file() else "bag"
    return SourceSpec(kind=kind, path=str(path), **options).validate()


# ----------------------------------------------------------------------------------------------- analytic
def _colors_and_shapes():
    from spatial_vlm_ros.evaluation.whatsup_sets import COLORS, SHAPES
    return COLORS, SHAPES


def analytic_objects(rng: np.random.Generator, spec: SourceSpec) -> list:
    """2-4 (``spec.min_objects``-``max_objects``) named primitives on the table, some stacked (world metres)."""
    from spatial_vlm_ros.sim.analytic import BoxObject, CylinderObject, top_of

    colors, shapes = _colors_and_shapes()
    names = [(c, s) for c in colors for s in shapes]
    n = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    picks = rng.choice(len(names), size=n, replace=False)
    lo, hi = SIZE_RANGE_M
    objects: list = []
    standing: list[tuple[float, float, float]] = []      # x, y, footprint radius of table-level objects
    carriers: list[int] = []                              # indices of table-level objects free to carry one
    for k in picks:
        color, shape = names[int(k)]
        label, rgb = f"{color} {shape}", colors[color]
        w, d, h = (float(v) for v in rng.uniform(lo, hi, size=3))
        radius = 0.5 * float(np.hypot(w, d)) if shape == "box" else 0.5 * w
        stack = bool(carriers) and rng.random() < spec.stack_probability
        if stack:
            base = objects[carriers.pop(int(rng.integers(len(carriers))))]
            x, y = (float(v) for v in np.asarray(base.center_xy) + rng.uniform(-0.01, 0.01, size=2))
            z = top_of(base)
        else:
            for _ in range(200):
                x = float(rng.uniform(-PLACEMENT_AREA_M[0] / 2, PLACEMENT_AREA_M[0] / 2))
                y = float(rng.uniform(-PLACEMENT_AREA_M[1] / 2, PLACEMENT_AREA_M[1] / 2))
                if all(np.hypot(x - px, y - py) >= radius + pr + MIN_GAP_M for px, py, pr in standing):
                    break
            else:
                continue                                   # no room left: fewer objects this time
            z = 0.0
            standing.append((x, y, radius))
            carriers.append(len(objects))
        if shape == "box":
            objects.append(BoxObject(label, (x, y), (w, d, h), z, rgb))
        else:
            objects.append(CylinderObject(label, (x, y), w / 2, h, z, rgb))
    return objects


def analytic_pose(rng: np.random.Generator):
    """A jittered camera looking at the table center (metres, degrees); the ranges include those of the
    analytic What's Up sets (``evaluation.whatsup_sets``)."""
    from spatial_vlm_ros.sim.analytic import CameraPose
    return CameraPose(height=float(rng.uniform(0.35, 0.60)), pitch_deg=float(rng.uniform(22.0, 42.0)),
                      yaw_deg=float(rng.uniform(-12.0, 12.0)), distance=float(rng.uniform(0.55, 0.80)),
                      roll_deg=float(rng.uniform(-2.0, 2.0)))


def _surface_points(obj, spacing_m: float = 0.007) -> np.ndarray:
    """(N, 3) world points on the true surface of a ``sim.analytic`` box or cylinder (metres)."""
    lo, hi = obj.world_box()
    if hasattr(obj, "radius"):
        cx, cy = obj.center_xy
        n_a = max(int(2 * np.pi * obj.radius / spacing_m), 12)
        n_z = max(int(obj.height / spacing_m), 2)
        a = np.linspace(0.0, 2 * np.pi, n_a, endpoint=False)
        z = np.linspace(lo[2], hi[2], n_z)
        side = np.stack([np.repeat(cx + obj.radius * np.cos(a)[None], n_z, 0).ravel(),
                         np.repeat(cy + obj.radius * np.sin(a)[None], n_z, 0).ravel(),
                         np.repeat(z[:, None], n_a, 1).ravel()], axis=1)
        r = np.linspace(0.0, obj.radius, max(int(obj.radius / spacing_m), 2))
        rr, aa = np.meshgrid(r, a)
        caps = [np.stack([cx + (rr * np.cos(aa)).ravel(), cy + (rr * np.sin(aa)).ravel(),
                          np.full(rr.size, zc)], axis=1) for zc in (lo[2], hi[2])]
        return np.vstack([side, *caps])
    faces = []
    for axis in range(3):
        u, v = [i for i in range(3) if i != axis]
        gu = np.linspace(lo[u], hi[u], max(int((hi[u] - lo[u]) / spacing_m), 2))
        gv = np.linspace(lo[v], hi[v], max(int((hi[v] - lo[v]) / spacing_m), 2))
        uu, vv = np.meshgrid(gu, gv)
        for value in (lo[axis], hi[axis]):
            p = np.empty((uu.size, 3))
            p[:, u], p[:, v], p[:, axis] = uu.ravel(), vv.ravel(), value
            faces.append(p)
    return np.vstack(faces)


def _truth_objects(objects, frame, stamp: float) -> tuple[TrackedObject, ...]:
    """The rendered objects as a perfect perception system would hold them (full geometry)."""
    R_wc, C = frame.pose.rotation(), frame.pose.position()
    out = []
    for obj, t in zip(objects, frame.objects):
        points_c = (_surface_points(obj) - C) @ R_wc                 # world -> camera optical frame
        out.append(TrackedObject(id=f"truth_{t.instance_id}", label=t.label, score=1.0, center=t.center_c,
                                 size=t.size, box_min=t.box_min_g, box_max=t.box_max_g, points=points_c,
                                 first_seen=stamp, last_seen=stamp, n_pixels=max(int(t.n_pixels), 1)))
    return tuple(out)


def _stored(spec: SourceSpec, rgb: np.ndarray) -> np.ndarray | None:
    if spec.image_width <= 0 or (spec.image_width, spec.image_height) == (rgb.shape[1], rgb.shape[0]):
        return None
    return cv2.resize(rgb, (spec.image_width, spec.image_height), interpolation=cv2.INTER_AREA)


def render_analytic(spec: SourceSpec, index: int) -> FrameInput:
    """Scene ``index`` of the analytic source with seed ``spec.seed``, rendered (reproducible per index). A scene
    in which an object covers fewer than max(12 px, 0.15 % of the image) is drawn again."""
    from spatial_vlm_ros.core.noise import DepthNoiseModel
    from spatial_vlm_ros.sim.analytic import default_camera, render

    rng = np.random.default_rng([int(spec.seed), int(index), 0x5A17])
    camera = default_camera(spec.width, spec.height)
    need = max(12, int(0.0015 * spec.width * spec.height))
    noise = DepthNoiseModel() if spec.depth_noise else None
    for _ in range(MAX_REDRAWS):
        objects = analytic_objects(rng, spec)
        frame = render(objects, pose=analytic_pose(rng), camera=camera, noise=noise,
                       seed=int(rng.integers(2**31)))
        counts = np.bincount(frame.mask.ravel(), minlength=len(objects) + 1)
        if len(objects) >= spec.min_objects and all(int(counts[k]) >= need for k in frame.ids):
            break
    else:
        raise InputError(f"could not draw an analytic scene with every object visible in {MAX_REDRAWS} tries "
                         f"at {spec.width}x{spec.height}; use a larger image")
    return analytic_frame_input(objects, frame, spec, index)


def analytic_frame_input(objects, frame, spec: SourceSpec | None = None, index: int = 0) -> FrameInput:
    """``FrameInput`` of ``sim.analytic.render(objects, ...)``'s ``frame`` (any scene, e.g. one built by hand with
    known answers), with its truth when ``spec.truth``; frame ``index`` of source ``spec.name``."""
    spec = spec or SourceSpec(width=frame.rgb.shape[1], height=frame.rgb.shape[0])
    stamp_ns = START_NS + int(index) * 10**9
    truth = None
    if spec.truth:
        truth = FrameTruth(_truth_objects(objects, frame, stamp_ns * 1e-9), frame.gravity)
    return FrameInput(frame.rgb, frame.depth, frame.camera, stamp_ns, spec.name, int(index), frame.mask,
                      list(frame.ids), list(frame.labels), [1.0] * len(frame.ids), truth=truth,
                      image=_stored(spec, frame.rgb))


# ----------------------------------------------------------------------------------------------- sim / files
def _camera(info: dict | None, where: str) -> CameraModel:
    if not info:
        raise InputError(f"{where}: no CameraInfo")
    return CameraModel.from_camera_info_fields(info["width"], info["height"], info["k"], info.get("d", []),
                                               info.get("distortion_model", "plumb_bob"),
                                               info.get("frame_id", ""))


def _metres(depth: np.ndarray | None, encoding: str) -> np.ndarray | None:
    if depth is None:
        return None
    from spatial_vlm_ros.core.depth import decode_depth
    return decode_depth(depth, encoding or "16UC1").astype(np.float32)


def _check_rgb(rgb, where: str) -> np.ndarray:
    if rgb is None:
        raise InputError(f"{where}: no color image")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.size == 0:
        raise InputError(f"{where}: color image must be HxWx3 uint8, got {rgb.dtype} {rgb.shape}")
    return rgb


def sim_frame_input(f, source: str, frame_index: int, spec: SourceSpec | None = None) -> FrameInput:
    """``FrameInput`` of a ``sim.dataset.Frame`` (16UC1 millimetre depth, instance mask, ground truth)."""
    where = f"{source} frame {frame_index}"
    rgb = _check_rgb(f.rgb, where)
    truth = FrameTruth(table=f.ground_truth) if f.ground_truth else None
    return FrameInput(rgb, _metres(f.depth_mm, "16UC1"), _camera(f.camera_info, where), int(f.stamp_ns), source,
                      frame_index, f.mask, list(f.ids), list(f.labels), [1.0] * len(f.ids), truth=truth,
                      image=_stored(spec, rgb) if spec is not None else None)


def bag_frame_input(f, source: str, frame_index: int, truth: dict | None = None) -> FrameInput:
    """``FrameInput`` of a ``bag.reader.BagFrame`` (masks / boxes when the bag has them)."""
    where = f"{source} frame {frame_index} (stamp {f.stamp_ns} ns)"
    rgb = _check_rgb(f.rgb, where)
    return FrameInput(rgb, _metres(f.depth, f.depth_encoding), _camera(f.camera_info, where), int(f.stamp_ns),
                      source, frame_index, f.mask, list(f.ids or []), list(f.labels or []),
                      list(f.scores or []), f.detections, FrameTruth(table=truth) if truth else None)


def read_bag_frames(path: str | Path) -> list[FrameInput]:
    """Every frame of a bag as ``FrameInput`` (ground truth from its sidecar when it has one). Raises
    ``InputError`` for an unreadable bag, a bag without color frames or a frame that cannot be decoded."""
    from spatial_vlm_ros.bag.reader import BagReader
    source = str(path)
    try:
        with BagReader(path) as reader:
            frames = reader.frames()
            truth = reader.ground_truth(complete=False) or {}
    except InputError as err:
        raise InputError(f"bag {source}: {err}") from None
    except Exception as err:  # noqa: BLE001 - rosbags / numpy raise many types for a corrupt bag
        raise InputError(f"bag {source}: cannot be read ({type(err).__name__}: {err})") from None
    if not frames:
        raise InputError(f"bag {source} has no color frames")
    return [bag_frame_input(f, source, i, truth.get(int(f.stamp_ns))) for i, f in enumerate(frames)]


def read_dataset_frames(path: str | Path, spec: SourceSpec | None = None) -> list[FrameInput]:
    """Every frame of a scene-set folder (``sim.dataset.generate_scenes``) as ``FrameInput``."""
    from spatial_vlm_ros.sim.dataset import iter_dataset
    out: list[FrameInput] = []
    for record in iter_dataset(path):
        for f in record.frames:
            out.append(sim_frame_input(f, str(path), len(out), spec))
    if not out:
        raise InputError(f"scene set {path} has no frames")
    return out


class FrameSource:
    """An open source: ``frames(index)`` gives the frames of frame spec ``index``. Holds what is expensive to
    make once per worker (the pyrender renderer, a bag's decoded frames). Not thread-safe."""

    def __init__(self, spec: SourceSpec):
        self.spec = spec.validate()
        self._renderer = None
        self._frames: list[FrameInput] | None = None
        if spec.kind == "sim":
            from spatial_vlm_ros.sim.dataset import GeneratorConfig
            from spatial_vlm_ros.sim.depth_sensors import make_sensor
            make_sensor(spec.sensor)                        # an unknown name fails here
            self._generator = GeneratorConfig(width=spec.width, height=spec.height,
                                              frames_per_scene=spec.frames_per_scene, sensor=spec.sensor)

    def count(self, n_scenes: int | None) -> int:
        """How many frame specs ``n_scenes`` means: scenes of the simulator; frames of a bag or folder (None or
        0: all of them, more than it has: an ``InputError``)."""
        if self.spec.kind in ("analytic", "sim"):
            if n_scenes is None or int(n_scenes) < 1:
                raise InputError("the simulator needs --scenes >= 1")
            return int(n_scenes)
        available = len(self._loaded())
        if not n_scenes:
            return available
        if int(n_scenes) > available:
            raise InputError(f"{self.spec.name} has {available} frames, fewer than the {n_scenes} asked for")
        return int(n_scenes)

    def _loaded(self) -> list[FrameInput]:
        if self._frames is None:
            if self.spec.kind == "bag":
                self._frames = read_bag_frames(self.spec.path)
            else:
                self._frames = read_dataset_frames(self.spec.path, self.spec)
        return self._frames

    def frames(self, index: int) -> list[FrameInput]:
        spec = self.spec
        if spec.kind == "analytic":
            return [render_analytic(spec, index)]
        if spec.kind == "sim":
            from spatial_vlm_ros.sim.dataset import render_scene
            if self._renderer is None:
                from spatial_vlm_ros.sim.renderer import Renderer
                self._renderer = Renderer(spec.width, spec.height)
            record = render_scene(int(index), spec.seed, self._generator, self._renderer)
            return [sim_frame_input(f, spec.name, int(index) * spec.frames_per_scene + i, spec)
                    for i, f in enumerate(record.frames)]
        return [self._loaded()[int(index)]]

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_frames(spec: SourceSpec, n_scenes: int | None) -> Iterator[FrameInput]:
    """Every frame of ``n_scenes`` frame specs of ``spec``, in order."""
    with FrameSource(spec) as source:
        for index in range(source.count(n_scenes)):
            yield from source.frames(index)


def iter_sim_frames(n_scenes: int, seed: int = 0, renderer: str = "analytic", **options) -> Iterator[FrameInput]:
    """Frames of ``n_scenes`` simulated scenes: ``renderer`` ``analytic`` or ``pyrender`` (``sim.dataset``)."""
    kinds = {"analytic": "analytic", "pyrender": "sim", "sim": "sim"}
    if renderer not in kinds:
        raise InputError(f"unknown renderer {renderer!r}; use analytic or pyrender")
    return iter_frames(SourceSpec(kind=kinds[renderer], seed=seed, **options), n_scenes)


def iter_bag_frames(bag: str | Path, detector: str = "auto", limit: int | None = None) -> Iterator[FrameInput]:
    """Frames of a bag (``detector`` is recorded on the spec; lifting picks masks / boxes / a backend)."""
    return iter_frames(SourceSpec(kind="bag", path=str(bag), detector=detector), limit)


def frame_seed(seed: int, source: str, frame_index: int) -> list[int]:
    """Seed sequence of one frame's template draws: independent of how frames are split across workers."""
    return [int(seed) & 0xFFFFFFFF, zlib.crc32(source.encode()), int(frame_index)]


__all__ = ["FrameInput", "FrameTruth", "SourceSpec", "FrameSource", "parse_source", "iter_frames",
           "iter_sim_frames", "iter_bag_frames", "render_analytic", "analytic_frame_input", "read_bag_frames",
           "frame_seed"]
