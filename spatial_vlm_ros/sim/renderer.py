"""Headless rendering of a ``TabletopScene`` with pyrender (OpenGL through EGL/Mesa on the CPU).

Per frame: rgb8 color, depth in metres (NaN where nothing was hit) and an instance mask (uint16, 0 = no
object, otherwise ``PlacedObject.instance_id``). Depth and mask come from the SAME pass (the segmentation
pass, which also draws the table, floor and wall with id 0 so they occlude), and every pass is rendered
single-sampled, so each pixel's color, depth and id belong to the surface hit by the ray through that pixel's
center. Pixel ``(u, v)`` samples the ray ``K^-1 [u, v, 1]`` (CameraInfo convention: the top-left pixel's center
is (0, 0)); pyrender puts pixel centers at half-integers, hence the 0.5 added to its principal point.

Quirks of pyrender 0.1.45 handled here: ``np.infty`` (removed in NumPy 2) is restored before import, and its
4x multisampled framebuffer is made single-sampled: with multisampling the color at silhouettes blends two
surfaces while depth and id come from one sample, and the depths resolved by the color and segmentation
passes disagreed at silhouette pixels by up to the whole foreground/background jump (1.3 m measured);
single-sampled, the two passes give identical depth. Sensor-like blur is added later by ``sensor_noise``.
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402

if not hasattr(np, "infty"):          # pyrender 0.1.45 still uses the NumPy 1 alias
    np.infty = np.inf

import pyrender  # noqa: E402
import pyrender.renderer as _pyrender_renderer  # noqa: E402

from spatial_vlm_ros.sim.scene_sampler import TabletopScene  # noqa: E402
from spatial_vlm_ros.sim.trajectory import Intrinsics  # noqa: E402

_gl_storage_multisample = _pyrender_renderer.glRenderbufferStorageMultisample


def _single_sample_storage(target, samples, internal_format, width, height):
    """pyrender allocates 4-sample render buffers; 0 samples gives ordinary single-sample storage."""
    return _gl_storage_multisample(target, 0, internal_format, width, height)


_pyrender_renderer.glRenderbufferStorageMultisample = _single_sample_storage

#: box-like meshes are drawn with flat normals, everything else smooth
FLAT_SHADED = {"box", "book", "block", "cereal", "milk"}


class RenderingUnavailable(RuntimeError):
    """No OpenGL platform could be started (no EGL / OSMesa)."""


@dataclass
class RenderedFrame:
    """One rendered view."""

    rgb: np.ndarray      # (H, W, 3) uint8
    depth: np.ndarray    # (H, W) float32 metres along the optical axis (z), NaN where nothing was hit
    mask: np.ndarray     # (H, W) uint16 instance ids, 0 = background / environment


def _id_color(instance_id: int) -> tuple[int, int, int]:
    return (instance_id & 0xFF, (instance_id >> 8) & 0xFF, 1)   # blue = 1 marks an object


class Renderer:
    """Offscreen renderer of one image size. Reuses the pyrender scene while the same TabletopScene is drawn.

    Use as a context manager or call ``close()``; the GL context is released at garbage collection too.
    """

    def __init__(self, width: int, height: int, z_near: float = 0.05, z_far: float = 20.0):
        self.width, self.height = int(width), int(height)
        self.z_near, self.z_far = z_near, z_far
        try:
            self._gl = pyrender.OffscreenRenderer(self.width, self.height)
        except Exception as err:  # noqa: BLE001 - PyOpenGL raises several types when no GL platform loads
            raise RenderingUnavailable(
                f"headless OpenGL is not available ({type(err).__name__}: {err}). The simulator renders with "
                f"PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM')}: install Mesa's EGL (Debian: "
                "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) or use PYOPENGL_PLATFORM=osmesa with "
                "libosmesa6") from err
        self._finalizer = weakref.finalize(self, self._gl.delete)
        self._scene: TabletopScene | None = None     # the scene built (held: an id() could be reused)
        self._pr_scene = None
        self._cam_node = None
        self._seg_map: dict = {}

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _build(self, scene: TabletopScene) -> None:
        pr = pyrender.Scene(bg_color=[0.5, 0.5, 0.5, 1.0], ambient_light=[scene.ambient] * 3)
        seg_map = {}
        for obj in scene.objects:
            mesh = pyrender.Mesh.from_trimesh(obj.item.mesh, smooth=obj.category not in FLAT_SHADED)
            seg_map[pr.add(mesh, pose=obj.pose)] = _id_color(obj.instance_id)
        for surface in scene.surfaces:
            node = pr.add(pyrender.Mesh.from_trimesh(surface.mesh, smooth=False))
            seg_map[node] = (0, 0, 0)
        for light in scene.lights:
            cls = pyrender.DirectionalLight if light.kind == "directional" else pyrender.PointLight
            pr.add(cls(color=np.asarray(light.color), intensity=light.intensity), pose=light.pose)
        self._pr_scene, self._seg_map = pr, seg_map
        self._cam_node = None
        self._scene = scene

    def render(self, scene: TabletopScene, intr: Intrinsics, pose_world_optical: np.ndarray) -> RenderedFrame:
        """Render ``scene`` from a camera at ``pose_world_optical`` (world <- optical, 4x4)."""
        if (intr.width, intr.height) != (self.width, self.height):
            raise ValueError(f"renderer is {self.width}x{self.height}, intrinsics are {intr.width}x{intr.height}")
        if self._scene is not scene:
            self._build(scene)
        camera = pyrender.IntrinsicsCamera(intr.fx, intr.fy, intr.cx + 0.5, intr.cy + 0.5,
                                           znear=self.z_near, zfar=self.z_far)
        gl_pose = np.asarray(pose_world_optical, dtype=np.float64) @ np.diag([1.0, -1.0, -1.0, 1.0])
        if self._cam_node is not None:
            self._pr_scene.remove_node(self._cam_node)
        self._cam_node = self._pr_scene.add(camera, pose=gl_pose)
        rgb, _ = self._gl.render(self._pr_scene)
        seg, depth = self._gl.render(self._pr_scene, flags=pyrender.RenderFlags.SEG, seg_node_map=self._seg_map)
        ids = seg[..., 0].astype(np.uint16) | (seg[..., 1].astype(np.uint16) << 8)
        mask = np.where(seg[..., 2] == 1, ids, 0).astype(np.uint16)
        depth = np.where(depth > 0, depth, np.nan).astype(np.float32)
        return RenderedFrame(np.ascontiguousarray(rgb[..., :3]), depth, mask)
