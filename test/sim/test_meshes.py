"""Mesh catalogue: every category comes out z-up, on z = 0, centered, at a realistic size."""
import numpy as np
import pytest

from spatial_vlm_ros.sim.meshes import catalogue, pybullet_data_dir, robosuite_assets_dir

# (min, max) of the largest extent of a real object of the category, metres
REAL_SIZE = {"duck": (0.06, 0.15), "mug": (0.07, 0.16), "teddy bear": (0.15, 0.35), "lego": (0.03, 0.07),
             "ball": (0.05, 0.22), "bunny": (0.08, 0.25), "bread": (0.10, 0.20), "can": (0.10, 0.13),
             "cereal": (0.18, 0.32), "milk": (0.17, 0.26), "lemon": (0.05, 0.09), "bottle": (0.18, 0.28),
             "block": (0.09, 0.17), "bowl": (0.11, 0.19), "plate": (0.19, 0.27), "box": (0.09, 0.21),
             "book": (0.19, 0.31)}


def test_catalogue_has_the_wheel_and_procedural_categories():
    cats = {a.category for a in catalogue()}
    assert {"bowl", "plate", "box", "book", "ball"} <= cats
    if pybullet_data_dir() is not None:
        assert {"duck", "mug", "teddy bear", "lego", "block"} <= cats
    if robosuite_assets_dir() is not None:
        assert {"bread", "can", "cereal", "milk", "lemon", "bottle"} <= cats


@pytest.mark.parametrize("asset", catalogue(), ids=lambda a: f"{a.category}-{a.source}")
def test_asset_is_normalised_and_real_sized(asset, rng):
    for _ in range(3):
        obj = asset.make(rng)
        lo, hi = obj.mesh.bounds
        assert lo[2] == pytest.approx(0.0, abs=1e-9)                         # rests on z = 0
        assert (lo[:2] + hi[:2]) / 2 == pytest.approx([0.0, 0.0], abs=1e-9)  # centered in xy
        lo_size, hi_size = REAL_SIZE[obj.category]
        assert lo_size <= max(obj.mesh.extents) <= hi_size
        assert obj.category == asset.category and len(obj.mesh.faces) > 0


@pytest.mark.parametrize("category", ["box", "book", "block", "plate"])
def test_support_tops_match_the_geometry(category, rng):
    asset = next((a for a in catalogue() if a.category == category), None)
    if asset is None:
        pytest.skip(f"{category} not available")
    obj = asset.make(rng)
    top = obj.support_top
    assert top is not None
    v = obj.mesh.vertices
    if top.round:
        inner = np.linalg.norm(v[:, :2], axis=1) <= top.half_x
        assert v[inner, 2].max() == pytest.approx(top.height, abs=1e-6)     # flat floor inside the rim
        assert v[:, 2].max() > top.height                                    # the rim rises above it
    else:
        assert v[:, 2].max() == pytest.approx(top.height, abs=1e-6)
        assert [top.half_x * 2, top.half_y * 2] == pytest.approx(list(obj.mesh.extents[:2]), abs=1e-6)
