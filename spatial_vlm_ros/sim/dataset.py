"""Generate simulated RGB-D scene sets and store them on disk (PNG images + JSON ground truth).

Layout of a dataset folder::

    dataset.json                 what was generated (format, version, config, seed, scene list)
    ground_truth.json            ground truth of every frame, keyed by stamp (docs/ground_truth_format.md)
    scene_0000/scene.json        scene description (objects, poses, surfaces, lights) and its frames
    scene_0000/frame_0000_rgb.png     rgb8 color (stored as an 8-bit RGB PNG)
    scene_0000/frame_0000_depth.png   depth, uint16 millimetres (16UC1), 0 = no reading
    scene_0000/frame_0000_mask.png    instance ids, uint16, 0 = none (ids/labels in scene.json)

Depth comes through a simulated sensor chosen by name (``sim.depth_sensors``: ``gaussian``, ``stereo`` (the
default), ``tof``, or ``perfect``); dataset.json records its name and parameters.

Stamps: frames of one scene are 1/30 s apart (a camera moving around a static scene); scenes follow one
another with a gap (``scene_gap_s``) so a node's memory can tell them apart by time.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.sim.depth_sensors import DEFAULT_SENSOR, DepthSensor, make_sensor, sensor_name
from spatial_vlm_ros.sim.ground_truth import GroundTruthConfig, frame_ground_truth
from spatial_vlm_ros.sim.ground_truth_file import load_ground_truth, save_ground_truth
from spatial_vlm_ros.sim.scene_sampler import SamplerConfig, sample_scene
from spatial_vlm_ros.sim.trajectory import (
    OPTICAL_FRAME_ID,
    TrajectoryConfig,
    ViewpointConfig,
    camera_trajectory,
    sample_intrinsics,
    sample_viewpoint,
)

DATASET_FORMAT = "spatial_vlm_ros/sim_dataset"
#: bumped when a generator fix changes what a set renders (2: a scene drawn where a freed one was got its meshes)
GENERATOR_VERSION = 2
DEFAULT_START_NS = 1_700_000_000 * 10**9


@dataclass
class Frame:
    """One RGB-D frame with its instance mask, CameraInfo fields and ground truth."""

    stamp_ns: int                    # header stamp, nanoseconds
    rgb: np.ndarray                  # (H, W, 3) uint8
    depth_mm: np.ndarray             # (H, W) uint16 millimetres, 0 = invalid (16UC1)
    mask: np.ndarray                 # (H, W) uint16 instance ids, 0 = none
    ids: list[int]                   # instance ids in the mask, in order
    labels: list[str]                # one label per id
    camera_info: dict                # CameraInfo fields: width, height, k, d, r, p, distortion_model, frame_id
    ground_truth: dict = field(default_factory=dict)

    @property
    def stamp(self) -> float:
        return self.stamp_ns * 1e-9

    @property
    def frame_id(self) -> str:
        return self.camera_info.get("frame_id", OPTICAL_FRAME_ID)


@dataclass
class SceneRecord:
    scene_id: str
    frames: list[Frame]
    description: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GeneratorConfig:
    width: int = 640
    height: int = 480
    frames_per_scene: int = 1
    sensor: str | DepthSensor | None = DEFAULT_SENSOR     # a name (depth_sensors.SENSORS) or model; None = perfect
    rate_hz: float = 30.0
    start_stamp_ns: int = DEFAULT_START_NS
    scene_gap_s: float = 1.0
    min_visible_fraction: float = 0.0008     # of the image: re-draw the viewpoint if an object shows less
    viewpoint_retries: int = 6
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    viewpoint: ViewpointConfig = field(default_factory=ViewpointConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    ground_truth: GroundTruthConfig = field(default_factory=GroundTruthConfig)

    def sensor_model(self) -> DepthSensor | None:
        """The depth sensor model (None = perfect depth); ``InputError`` for an unknown name."""
        return make_sensor(self.sensor)

    def scene_start_ns(self, index: int) -> int:
        span = self.frames_per_scene / self.rate_hz + self.scene_gap_s
        return self.start_stamp_ns + int(round(index * span * 1e9))


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """float metres (NaN = invalid) -> uint16 millimetres (0 = invalid or beyond 65.535 m)."""
    mm = np.rint(np.nan_to_num(depth_m, nan=0.0) * 1000.0)
    return np.where((mm > 0) & (mm <= 65535), mm, 0).astype(np.uint16)


def _choose_view(rng, scene, intr, cfg: GeneratorConfig, renderer):
    """Viewpoint whose first frame shows every object with enough pixels (best of a few tries)."""
    need = cfg.min_visible_fraction * cfg.width * cfg.height
    best = None
    for _ in range(max(cfg.viewpoint_retries, 1)):
        vp = sample_viewpoint(rng, scene, intr, cfg.viewpoint)
        frame = renderer.render(scene, intr, vp.pose())
        counts = np.bincount(frame.mask.ravel(), minlength=len(scene.objects) + 1)
        worst = min(int(counts[o.instance_id]) for o in scene.objects)
        if best is None or worst > best[0]:
            best = (worst, vp, frame)
        if worst >= need:
            break
    return best[1], best[2]


def render_scene(index: int, seed: int, cfg: GeneratorConfig, renderer) -> SceneRecord:
    """Draw scene ``index`` of the set with seed ``seed`` and render its frames (reproducible per index)."""
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng, f"scene_{index:04d}", cfg.sampler)
    scene.seed = seed
    intr = sample_intrinsics(rng, cfg.width, cfg.height)
    start, first = _choose_view(rng, scene, intr, cfg, renderer)
    trajectory = camera_trajectory(rng, start, cfg.frames_per_scene, cfg.trajectory)
    sensor = cfg.sensor_model()
    gt_cfg = cfg.ground_truth
    if sensor is not None:
        sensor = sensor.for_scene(rng)                  # one physical unit for the whole scene
        gt_cfg = replace(gt_cfg, noise=sensor.depth_model(intr.fx))
    info = intr.camera_info(OPTICAL_FRAME_ID)
    ids = [o.instance_id for o in scene.objects]
    labels = [o.category for o in scene.objects]
    points_cache: dict = {}
    frames = []
    t0 = cfg.scene_start_ns(index)
    for i, (t, pose) in enumerate(trajectory):
        out = first if i == 0 else renderer.render(scene, intr, pose)
        stamp_ns = t0 + int(round(t * 1e9))
        gt = frame_ground_truth(scene, intr, pose, out.mask, stamp_ns, i, gt_cfg, points_cache, OPTICAL_FRAME_ID)
        rgb, depth = out.rgb, out.depth
        if sensor is not None:
            depth, rgb = sensor.apply(depth, rgb, intr.fx, rng)
        frames.append(Frame(stamp_ns, rgb, depth_to_mm(depth), out.mask, ids, labels, info, gt))
    return SceneRecord(scene.scene_id, frames, scene.describe())


def iter_scenes(n_scenes: int, seed: int = 0, cfg: GeneratorConfig | None = None,
                progress: bool = False) -> Iterator[SceneRecord]:
    """Render ``n_scenes`` scenes one by one (a single offscreen renderer for all)."""
    from spatial_vlm_ros.sim.renderer import Renderer  # imports pyrender / OpenGL only when rendering
    cfg = cfg or GeneratorConfig()
    cfg.sensor_model()                                   # an unknown sensor name fails before rendering
    if n_scenes < 0 or cfg.frames_per_scene < 1:
        raise InputError("need n_scenes >= 0 and frames_per_scene >= 1")
    indices: Iterable[int] = range(n_scenes)
    if progress:
        from tqdm import tqdm
        indices = tqdm(indices, desc="rendering scenes", unit="scene")
    with Renderer(cfg.width, cfg.height) as renderer:
        for index in indices:
            yield render_scene(index, seed, cfg, renderer)


# ----------------------------------------------------------------------------------------------------------
# disk format

def _write_png(path: Path, image: np.ndarray) -> None:
    img = image[..., ::-1] if image.ndim == 3 else image     # OpenCV writes BGR
    if not cv2.imwrite(str(path), np.ascontiguousarray(img)):
        raise OSError(f"could not write {path}")


def _read_png(path: Path, color: bool = False) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"could not read image {path}")
    return np.ascontiguousarray(img[..., ::-1]) if color else img


def save_scene(record: SceneRecord, out_dir: str | Path) -> Path:
    """Write one scene's images and scene.json under ``out_dir/<scene_id>/``."""
    folder = Path(out_dir) / record.scene_id
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for i, f in enumerate(record.frames):
        names = {k: f"frame_{i:04d}_{k}.png" for k in ("rgb", "depth", "mask")}
        _write_png(folder / names["rgb"], f.rgb)
        _write_png(folder / names["depth"], f.depth_mm)
        _write_png(folder / names["mask"], f.mask.astype(np.uint16))
        frames.append({"stamp_ns": f.stamp_ns, **names, "ids": f.ids, "labels": f.labels,
                       "camera_info": f.camera_info})
    (folder / "scene.json").write_text(json.dumps({"scene": record.description, "frames": frames}, indent=1))
    return folder


def generate_scenes(out_dir: str | Path, n_scenes: int = 5, frames_per_scene: int = 1, noise: bool = True,
                    seed: int = 0, width: int = 640, height: int = 480, progress: bool = True,
                    config: GeneratorConfig | None = None, sensor: str | DepthSensor | None = None) -> Path:
    """Render a scene set into ``out_dir`` (created) and return it. ``config`` overrides the defaults; the
    explicit arguments win over it: ``noise=False`` means perfect depth, otherwise the depth goes through
    ``sensor`` (a name or model), else the config's sensor, else the stereo default. See the module docstring
    for the layout."""
    cfg = replace(config or GeneratorConfig(), width=int(width), height=int(height),
                  frames_per_scene=int(frames_per_scene))
    if not noise:
        cfg = replace(cfg, sensor=None)
    elif sensor is not None:
        cfg = replace(cfg, sensor=sensor)
    elif make_sensor(cfg.sensor) is None:
        cfg = replace(cfg, sensor=DEFAULT_SENSOR)
    model = cfg.sensor_model()
    cfg = replace(cfg, sensor=model)                     # dataset.json records the model's parameters
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scene_ids, gt_frames = [], []
    for record in iter_scenes(n_scenes, seed, cfg, progress):
        save_scene(record, out)
        scene_ids.append(record.scene_id)
        gt_frames += [f.ground_truth for f in record.frames]
    save_ground_truth(out / "ground_truth.json", gt_frames)
    meta = {"format": DATASET_FORMAT, "version": 1, "generator_version": GENERATOR_VERSION, "seed": seed,
            "scenes": scene_ids, "sensor": sensor_name(model),
            "config": json.loads(json.dumps(asdict(cfg), default=str))}
    (out / "dataset.json").write_text(json.dumps(meta, indent=1))
    return out


def iter_dataset(path: str | Path) -> Iterator[SceneRecord]:
    """Read a dataset folder written by ``generate_scenes`` scene by scene (images loaded on the way)."""
    root = Path(path)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise InputError(f"{root} is not a generated dataset (no dataset.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != DATASET_FORMAT:
        raise InputError(f"{meta_path}: unknown format {meta.get('format')!r}")
    gt_path = root / "ground_truth.json"
    gt = load_ground_truth(gt_path, complete=False) if gt_path.is_file() else {}
    for scene_id in meta["scenes"]:
        folder = root / scene_id
        doc = json.loads((folder / "scene.json").read_text())
        frames = [Frame(int(e["stamp_ns"]), _read_png(folder / e["rgb"], color=True),
                        _read_png(folder / e["depth"]), _read_png(folder / e["mask"]), list(e["ids"]),
                        list(e["labels"]), e["camera_info"], gt.get(int(e["stamp_ns"]), {}))
                  for e in doc["frames"]]
        yield SceneRecord(scene_id, frames, doc["scene"])


def load_dataset(path: str | Path) -> list[SceneRecord]:
    """Every scene of a dataset folder, in memory."""
    return list(iter_dataset(path))
