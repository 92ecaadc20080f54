"""The generator verified against itself: depth + instance mask back-projected with the CameraInfo
intrinsics (through the package's own CameraModel) land on the true meshes of the right objects."""
import numpy as np
import open3d as o3d
import pytest

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.sim.dataset import depth_to_mm
from spatial_vlm_ros.sim.renderer import Renderer
from spatial_vlm_ros.sim.scene_sampler import sample_scene
from spatial_vlm_ros.sim.trajectory import sample_intrinsics, sample_viewpoint

W, H = 320, 240


def _distance(mesh, points):
    """Unsigned distance (m) of points to a mesh's surface (open3d, exact point-triangle)."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.vertices.astype(np.float32)),
                        o3d.core.Tensor(mesh.faces.astype(np.uint32)))
    return scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()


@pytest.fixture(scope="module")
def rendered():
    out = []
    with Renderer(W, H) as renderer:
        for seed in (3, 4):
            rng = np.random.default_rng(seed)
            scene = sample_scene(rng, f"scene_{seed}")
            intr = sample_intrinsics(rng, W, H)
            pose = sample_viewpoint(rng, scene, intr).pose()
            out.append((scene, intr, pose, renderer.render(scene, intr, pose)))
    return out


def _world_points(intr, pose, depth, mask_pixels):
    cam = CameraModel.from_intrinsics(intr.fx, intr.fy, intr.cx, intr.cy, W, H)
    v, u = mask_pixels
    pc = cam.backproject(u, v, depth[v, u].astype(np.float64))
    return pc @ pose[:3, :3].T + pose[:3, 3]


def test_output_types(rendered):
    for _, _, _, f in rendered:
        assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
        assert f.depth.shape == (H, W) and f.depth.dtype == np.float32
        assert f.mask.shape == (H, W) and f.mask.dtype == np.uint16
        assert np.isfinite(f.depth).mean() > 0.99          # table, floor and wall fill the background


def test_masked_depth_lands_on_the_true_mesh_of_that_object(rendered):
    checked = 0
    for scene, intr, pose, f in rendered:
        for obj in scene.objects:
            pixels = np.nonzero(f.mask == obj.instance_id)
            if pixels[0].size == 0:
                continue
            pw = _world_points(intr, pose, f.depth, pixels)
            d = _distance(obj.world_mesh, pw)
            # float depth (24-bit z-buffer): a few silhouette pixels are off by tens of micrometres
            assert d.max() < 1e-4 and np.percentile(d, 99) < 1e-5, f"{obj.object_id}: {d.max() * 1e3:.4f} mm"
            mm = depth_to_mm(f.depth).astype(np.float64) / 1000.0
            dq = _distance(obj.world_mesh, _world_points(intr, pose, mm, pixels))
            assert dq.max() < 1e-3, f"{obj.object_id}: {dq.max() * 1e3:.3f} mm"        # 16UC1: sub-millimetre
            others = [o for o in scene.objects if o is not obj]
            if others:                                                  # and not on a neighbour instead
                nearest_other = np.min([_distance(o.world_mesh, pw) for o in others], axis=0)
                assert np.median(nearest_other) > 1e-3
            checked += pixels[0].size
    assert checked > 2000


def test_background_depth_lands_on_the_environment(rendered):
    scene, intr, pose, f = rendered[0]
    bg = np.nonzero((f.mask == 0) & np.isfinite(f.depth))
    pick = np.random.default_rng(0).choice(bg[0].size, 3000, replace=False)
    pw = _world_points(intr, pose, f.depth, (bg[0][pick], bg[1][pick]))
    d = np.min([_distance(s.mesh, pw) for s in scene.surfaces], axis=0)
    assert d.max() < 1e-4


def test_every_object_instance_is_drawn_with_its_id(rendered):
    for scene, _, _, f in rendered:
        ids = set(np.unique(f.mask)) - {0}
        assert ids <= {o.instance_id for o in scene.objects}
        assert len(ids) >= len(scene.objects) - 1          # at most one hidden by the random view



def test_a_new_scene_is_rendered_even_where_the_old_one_was_freed():
    """The renderer rebuilds for every new scene object. It once keyed its built scene by ``id(scene)``, which
    CPython hands to the next object allocated where a freed one was: that scene was drawn with the old
    scene's meshes under its own ground truth. Here the second scene (the first one's objects moved 15 cm
    sideways) is allocated until one lands at the freed scene's address."""
    import dataclasses
    import gc

    from spatial_vlm_ros.sim.scene_sampler import TabletopScene
    rng = np.random.default_rng(5)
    scene = sample_scene(rng, "scene_5")
    intr = sample_intrinsics(rng, W, H)
    pose = sample_viewpoint(rng, scene, intr).pose()
    shift = np.eye(4)
    shift[0, 3] = 0.15
    moved = [dataclasses.replace(o, pose=shift @ o.pose, _world=None) for o in scene.objects]
    fields = {f.name: getattr(scene, f.name) for f in dataclasses.fields(TabletopScene)} | {"objects": moved}
    with Renderer(W, H) as renderer:
        renderer.render(scene, intr, pose)
        freed = id(scene)
        del scene
        gc.collect()
        tries = [TabletopScene(**fields) for _ in range(5000)]        # all kept: no address is handed out twice
        second = next((t for t in tries if id(t) == freed), tries[0])
        f = renderer.render(second, intr, pose)
    checked = 0
    for obj in second.objects:
        pixels = np.nonzero(f.mask == obj.instance_id)
        if pixels[0].size >= 20:
            d = _distance(obj.world_mesh, _world_points(intr, pose, f.depth, pixels))
            assert np.median(d) < 0.005, obj.object_id
            checked += 1
    assert checked >= 2
