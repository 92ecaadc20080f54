"""Sampled layouts are physically plausible: resting contact, stable stacks, no interpenetration."""
import numpy as np
import open3d as o3d
import pytest
import trimesh

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.sim.scene_sampler import SamplerConfig, sample_scene

SEEDS = range(12)


@pytest.fixture(scope="module")
def scenes():
    return [sample_scene(np.random.default_rng(s), f"scene_{s}") for s in SEEDS]


def _signed_distance(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Signed distance (m, negative inside) of points to a closed mesh (open3d ray parity)."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.vertices.astype(np.float32)),
                        o3d.core.Tensor(mesh.faces.astype(np.uint32)))
    return scene.compute_signed_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()


def test_object_count_unique_labels_and_ids(scenes):
    for sc in scenes:
        assert 3 <= len(sc.objects) <= 6
        labels = [o.category for o in sc.objects]
        assert len(set(labels)) == len(labels)
        assert [o.instance_id for o in sc.objects] == list(range(1, len(sc.objects) + 1))
        assert len({o.object_id for o in sc.objects}) == len(sc.objects)


def test_every_object_rests_on_the_table_or_on_its_support(scenes):
    for sc in scenes:
        for o in sc.objects:
            bottom = o.world_mesh.bounds[0, 2]
            if o.supported_by == "table":
                assert bottom == pytest.approx(0.0, abs=1e-9)
                continue
            support = sc.by_id(o.supported_by)
            assert support.supported_by == "table"                      # one level of stacking
            assert bottom == pytest.approx(support.item.support_top.height, abs=1e-9)
            # stable: the stacked object's center of mass is over the support's top
            com_local = np.linalg.inv(support.pose) @ np.r_[o.world_mesh.center_mass[:2], 0.0, 1.0]
            top = support.item.support_top
            if top.round:
                assert np.hypot(*com_local[:2]) <= top.half_x
            else:
                assert abs(com_local[0]) <= top.half_x and abs(com_local[1]) <= top.half_y


def test_stacks_occur(scenes):
    assert sum(any(o.supported_by != "table" for o in sc.objects) for sc in scenes) >= 3


def test_table_level_footprints_do_not_overlap(scenes):
    for sc in scenes:
        groups = {}
        for o in sc.objects:
            root = o.object_id if o.supported_by == "table" else o.supported_by
            groups.setdefault(root, []).append(o.world_mesh.vertices[:, :2])
        centers = {k: sc.by_id(k).pose[:2, 3] for k in groups}
        radii = {k: max(np.linalg.norm(v - centers[k], axis=1).max() for v in vs) for k, vs in groups.items()}
        keys = list(groups)
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                assert np.linalg.norm(centers[a] - centers[b]) > radii[a] + radii[b]


def test_no_object_penetrates_a_closed_mesh(scenes):
    checked = 0
    for sc in scenes:
        for a in sc.objects:
            pts, _ = trimesh.sample.sample_surface(a.world_mesh, 3000, seed=1)
            pts = np.vstack([pts, a.world_mesh.vertices])
            for b in sc.objects:
                closed = b.world_mesh.copy()
                closed.merge_vertices(merge_tex=True, merge_norm=True)
                # ray parity needs one closed surface (the teddy bear is a union of overlapping hulls)
                if b is a or not closed.is_watertight or closed.body_count != 1:
                    continue
                assert _signed_distance(closed, pts).min() > -5e-4, (a.object_id, b.object_id)
                checked += 1
    assert checked > 20


def test_repeated_labels_get_numbered_ids():
    seen_repeat = False
    for seed in range(10):
        sc = sample_scene(np.random.default_rng(seed), cfg=SamplerConfig(unique_labels=False, min_objects=6,
                                                                          max_objects=6))
        ids = [o.object_id for o in sc.objects]
        assert len(set(ids)) == len(ids) == 6
        for o in sc.objects:
            same = [p for p in sc.objects if p.category == o.category]
            assert o.object_id == f"{o.category.replace(' ', '_')}_{same.index(o) + 1}"
            seen_repeat |= len(same) > 1
    assert seen_repeat


def test_impossible_configuration_raises(rng):
    with pytest.raises(InputError):
        sample_scene(rng, cfg=SamplerConfig(min_objects=40, max_objects=40))
    with pytest.raises(InputError):
        sample_scene(rng, cfg=SamplerConfig(min_objects=4, max_objects=2))
