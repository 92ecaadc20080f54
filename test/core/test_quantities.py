"""Quantities on synthetic clouds with exact answers, and their uncertainties."""
import math

import pytest
from reasoning_fixtures import TABLE_Z, make_object, make_scene, on_table, pitched_gravity

from spatial_vlm_ros.core.errors import QueryError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.quantities import (
    QUANTITIES,
    canonical_quantity,
    center_sigma,
    is_binary,
    measure,
    signed_difference,
    surface_sigma,
)

NOISE = DepthNoiseModel()
PITCHED = pitched_gravity(40.0)
LEVEL = GravityFrame.camera_default()


@pytest.mark.parametrize("g", [LEVEL, PITCHED], ids=["level", "pitched40"])
def test_center_distances_are_exact(g):
    a = make_object("mug_1", (0.0, 0.8, -0.40), (0.08, 0.08, 0.10), g)
    b = make_object("bowl_1", (0.3, 1.2, -0.28), (0.16, 0.16, 0.07), g)
    scene = make_scene([a, b], g)
    assert measure("distance", a, b, scene, NOISE).value_m == pytest.approx(math.sqrt(0.09 + 0.16 + 0.0144))
    assert measure("horizontal_distance", a, b, scene, NOISE).value_m == pytest.approx(0.5)
    assert measure("vertical_distance", a, b, scene, NOISE).value_m == pytest.approx(0.12)
    assert measure("vertical_distance", b, a, scene, NOISE).value_m == pytest.approx(0.12)
    assert measure("distance_to_camera", a, None, scene, NOISE).value_m == pytest.approx(math.hypot(0.8, 0.4))


@pytest.mark.parametrize("g", [LEVEL, PITCHED], ids=["level", "pitched40"])
def test_extents_are_the_gravity_box_sizes(g):
    a = on_table("box_1", 0.1, 0.9, (0.30, 0.20, 0.15), g)
    scene = make_scene([a], g)
    for name, value in [("width", 0.30), ("depth", 0.20), ("height", 0.15)]:
        assert measure(name, a, None, scene, NOISE).value_m == pytest.approx(value)


@pytest.mark.parametrize("g", [LEVEL, PITCHED], ids=["level", "pitched40"])
def test_gap_between_point_clouds_is_exact(g):
    a = on_table("box_1", -0.15, 0.9, (0.10, 0.10, 0.10), g)
    b = on_table("box_2", 0.10, 0.9, (0.10, 0.10, 0.10), g)          # facing faces 15 cm apart, grids aligned
    scene = make_scene([a, b], g)
    assert measure("gap", a, b, scene, NOISE).value_m == pytest.approx(0.15, abs=1e-9)
    assert measure("gap", b, a, scene, NOISE).value_m == pytest.approx(0.15, abs=1e-9)
    # diagonal offset: closest points are the two nearest vertical edges
    c = on_table("box_3", 0.10, 1.2, (0.10, 0.10, 0.10), g)
    assert measure("gap", a, c, make_scene([a, c], g), NOISE).value_m == pytest.approx(math.hypot(0.15, 0.2))


def test_gap_is_zero_when_contained_and_falls_back_to_boxes_without_points():
    g = LEVEL
    bowl = on_table("bowl_1", 0.0, 1.0, (0.20, 0.20, 0.08), g)
    apple = on_table("apple_1", 0.0, 1.0, (0.07, 0.07, 0.07), g, bottom=TABLE_Z + 0.01)
    assert measure("gap", apple, bowl, make_scene([bowl, apple], g), NOISE).value_m == 0.0
    a = on_table("box_1", 0.0, 1.0, (0.1, 0.1, 0.1), g, with_points=False)
    b = on_table("box_2", 0.3, 1.4, (0.1, 0.1, 0.1), g, with_points=False)
    assert measure("gap", a, b, make_scene([a, b], g), NOISE).value_m == pytest.approx(math.hypot(0.2, 0.3))


def test_uncertainties_follow_the_noise_model():
    g = LEVEL
    near = make_object("mug_1", (0.0, 0.6, 0.0), (0.08, 0.08, 0.1), g, n_pixels=400)
    far = make_object("mug_2", (0.0, 3.0, 0.0), (0.08, 0.08, 0.1), g, n_pixels=400)
    scene = make_scene([near, far], g)
    # center: sigma(z) / sqrt(n) with a floor of sigma(z) / 2
    assert center_sigma(near, NOISE) == pytest.approx(0.5 * (0.001 + 0.002 * 0.36))
    assert surface_sigma(far, NOISE) == pytest.approx(0.001 + 0.002 * 9.0)
    d = measure("distance", near, far, scene, NOISE)
    assert d.uncertainty_m == pytest.approx(math.hypot(center_sigma(near, NOISE), center_sigma(far, NOISE)))
    h_near = measure("height", near, None, scene, NOISE).uncertainty_m
    h_far = measure("height", far, None, scene, NOISE).uncertainty_m
    assert h_near == pytest.approx(math.sqrt(2) * surface_sigma(near, NOISE))
    assert h_far > 5 * h_near            # error grows with range squared
    gap = measure("gap", near, far, scene, NOISE)
    assert gap.uncertainty_m == pytest.approx(math.hypot(surface_sigma(near, NOISE), surface_sigma(far, NOISE)))


def test_signed_differences():
    g = PITCHED
    bottle = on_table("bottle_1", 0.0, 0.9, (0.07, 0.07, 0.25), g)
    can = on_table("can_1", 0.2, 0.9, (0.066, 0.066, 0.12), g, bottom=TABLE_Z + 0.2)
    scene = make_scene([bottle, can], g)
    assert signed_difference("height", bottle, can, scene, NOISE).value_m == pytest.approx(0.13)
    assert signed_difference("height", can, bottle, scene, NOISE).value_m == pytest.approx(-0.13)
    # centers: bottle at table + 0.125, can at table + 0.26
    assert signed_difference("vertical_distance", can, bottle, scene, NOISE).value_m == pytest.approx(0.135)
    with pytest.raises(QueryError):
        signed_difference("distance", bottle, can, scene, NOISE)


def test_names_aliases_and_malformed_requests():
    assert canonical_quantity("Horizontal Distance") == "horizontal_distance"
    assert canonical_quantity("tall") == "height"
    assert canonical_quantity("distance_to_camera") == "distance_to_camera"
    assert canonical_quantity("clearance") == "gap"
    assert {n for n in QUANTITIES if is_binary(n)} == {"distance", "gap", "horizontal_distance",
                                                        "vertical_distance"}
    g = LEVEL
    a, b = on_table("mug_1", 0, 1, (0.1, 0.1, 0.1), g), on_table("bowl_1", 0.3, 1, (0.1, 0.1, 0.1), g)
    scene = make_scene([a, b], g)
    with pytest.raises(QueryError, match="known quantities"):
        measure("volume", a, b, scene, NOISE)
    with pytest.raises(QueryError, match="needs a reference"):
        measure("distance", a, None, scene, NOISE)
    with pytest.raises(QueryError, match="one object"):
        measure("width", a, b, scene, NOISE)
    with pytest.raises(QueryError, match="two different objects"):
        measure("gap", a, a, scene, NOISE)
    with pytest.raises(QueryError):
        canonical_quantity(None)


def test_points_tree_is_reused_per_array_and_dropped_with_it():
    import gc

    import numpy as np

    from spatial_vlm_ros.core import quantities

    rng = np.random.default_rng(3)
    pts = rng.normal(size=(200, 3))
    tree = quantities.points_tree(pts)
    assert quantities.points_tree(pts) is tree                       # same array object: the same tree
    copy = pts.copy()
    assert quantities.points_tree(copy) is not tree                  # equal values, another array: its own tree
    probe = rng.normal(size=(5, 3))
    np.testing.assert_array_equal(tree.query(probe)[0], quantities.cKDTree(pts).query(probe)[0])
    n = len(quantities._TREES)
    del pts, tree, copy
    gc.collect()
    assert len(quantities._TREES) == n - 2                              # freed with their arrays


def test_closest_distance_equals_the_brute_force_minimum():
    """The pruned, bounded search returns exactly the minimum over all point pairs, whatever the layout:
    apart, interleaved, one cloud inside the other's bounds, single points, duplicates."""
    import numpy as np
    from scipy.spatial import cKDTree
    from scipy.spatial.distance import cdist

    from spatial_vlm_ros.core.quantities import closest_distance

    rng = np.random.default_rng(7)
    for trial in range(300):
        n, m = rng.integers(1, 400, size=2)
        a = rng.normal(size=(n, 3)) * rng.uniform(0.01, 0.3, size=3)
        b = rng.normal(size=(m, 3)) * rng.uniform(0.01, 0.3, size=3) + rng.normal(scale=0.3, size=3)
        if trial % 10 == 0:
            a[: n // 2] = b[0]                       # shared points: distance 0
        assert closest_distance(a, cKDTree(b)) == float(cdist(a, b).min())
